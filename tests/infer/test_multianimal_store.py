"""A video's pieces stored in one file (what analyze keeps beside its table) are joined as the segment files
of an archive job are, one piece at a time; a piece that is damaged, missing, out of order or overlapping
another is refused naming the file, the piece and, where it can, the frame or row."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest

from posecluster import storage
from posecluster.data.formats.madlc import read_tracks
from posecluster.errors import InputError
from posecluster.infer.multianimal_segments import join_animal_segments
from posecluster.infer.multianimal_store import AnimalSegment, PiecesWriter, read_pieces, stored_key
from posecluster.infer.segments import SegmentResult
from posecluster.tracking import TrackingConfig, track_segment
from tests.infer.test_multianimal_segments import DAMAGE, FRAMES, detections, names, store, truth  # noqa: F401

CUTS = [80, 160]


def pieces_file(truth, uri: str, key: str = "made from") -> str:
    """The segments of `store` with the same cuts, as pieces of one file."""
    found, bounds = detections(truth), [0, *CUTS, FRAMES]
    with PiecesWriter(uri, key) as writer:
        for start, stop in zip(bounds, bounds[1:]):
            tracklets = track_segment(found[start:stop], start, stop, TrackingConfig())
            writer.add(AnimalSegment(tracklets, truth.unique_poses[start:stop]),
                       SegmentResult(video_uri="arena.mp4", start=start, stop=stop, frames=stop - start))
        assert not storage.exists(uri)  # published whole, once every piece is in
        writer.publish()
    return uri


def _arrays(uri: str) -> dict[str, np.ndarray]:
    with np.load(uri, allow_pickle=False) as data:
        return {name: data[name] for name in data.files}


def _rewrite(uri: str, arrays: dict[str, np.ndarray]) -> None:
    with open(uri, "wb") as handle:
        np.savez(handle, **arrays)


def test_the_pieces_of_one_file_give_the_table_of_the_segment_files(truth, tmp_path):
    uri = pieces_file(truth, str(tmp_path / "arena_tracklets.npz"))
    stored = _arrays(uri)  # numpy reads the file: a plain npz, the pieces under their prefixes
    assert int(stored["pieces"]) == 3 and [int(stored[f"piece{k:05d}/start"]) for k in range(3)] == [0, *CUTS]
    assert stored_key(uri) == "made from"
    assert [piece.source for piece in read_pieces([uri], summary_only=True)] == [f"{uri}, piece {k}" for k in range(3)]
    pieces, _ = join_animal_segments([uri], names(truth), FRAMES, str(tmp_path / "pieces_el"))
    files, _ = join_animal_segments(store(detections(truth), truth, CUTS, str(tmp_path / "segments")), names(truth),
                                    FRAMES, str(tmp_path / "files_el"))
    one, many = read_tracks(pieces.outputs["h5"]), read_tracks(files.outputs["h5"])
    np.testing.assert_array_equal(one.poses, many.poses)
    np.testing.assert_array_equal(one.unique_poses, many.unique_poses)
    assert pieces.bounds == files.bounds == [(0, 80), (80, 160), (160, FRAMES)]


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_a_damaged_or_crafted_piece_is_refused_naming_the_file_the_piece_and_the_frame_or_row(truth, tmp_path, damage):
    uri = pieces_file(truth, str(tmp_path / "arena_tracklets.npz"))
    arrays = _arrays(uri)
    piece = {name[len("piece00001/"):]: arrays.pop(name) for name in list(arrays) if name.startswith("piece00001/")}
    change, says = DAMAGE[damage]
    change(piece)
    _rewrite(uri, {**arrays, **{f"piece00001/{name}": array for name, array in piece.items()}})
    with pytest.raises(InputError) as raised:
        join_animal_segments([uri], names(truth), FRAMES, str(tmp_path / "arena_el"))
    assert str(raised.value).startswith(f"{uri}, piece 1") and says(piece) in str(raised.value), str(raised.value)
    assert not storage.exists(str(tmp_path / "arena_el.h5"))


def _moved(arrays, moves: dict[int, int]) -> dict[str, np.ndarray]:
    """Piece k's members under piece moves[k]'s prefix (the others kept)."""
    out = {}
    for name, array in arrays.items():
        k = int(name[len("piece"):].split("/")[0]) if name.startswith("piece") and "/" in name else None
        out[name if k not in moves else f"piece{moves[k]:05d}/{name.split('/', 1)[1]}"] = array
    return out


def _without(arrays, k: int) -> dict[str, np.ndarray]:
    return {name: array for name, array in arrays.items() if not name.startswith(f"piece{k:05d}/")}


# (how the stored pieces are changed, what the error says after the file's name)
MISPLACED = {
    "a piece missing": (lambda a: _without(a, 1), ", piece 1: missing: the file holds 2 of its 3 pieces"),
    "pieces out of order": (lambda a: _moved(a, {0: 1, 1: 0}), ", piece 0: segment starts at frame 80, expected 0"),
    "a piece overlapping the one before": (
        lambda a: {**_without(a, 2), **_moved(_without(a, 2), {1: 2})},
        ", piece 2: segment starts at frame 80, expected 160"),
    "a piece past the file's count": (
        lambda a: {**a, "pieces": np.int64(2)}, ", piece 2: not one of the file's 2 pieces"),
    "no piece counted": (lambda a: {**a, "pieces": np.int64(0)}, ": a file of 0 pieces"),
    "a piece count that is no whole number": (
        lambda a: {**a, "pieces": np.float64(3)}, ": not a multi-animal segment (ValueError"),
}


@pytest.mark.parametrize("misplaced", list(MISPLACED))
def test_pieces_missing_out_of_order_or_overlapping_are_refused_naming_the_piece(truth, tmp_path, misplaced):
    uri = pieces_file(truth, str(tmp_path / "arena_tracklets.npz"))
    change, says = MISPLACED[misplaced]
    _rewrite(uri, change(_arrays(uri)))
    with pytest.raises(InputError) as raised:
        join_animal_segments([uri], names(truth), FRAMES, str(tmp_path / "arena_el"))
    assert str(raised.value).startswith(f"{uri}{says}"), str(raised.value)


def test_a_segment_file_is_read_as_one_piece_named_by_its_file(truth, tmp_path):
    (uri,) = store(detections(truth), truth, [], str(tmp_path))
    (piece,) = read_pieces([uri])
    assert piece.source == uri and (piece.result.start, piece.result.stop) == (0, FRAMES)
    assert len(piece.segment.tracklets.counts) == FRAMES == len(piece.segment.unique)


def _crafted_header(shape) -> bytes:
    """An .npy member's bytes whose header claims `shape` of int64 over 8 bytes of data."""
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": "<i8", "fortran_order": False, "shape": shape})
    return buffer.getvalue() + b"\0" * 8


