"""Multi-animal segments with detections that are right (the rendered truth plus noise, in shuffled
order, some missed): stored, joined and stitched into the tracked table, scored against the truth, and
the same table whether the video is one segment or cut into many."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from posecluster import storage
from posecluster.data.formats.madlc import read_tracks
from posecluster.data.synthetic_multianimal import MultiAnimalRenderer, MultiAnimalScene
from posecluster.infer.multianimal_segments import AnimalNames, join_animal_segments
from posecluster.infer.multianimal_store import AnimalSegment, read_pieces, write_animal_segment
from posecluster.infer.segments import SegmentResult
from posecluster.tracking import FrameDetections, TrackingConfig, track_segment
from posecluster.tracking.metrics import tracking_scores

FRAMES = 240
SCENE = MultiAnimalScene(width=128, height=96, seed=3)


@pytest.fixture(scope="module")
def truth():
    return MultiAnimalRenderer(SCENE).tracks(FRAMES)


def detections(truth, seed: int = 0) -> list[FrameDetections]:
    """What a good detector gives: each visible animal with 1 px of noise and likelihood 0.9, in a
    random order per frame, 3% of them missed."""
    rng = np.random.default_rng(seed)
    frames = []
    for poses in truth.poses:
        seen = [a for a in range(len(poses)) if np.isfinite(poses[a, :, 0]).any() and rng.random() > 0.03]
        rows = poses[rng.permutation(seen)].copy() if seen else np.zeros((0, *poses.shape[1:]))
        rows[..., :2] += rng.normal(0, 1.0, rows[..., :2].shape)
        rows[..., 2] = np.where(np.isfinite(rows[..., 0]), 0.9, np.nan)
        frames.append(FrameDetections(rows))
    return frames


def store(found: list[FrameDetections], truth, cuts: list[int], folder: str) -> list[str]:
    """Each segment as a worker stores it: its own frames' detections linked, their unique parts."""
    bounds = [0, *cuts, FRAMES]
    uris = []
    for start, stop in zip(bounds, bounds[1:]):
        tracklets = track_segment(found[start:stop], start, stop, TrackingConfig())
        uri = storage.join(folder, f"{start:09d}-{stop:09d}.npz")
        write_animal_segment(uri, AnimalSegment(tracklets, truth.unique_poses[start:stop]),
                             SegmentResult(video_uri="arena.mp4", start=start, stop=stop, frames=stop - start))
        uris.append(uri)
    return uris


def names(truth) -> AnimalNames:
    return AnimalNames("DLC_resnet_50_arenaJan1shuffle1_posecluster", truth.individuals, truth.bodyparts,
                       truth.unique_bodyparts)


def test_right_detections_become_tracks_that_keep_every_animals_identity(truth, tmp_path):
    uris = store(detections(truth), truth, [], str(tmp_path / "segments"))
    joined, figures = join_animal_segments(uris, names(truth), FRAMES, str(tmp_path / "arena_el"), ("csv",))
    tracks = read_tracks(joined.outputs["h5"])
    scores = tracking_scores(tracks.poses, truth.poses, threshold_px=5.0)
    assert scores.id_switches == 0 and scores.idf1 > 0.95 and scores.mota > 0.9, scores
    np.testing.assert_array_equal(tracks.unique_poses, truth.unique_poses)
    assert figures.individuals_found == 3 and figures.detections == scores.predicted_detections
    assert figures.tracklets >= figures.tracklets_kept >= 3
    # DeepLabCut's tracked layout (its docs): scorer/individuals/bodyparts/coords, unique parts under
    # "single", every frame a row; the csv with the same four header rows.
    frame = pd.read_hdf(joined.outputs["h5"], "df_with_missing")
    assert list(frame.columns.names) == ["scorer", "individuals", "bodyparts", "coords"]
    assert list(dict.fromkeys(frame.columns.get_level_values("individuals"))) == [*truth.individuals, "single"]
    assert frame.index.tolist() == list(range(FRAMES))
    csv = pd.read_csv(joined.outputs["csv"], header=[0, 1, 2, 3], index_col=0)
    np.testing.assert_allclose(csv.to_numpy(), frame.to_numpy(), rtol=1e-12)


