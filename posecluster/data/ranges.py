"""The bytes FFmpeg reads to open a video, kept with its plan so that every later open is served from memory.

Opening a container makes FFmpeg read its index (an MP4's `moov`, an AVI's `idx1`, Matroska cues on the
first seek) and the first packets. A plan records those reads (`Recorder`); a segment's read opens the
video again through an `Overlay` of them, so only media data comes from storage: a 24-hour MP4's tens of
MB of `moov` are read once per video, not once per segment.
"""

from __future__ import annotations

from typing import IO

import numpy as np


class _File:
    """The seekable read-only file protocol PyAV needs, over a position of its own."""

    _position = 0

    def tell(self) -> int:
        return self._position

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True


class Recorder(_File):
    """A file object that passes reads through and remembers every byte range it handed over."""

    def __init__(self, handle: IO[bytes]):
        self.handle, self._position, self._reads = handle, 0, {}

    def read(self, size: int = -1) -> bytes:
        data = self.handle.read(size)
        if data:
            self._reads[self._position] = max(self._reads.get(self._position, b""), data, key=len)
        self._position += len(data)
        return data

    def seek(self, offset: int, whence: int = 0) -> int:
        self._position = self.handle.seek(offset, whence)
        return self._position

    def ranges(self) -> tuple[np.ndarray, bytes]:
        """Merged (start, length) rows and their bytes, concatenated."""
        merged: list[list] = []
        for start in sorted(self._reads):
            data = self._reads[start]
            if merged and start <= merged[-1][0] + len(merged[-1][1]):
                head_start, head = merged[-1]
                overlap = head_start + len(head) - start
                if len(data) > overlap:
                    merged[-1][1] = head + data[overlap:]
            else:
                merged.append([start, data])
        rows = np.asarray([(start, len(data)) for start, data in merged], dtype=np.int64).reshape(-1, 2)
        return rows, b"".join(data for _, data in merged)


class Overlay(_File):
    """A file object over `handle` that serves the recorded ranges from memory and the rest from the
    handle (which it seeks only when it has to read from it)."""

    def __init__(self, handle: IO[bytes], rows: np.ndarray, data: bytes):
        self.handle, self._position, self._size = handle, 0, None
        self._starts = rows[:, 0] if len(rows) else np.zeros(0, np.int64)
        ends = np.cumsum(rows[:, 1]) if len(rows) else np.zeros(0, np.int64)
        self._offsets = np.concatenate([[0], ends[:-1]]) if len(rows) else np.zeros(0, np.int64)
        self._ends = self._starts + (rows[:, 1] if len(rows) else 0)
        self._data = memoryview(data)

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            size = max(self._length() - self._position, 0)
        pieces, wanted = [], size
        while wanted > 0:
            piece = self._from_memory(self._position, wanted) or self._from_handle(self._position, wanted)
            if not piece:
                break
            pieces.append(piece)
            self._position += len(piece)
            wanted -= len(piece)
        return b"".join(pieces)

    def _from_memory(self, position: int, size: int) -> bytes:
        row = int(np.searchsorted(self._starts, position, side="right")) - 1
        if row < 0 or position >= self._ends[row]:
            return b""
        at = int(self._offsets[row] + position - self._starts[row])
        return bytes(self._data[at : at + min(size, int(self._ends[row] - position))])

    def _from_handle(self, position: int, size: int) -> bytes:
        row = int(np.searchsorted(self._starts, position, side="right"))
        if row < len(self._starts):  # stop where the next recorded range begins
            size = min(size, int(self._starts[row] - position))
        self.handle.seek(position)
        return self.handle.read(size)

    def _length(self) -> int:
        if self._size is None:
            self._size = self.handle.seek(0, 2)
        return self._size

    def seek(self, offset: int, whence: int = 0) -> int:
        if whence == 2:
            offset += self._length()
        elif whence == 1:
            offset += self._position
        self._position = offset
        return offset

    def close(self) -> None:
        self.handle.close()

    def __enter__(self) -> "Overlay":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
