"""Multi-animal pieces of videos whose frames cannot be cut in advance, without Ray: a Matroska without
cues in one pass, window by window, and spans between a Matroska file's cues (one frame each, or a
dozen), each predicting and linking its own frames only. Joined, they give the tracked table of the whole
video linked as one segment from the model's detections on a plain sequential PyAV decode."""

from __future__ import annotations

import io

import numpy as np
import pytest

from posecluster import storage
from posecluster.data.formats.madlc import read_tracks
from posecluster.data.synthetic_multianimal import MultiAnimalScene
from posecluster.data.video import VideoReader
from posecluster.infer.multianimal_analyze import names_of
from posecluster.infer.multianimal_passes import predict_animal_pass, predict_animal_spans
from posecluster.infer.multianimal_predictor import MultiAnimalPredictor
from posecluster.infer.multianimal_segments import join_animal_segments
from posecluster.infer.multianimal_store import AnimalSegment, write_animal_segment
from posecluster.infer.segments import SegmentResult
from posecluster.model.multianimal_artifact import load_any
from posecluster.tracking import track_segment
from tests.cluster.test_archive_multianimal import untrained_model
from tests.data.video_matrix import H264_BF, Spec, encode, oracle

ALL_KEYFRAMES = (("g", "1"), ("bf", "0"), ("crf", "23"), ("preset", "veryfast"))


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """(predictor, name -> video path): an untrained model (deterministic detections, about three a frame)."""
    root = str(tmp_path_factory.mktemp("ma-passes"))
    model, _ = untrained_model(root, MultiAnimalScene(width=80, height=64))
    videos = {spec.name: encode(spec, f"{root}/{spec.name}.mkv") for spec in (
        Spec("nocues_mkv", "mkv", options=H264_BF, seekable=False, frames=24),  # no index: one pass
        Spec("vfr_mkv", "mkv", options=H264_BF, vfr=True, frames=24),  # cues every 9-11 frames
        Spec("allkey_mkv", "mkv", options=ALL_KEYFRAMES, frames=24))}  # a cue on every frame
    return MultiAnimalPredictor(load_any(model)), videos


def joined(predictor, pieces: list[tuple[AnimalSegment, SegmentResult]], folder: str):
    uris = []
    for number, (segment, result) in enumerate(pieces):
        uris.append(storage.join(folder, f"{number:04d}.npz"))
        write_animal_segment(uris[-1], segment, result)
    _, figures = join_animal_segments(uris, names_of(predictor), None, f"{folder}/table")
    return read_tracks(f"{folder}/table.h5"), figures


def whole_video(predictor, path: str, folder: str):
    """The oracle: every frame of a plain sequential decode through the model, linked as one segment."""
    found = [predictor.predict(frame[None])[0] for frame in oracle(path)]
    tracklets = track_segment([frame.detections for frame in found], 0, len(found), predictor.tracking)
    unique = np.stack([frame.unique for frame in found])
    return joined(predictor, [(AnimalSegment(tracklets, unique), SegmentResult(
        video_uri=path, start=0, stop=len(found), frames=len(found)))], folder)


def same_tracks(got, want) -> None:
    (tracks, figures), (truth, truth_figures) = got, want
    assert truth_figures.tracklets > truth_figures.individuals_found >= 2  # links across the cuts matter
    np.testing.assert_array_equal(tracks.poses, truth.poses)
    np.testing.assert_array_equal(tracks.unique_poses, truth.unique_poses)
    assert figures == truth_figures  # the same tracklets: none broken at a cut


def test_one_pass_links_window_by_window_and_a_rerun_predicts_only_the_windows_not_written(setup, tmp_path):
    predictor, videos = setup
    path = videos["nocues_mkv"]
    assert VideoReader(path).plan().plan == "sequential"
    written: dict[int, tuple] = {}
    info, _ = predict_animal_pass(predictor, VideoReader(path), 8, set(),
                                  lambda segment, result: written.setdefault(result.start, (segment, result)))
    assert [(r.start, r.stop) for _, r in written.values()] == [(0, 8), (8, 16), (16, 24)]
    assert info.frame_count == 24
    same_tracks(joined(predictor, list(written.values()), f"{tmp_path}/pass"),
                whole_video(predictor, path, f"{tmp_path}/whole"))

    again: dict[int, tuple] = {}
    _, ranged = predict_animal_pass(predictor, VideoReader(path), 8, {1},
                                    lambda segment, result: again.setdefault(result.start, (segment, result)))
    assert sorted(again) == [0, 16]
    assert ranged.frames == 16  # windows 0 and 2 only
    for start, (segment, _) in again.items():
        for name, array in segment.tracklets.to_dict().items():
            np.testing.assert_array_equal(array, written[start][0].tracklets.to_dict()[name], err_msg=name)


@pytest.mark.parametrize("name, cuts", [("vfr_mkv", [1, 2]), ("allkey_mkv", [3, 4, 5, 15])])
def test_spans_linked_on_their_own_give_the_whole_videos_tracks(setup, tmp_path, name, cuts):
    predictor, videos = setup
    path = videos[name]
    plan = VideoReader(path).plan()
    assert plan.plan == "spans"
    bounds = [0, *cuts, plan.span_count]
    data = storage.read_bytes(path)
    pieces = []
    for k0, k1 in zip(bounds, bounds[1:]):
        segment, result = predict_animal_spans(predictor, VideoReader(path, lambda: io.BytesIO(data), plan), k0, k1)
        assert result.relative and result.start == 0 and result.frames == result.stop  # its own frames only
        pieces.append((segment, result))
    same_tracks(joined(predictor, pieces, f"{tmp_path}/spans"), whole_video(predictor, path, f"{tmp_path}/whole"))
