"""The display rotation of an MP4/MOV track, read from its header boxes instead of a decoded frame.

PyAV (18) exposes the display matrix only on decoded frames; decoding a keyframe just to learn the
rotation made probing an MP4 ~30% slower. The matrix is 36 bytes in the track header (`tkhd`, ISO/IEC
14496-12 8.3.2), combined with the movie header's (`mvhd`), exactly as FFmpeg's mov demuxer combines
them (and as OpenCV then reads them from the stream). Any surprise in the boxes returns None and the
caller falls back to decoding a frame: this is a shortcut, never the only way.
"""

from __future__ import annotations

import math
import struct
from typing import IO

_MAX_BOXES = 4096  # a walk that long is not a file we understand


def track_rotation(handle: IO[bytes], track_id: int) -> int | None:
    """Degrees counter-clockwise (0/90/180/270, as OpenCV applies them) for track `track_id`, or None."""
    try:
        handle.seek(0, 2)
        end = handle.tell()
        moov = _find(handle, 0, end, b"moov")
        if moov is None:
            return None
        movie = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]
        mvhd = _find(handle, *moov, b"mvhd")
        if mvhd is not None:
            movie = _matrix(handle, mvhd[0], {0: 36, 1: 48})
        for trak in _children(handle, *moov, b"trak"):
            tkhd = _find(handle, *trak, b"tkhd")
            if tkhd is None:
                continue
            handle.seek(tkhd[0])
            version = handle.read(1)[0]
            handle.seek(tkhd[0] + (20 if version == 1 else 12))
            if struct.unpack(">I", handle.read(4))[0] != track_id:
                continue
            track = _matrix(handle, tkhd[0], {0: 40, 1: 52})
            if track is None or movie is None:
                return None
            combined = [[sum(track[i][e] * movie[e][j] for e in range(3)) for j in range(3)] for i in range(3)]
            return _rotation_of(combined)
        return None
    except (OSError, IndexError, struct.error, ValueError):
        return None


def _rotation_of(m: list[list[float]]) -> int | None:
    # av_display_rotation_get: the angle of the matrix's first row, negated (counter-clockwise).
    scale_x, scale_y = math.hypot(m[0][0], m[1][0]), math.hypot(m[0][1], m[1][1])
    if scale_x == 0 or scale_y == 0:
        return None
    degrees = -math.degrees(math.atan2(m[0][1] / scale_y, m[0][0] / scale_x))
    return int(round(degrees / 90.0)) * 90 % 360


def _matrix(handle: IO[bytes], payload: int, offsets: dict[int, int]) -> list[list[float]] | None:
    """The 3x3 matrix of an mvhd/tkhd payload (a, b, c, d in 16.16 fixed point; u, v, w in 2.30)."""
    handle.seek(payload)
    version = handle.read(1)[0]
    if version not in offsets:
        return None
    handle.seek(payload + offsets[version])
    raw = struct.unpack(">9i", handle.read(36))
    return [[raw[3 * i] / 65536.0, raw[3 * i + 1] / 65536.0, raw[3 * i + 2] / float(1 << 30)] for i in range(3)]


def _boxes(handle: IO[bytes], start: int, end: int):
    """(type, payload start, box end) of the boxes laid end to end in [start, end)."""
    position = start
    for _ in range(_MAX_BOXES):
        if position + 8 > end:
            return
        handle.seek(position)
        size, kind = struct.unpack(">I4s", handle.read(8))
        header = 8
        if size == 1:
            size, header = struct.unpack(">Q", handle.read(8))[0], 16
        elif size == 0:
            size = end - position
        if size < header or position + size > end:
            raise ValueError(f"box {kind!r} at {position} overruns its parent")
        yield kind, position + header, position + size
        position += size
    raise ValueError("too many boxes")


def _children(handle: IO[bytes], start: int, end: int, kind: bytes):
    return [(a, b) for k, a, b in list(_boxes(handle, start, end)) if k == kind]


def _find(handle: IO[bytes], start: int, end: int, kind: bytes) -> tuple[int, int] | None:
    for k, payload, stop in _boxes(handle, start, end):
        if k == kind:
            return payload, stop
    return None