@pytest.mark.parametrize("cuts", [[80, 160], [1, 2, 100, 239], list(range(30, FRAMES, 30)),
                                  [1, 3, 4, 6, 7, 9, 118, 119, 121, 122, 124]])
def test_the_video_cut_anywhere_gives_the_table_of_one_segment(truth, tmp_path, cuts):
    found = detections(truth)
    whole, _ = join_animal_segments(store(found, truth, [], str(tmp_path / "one")), names(truth), FRAMES,
                                    str(tmp_path / "one_el"))
    cut, _ = join_animal_segments(store(found, truth, cuts, str(tmp_path / "many")), names(truth), FRAMES,
                                  str(tmp_path / "many_el"))
    one, many = read_tracks(whole.outputs["h5"]), read_tracks(cut.outputs["h5"])
    np.testing.assert_array_equal(many.poses, one.poses)
    np.testing.assert_array_equal(many.unique_poses, one.unique_poses)


def test_segments_that_do_not_tile_the_video_are_refused(truth, tmp_path):
    uris = store(detections(truth), truth, [80, 160], str(tmp_path))
    with pytest.raises(ValueError, match="expected 80"):
        join_animal_segments([uris[0], uris[2]], names(truth), FRAMES, str(tmp_path / "out_el"))
    with pytest.raises(ValueError, match="cover 160 of 240"):
        join_animal_segments(uris[:2], names(truth), FRAMES, str(tmp_path / "out_el"))
    storage.atomic_write_bytes(str(tmp_path / "bad.npz"), b"not a segment")
    with pytest.raises(ValueError):
        list(read_pieces([str(tmp_path / "bad.npz")]))


def _arrays(uri: str) -> dict[str, np.ndarray]:
    with np.load(uri, allow_pickle=False) as data:
        return {name: data[name] for name in data.files}


def _unusable_first(arrays) -> None:
    """The first detection of the segment's first frame no longer usable in its edge detections."""
    arrays["edges.poses"][0, :, 2] = 0.0
def _detection_frame(arrays, row: int) -> int:
    return int(arrays["start"]) + int(np.repeat(np.arange(len(arrays["counts"])), arrays["counts"])[row])


def _tracked_row(arrays) -> int:
    return int(np.flatnonzero(arrays["labels"] >= 0)[7])


