"""How multi-animal segments are stored, and the one way they are read back: a piece at a time.

Two layouts, both npz files (numpy's zip of `.npy` members) with the linking FORMAT and the key at top
level:
- a segment file (an archive worker's piece of a video, an older `<base>_tracklets.npz`): one segment's
  members at top level, written whole by `write_animal_segment` (a worker's piece is bounded);
- a pieces file (`<base>_tracklets.npz` of analyze): piece k's members under `piece{k:05d}/`, `pieces`
  (how many) written last. `PiecesWriter` builds it member by member in a local scratch file, as numpy's
  savez writes its members, and uploads it whole, so memory holds one piece however long the video.

`read_pieces` yields the pieces of a list of such files in frame order, reading a member only when it is
asked for (by name, as np.load does), so a reader holds one piece's detections at a time. A file that is not a
consistent store (damaged, crafted, pieces missing) is an InputError naming it, the piece (pieces file)
and the frame or row; order and overlap are the join's checks, piece by piece.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import zipfile
from dataclasses import asdict, dataclass
from typing import Iterable, Iterator

import numpy as np

from posecluster import storage
from posecluster.errors import InputError
from posecluster.infer.multianimal_checks import check_tracklets
from posecluster.infer.segments import SegmentResult
from posecluster.tracking import SegmentTracklets

# How a stored segment was linked. 2: from its own frames only, with its edge detections. 1 (a file
# without the field): from the two frames before its start too, with links to the frame before it.
FORMAT = 2
_SUMMARY = ("start", "end", "counts")  # with the tracklets.* and edges.*: what the join and stitching read
_PIECE = re.compile(r"piece(\d+)/")
# What numpy and zipfile raise for bytes that are not a readable npz (truncated, another format).
_UNREADABLE = (ValueError, OSError, EOFError, zipfile.BadZipFile)


@dataclass
class AnimalSegment:
    tracklets: SegmentTracklets
    unique: np.ndarray  # (end - start, U, 3)


@dataclass
class StoredPiece:
    """One stored segment or piece, read: `source` names its file and, in a pieces file, the piece."""

    source: str
    segment: AnimalSegment
    result: SegmentResult


def _members(segment: AnimalSegment, result: SegmentResult) -> dict[str, np.ndarray]:
    """One segment's arrays, as either layout stores them (a pieces file under the piece's prefix)."""
    meta = json.dumps(asdict(result)).encode()
    return {**segment.tracklets.to_dict(), "unique": segment.unique, "meta": np.frombuffer(meta, dtype=np.uint8)}


def _header(key: str) -> dict[str, np.ndarray]:
    return {"key": np.frombuffer(key.encode(), dtype=np.uint8), "format": np.int64(FORMAT)}


def write_animal_segment(uri: str, segment: AnimalSegment, result: SegmentResult, key: str = "") -> None:
    """A segment file, atomic; `key` names what the segment was made from, for a reader that cannot tell
    by its location."""
    buffer = io.BytesIO()
    np.savez(buffer, **_members(segment, result), **_header(key))
    storage.atomic_write_bytes(uri, buffer.getvalue())


class PiecesWriter:
    """A video's pieces, added in frame order to a local scratch file; `publish` uploads it whole (a file
    never published leaves nothing at `uri`). Use as a context manager (closes the scratch file)."""

    def __init__(self, uri: str, key: str):
        self.uri, self.pieces = uri, 0
        self._closing = contextlib.ExitStack()
        try:
            self._path = storage.join(self._closing.enter_context(storage.scratch_dir()), "tracklets.npz")
            self._zip = self._closing.enter_context(zipfile.ZipFile(self._path, "w", zipfile.ZIP_STORED,
                                                                    allowZip64=True))
            self._write(_header(key))
        except BaseException:
            self._closing.close()
            raise

    def _write(self, arrays: dict[str, np.ndarray]) -> None:
        for name, array in arrays.items():  # as np.savez writes a member: no whole-file buffer
            with self._zip.open(f"{name}.npy", "w", force_zip64=True) as member:
                np.lib.format.write_array(member, np.asanyarray(array), allow_pickle=False)

    def add(self, segment: AnimalSegment, result: SegmentResult) -> None:
        prefix = f"piece{self.pieces:05d}/"
        self._write({prefix + name: array for name, array in _members(segment, result).items()})
        self.pieces += 1

    def publish(self) -> None:
        self._write({"pieces": np.int64(self.pieces)})  # last: a file without it was never finished
        self._zip.close()
        storage.atomic_upload(self._path, self.uri)

    def __enter__(self) -> "PiecesWriter":
        return self

    def __exit__(self, *exc) -> None:
        self._closing.close()


def stored_key(uri: str) -> str:
    """The key a stored segment or pieces file was written with ("" when it is absent or unreadable)."""
    try:
        with storage.local_copy(uri) as path, zipfile.ZipFile(path) as stored:
            return _array(stored, "key").tobytes().decode()
    except (KeyError, *_UNREADABLE):
        return ""


def read_pieces(uris: Iterable[str], summary_only: bool = False) -> Iterator[StoredPiece]:
    """Every segment stored in `uris` (segment files and pieces files, given in frame order), in frame
    order, one at a time; `summary_only`: without detections and unique parts (what stitching reads).
    A file that is gone stays a FileNotFoundError (its pieces are computed again)."""
    for uri in uris:
        source = storage.redact_uri(uri)
        with storage.local_copy(uri) as path:
            try:
                stored = zipfile.ZipFile(path)
            except _UNREADABLE as exc:
                raise InputError(source, f"not a multi-animal segment ({type(exc).__name__}: {exc})") from None
            with stored:
                for prefix, name, members in _pieces_of(stored, source):
                    yield _piece(stored, prefix, members, name, summary_only)


def _array(stored: zipfile.ZipFile, name: str) -> np.ndarray:
    """A member, read only after its header was checked against its stored size: a crafted header (a
    shape of terabytes), an object array or a compressed member (a zip bomb: posecluster stores its
    members uncompressed, as np.savez does) is a ValueError before anything is allocated."""
    info = stored.getinfo(f"{name}.npy")
    if info.compress_type != zipfile.ZIP_STORED:
        raise ValueError(f"member {name} is compressed (posecluster stores its members uncompressed)")
    with stored.open(info) as member:
        version = np.lib.format.read_magic(member)
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, fortran, dtype = read_header(member)
        if dtype.hasobject:
            raise ValueError(f"member {name} holds Python objects")
        size = int(np.prod(shape, dtype=np.float64)) * dtype.itemsize
        if size != info.file_size - member.tell():
            raise ValueError(f"member {name}'s header claims {shape} of {dtype}, not the {info.file_size} bytes stored")
        data = np.frombuffer(member.read(size), dtype=dtype)
    return data.reshape(shape, order="F" if fortran else "C").copy()


def _pieces_of(stored: zipfile.ZipFile, source: str) -> list[tuple[str, str, list[str]]]:
    """(member prefix, name for errors, its members' names) of each piece the file holds, in order."""
    members: dict[str, list[str]] = {}
    for name in stored.namelist():
        if name.endswith(".npy"):
            found = _PIECE.match(name)
            prefix = found.group(0) if found else ""
            members.setdefault(prefix, []).append(name[len(prefix): -len(".npy")])
    top = members.get("", [])
    try:
        fields = [_array(stored, name) if name in top else None for name in ("format", "pieces")]
        if any(f is not None and (f.shape != () or f.dtype.kind not in "iu") for f in fields):
            raise ValueError("its format or piece count is not a whole number")
        written, count = (None if f is None else int(f) for f in fields)
    except _UNREADABLE as exc:
        raise InputError(source, f"not a multi-animal segment ({type(exc).__name__}: {exc})") from None
    written = 1 if written is None else written  # a file without the field: format 1
    if written != FORMAT:
        raise InputError(source, f"tracklets of format {written} (an older or newer posecluster's: linked "
                                 f"another way), this one joins format {FORMAT}; compute them again")
    if count is None:
        return [("", source, top)]  # a segment file
    numbers = sorted(int(_PIECE.match(prefix).group(1)) for prefix in members if prefix)
    if count < 1:
        raise InputError(source, f"a file of {count} pieces")
    if numbers and numbers[-1] >= count:
        raise InputError(f"{source}, piece {numbers[-1]}", f"not one of the file's {count} pieces")
    pieces = []
    for k in range(count):
        prefix, name = f"piece{k:05d}/", f"{source}, piece {k}"
        if "meta" not in members.get(prefix, ()):
            raise InputError(name, f"missing: the file holds {len(numbers)} of its {count} pieces")
        pieces.append((prefix, name, members[prefix]))
    return pieces


def _piece(stored: zipfile.ZipFile, prefix: str, members: list[str], source: str,
           summary_only: bool) -> StoredPiece:
    """The piece under `prefix`, checked before any of its numbers is used as an index."""
    try:
        result = _result(json.loads(_array(stored, f"{prefix}meta").tobytes().decode()), source)
        wanted = [n for n in members if n.startswith(("tracklets.", "edges.")) or n in _SUMMARY]
        if not summary_only:
            wanted += ["labels", "poses", "unique"]
        arrays = {name: _array(stored, prefix + name) for name in wanted}
        if summary_only:
            arrays.update(labels=np.zeros(0, np.int64), poses=np.zeros((0, 0, 3)), unique=np.zeros((0, 0, 3)))
        unique = arrays.pop("unique")
        tracklets = SegmentTracklets.from_dict(arrays)
    except InputError:
        raise
    except (KeyError, TypeError, AttributeError, RecursionError, *_UNREADABLE) as exc:
        raise InputError(source, f"not a multi-animal segment ({type(exc).__name__}: {exc})") from None
    if (tracklets.start, tracklets.end) != (result.start, result.stop):
        raise InputError(source, f"tracklets of frames [{tracklets.start}, {tracklets.end}) in a segment of "
                                 f"[{result.start}, {result.stop})")
    check_tracklets(tracklets, source, with_detections=not summary_only)
    return StoredPiece(source, AnimalSegment(tracklets, unique), result)


def _result(raw, source: str) -> SegmentResult:
    """The stored SegmentResult, with the fields the join indexes checked."""
    if not isinstance(raw, dict) or not isinstance(raw.get("missing"), dict):
        raise InputError(source, "its record is not a segment's (no frames-missing mapping)")
    raw["missing"] = {int(k): str(v) for k, v in raw["missing"].items()}
    result = SegmentResult(**raw)
    if not all(isinstance(v, int) for v in (result.start, result.stop, result.frames)):
        raise InputError(source, "its record's start, stop and frames are not whole numbers")
    if any(not isinstance(s, list) or len(s) != 3 for s in result.sizes) or any(
            not isinstance(j, list) or len(j) != 4 for j in result.jumps):
        raise InputError(source, "its record's frame sizes or clock jumps are not a segment's")
    if not isinstance(result.video, dict) or not isinstance(result.check, dict) or (
            result.check and not isinstance(result.check.get("start"), int)):
        raise InputError(source, "its record's video facts or precision check are not a segment's")
    return result