def _replace_member(uri: str, name: str, data: bytes, compress: int = 0) -> None:
    with zipfile.ZipFile(uri) as old:
        members = {info.filename: old.read(info) for info in old.infolist() if info.filename != f"{name}.npy"}
    with zipfile.ZipFile(uri, "w") as new:
        for member, content in members.items():
            new.writestr(member, content)
        new.writestr(f"{name}.npy", data, compress_type=compress)


def test_crafted_members_are_refused_before_anything_is_allocated_or_inflated(truth, tmp_path):
    uri = pieces_file(truth, str(tmp_path / "arena_tracklets.npz"))
    poses = _arrays(uri)["piece00001/poses"]
    crafted = {  # a header claiming a terabyte; the real array, deflated (a zip bomb's way in); deep JSON
        "shape": ("piece00001/poses", _crafted_header((10**12, 4, 3)), zipfile.ZIP_STORED, "not the"),
        "deflated": ("piece00001/poses", _npy(poses), zipfile.ZIP_DEFLATED, "compressed"),
        "nested": ("piece00001/meta", _npy(np.frombuffer(b"[" * 100000 + b"]" * 100000, np.uint8)),
                   zipfile.ZIP_STORED, "RecursionError"),
    }
    for case, (member, data, compress, says) in crafted.items():
        damaged = str(tmp_path / f"{case}_tracklets.npz")
        storage.atomic_write_bytes(damaged, storage.read_bytes(uri))
        _replace_member(damaged, member, data, compress)
        with pytest.raises(InputError) as raised:
            join_animal_segments([damaged], names(truth), FRAMES, str(tmp_path / f"{case}_el"))
        assert str(raised.value).startswith(f"{damaged}, piece 1") and says in str(raised.value), case


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, array)
    return buffer.getvalue()