# (what is wrong, how the stored arrays are changed, what the error says beyond the file's name: the frame
# or tracklet row it can name). Each would otherwise index past an array in the join or the stitching.
DAMAGE = {
    "a detection's tracklet past the tracklets": (
        lambda a: a["labels"].__setitem__(_tracked_row(a), len(a["tracklets.first_frame"]) + 3),
        lambda a: f"frame {_detection_frame(a, _tracked_row(a))}: detection {_tracked_row(a)} belongs to tracklet"),
    "detection counts that do not add up": (
        lambda a: a["counts"].__setitem__(5, a["counts"][5] + 1), lambda a: "labels (one per detection counted)"),
    "a tracklet's first detection past its frame's": (
        lambda a: a["tracklets.first_index"].__setitem__(0, 99),
        lambda a: f"row 0, frame {a['tracklets.first_frame'][0]}: tracklet 0's first detection is row 99"),
    "a tracklet ending after the segment": (
        lambda a: a["tracklets.last_frame"].__setitem__(1, 400), lambda a: "row 1: tracklet 1 spans frames"),
    "edge detections of fewer frames": (
        lambda a: a.__setitem__("edges.frames", a["edges.frames"][:-1]), lambda a: "frame 80: edge frames [80, 81, 158]"),
    "edge detections counted unlike their frame": (
        lambda a: a["edges.counts"].__setitem__(1, a["edges.counts"][1] + 1), lambda a: f"frame 81: {a['edges.counts'][1]} edge detections, the frame counts"),
    "an edge detection that begins no tracklet": (
        _unusable_first, lambda a: "frame 80: the usable detections"),
    "edge detections that are not their frame's": (
        lambda a: a["edges.poses"].__setitem__((-1, 0, 0), a["edges.poses"][-1, 0, 0] + 1.0),
        lambda a: "frame 159: the edge detections are not the detections of their frame"),
    "two body parts fewer": (
        lambda a: a.__setitem__("poses", a["poses"][:, :2]), lambda a: "poses (one per detection counted) has shape"),
    "no unique body part": (lambda a: a.__setitem__("unique", a["unique"][:, :0]), lambda a: "unique has shape"),
    "detection labels as floats": (
        lambda a: a.__setitem__("labels", a["labels"].astype(np.float64)), lambda a: "labels must hold integers"),
    "a tracklet without head frames": (
        lambda a: a["tracklets.head_frames"].__setitem__(2, -1), lambda a: "row 2: tracklet 2's head frames"),
    "a record without its missing frames": (
        lambda a: a.__setitem__("meta", np.frombuffer(b'{"missing": []}', np.uint8)), lambda a: "record is not"),
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_a_damaged_or_crafted_segment_is_refused_naming_the_file_and_the_frame_or_row(truth, tmp_path, damage):
    from posecluster.errors import InputError

    uris = store(detections(truth), truth, [80, 160], str(tmp_path))
    arrays = _arrays(uris[1])
    change, says = DAMAGE[damage]
    change(arrays)
    with open(uris[1], "wb") as handle:
        np.savez(handle, **arrays)
    with pytest.raises(InputError) as raised:
        join_animal_segments(uris, names(truth), FRAMES, str(tmp_path / "arena_el"))
    assert str(raised.value).startswith(uris[1]) and says(arrays) in str(raised.value), str(raised.value)
    assert not storage.exists(str(tmp_path / "arena_el.h5"))


@pytest.mark.parametrize("content", ["truncated", "pickled objects", "not an npz"])
def test_an_unreadable_segment_is_an_input_error_and_no_stored_key(truth, tmp_path, content):
    from posecluster.errors import InputError
    from posecluster.infer.multianimal_store import stored_key

    (uri,) = store(detections(truth), truth, [], str(tmp_path))
    data = storage.read_bytes(uri)
    if content == "truncated":
        storage.atomic_write_bytes(uri, data[: len(data) // 2])
    elif content == "pickled objects":
        arrays = _arrays(uri)
        arrays["labels"] = np.array([{"a": 1}], dtype=object)
        with open(uri, "wb") as handle:
            np.savez(handle, **arrays)
    else:
        storage.atomic_write_bytes(uri, b"PK\x03\x04 not a zip at all")
    with pytest.raises(InputError, match="not a multi-animal segment") as raised:
        list(read_pieces([uri]))
    assert str(raised.value).startswith(uri)
    assert stored_key(uri) == ""


def test_tracklets_of_the_previous_format_are_refused_saying_so(truth, tmp_path):
    from posecluster.errors import InputError

    # Written by posecluster 0ba38fb (frames [4, 8) of a scene, linked from frames 2-3 too, with start links).
    old = storage.join(storage.parent(__file__), "fixtures", "tracklets_format1.npz")
    with pytest.raises(InputError, match="tracklets of format 1 .* joins format 2; compute them again"):
        list(read_pieces([old], summary_only=True))


def test_a_segment_puts_only_its_own_frames_through_the_model(tmp_path):
    from posecluster.data.synthetic_multianimal import render_video
    from posecluster.data.video import probe
    from posecluster.infer.multianimal_predictor import MultiAnimalPredictor
    from posecluster.infer.multianimal_segments import predict_animal_segment
    from posecluster.model.multianimal_artifact import load_any
    from tests.cluster.test_archive_multianimal import untrained_model

    scene = MultiAnimalScene(width=80, height=64)
    model, _ = untrained_model(str(tmp_path), scene)
    info = probe(render_video(str(tmp_path / "arena.mp4"), scene, 12, gop=4).uri)
    seen = []  # frames through the model, batch by batch
    # Frames 4-6: a keyframe at 4, and the two frames before it (a GOP before) are not the segment's.
    segment, result = predict_animal_segment(MultiAnimalPredictor(load_any(model)), info, 4, 7, on_batch=seen.append)
    assert sum(seen) == result.frames == 3 and not result.missing
    assert (segment.tracklets.start, segment.tracklets.end, len(segment.tracklets.counts)) == (4, 7, 3)
