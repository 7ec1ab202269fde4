"""Videos whose frames cannot be cut in advance, predicted without Ray: a Matroska without cues in one
pass, window by window (and a second pass that skips the windows already written), and spans between a
Matroska file's cues placed by prefix sums; every row equals the predictor on the frame a plain
sequential decode gives at that index."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from posecluster.config import PoseclusterConfig, ProjectConfig
from posecluster.data.video import VideoReader
from posecluster.infer.passes import predict_pass, predict_spans
from posecluster.infer.predictor import Predictor
from posecluster.model.artifact import TrainedModel
from posecluster.model.pose_model import PoseModel


@pytest.fixture(scope="module")
def predictor() -> Predictor:
    torch.manual_seed(1)
    config = PoseclusterConfig(project=ProjectConfig(task="passes", bodyparts=["a"])).with_overrides(
        {"model": {"backbone": {"name": "resnet18", "weights": "none"}, "global_scale": 0.5},
         "infer": {"batch_size": 8}})
    state = PoseModel(config.model, 1).state_dict()
    return Predictor(TrainedModel(config=config, bodyparts=["a"], state_dict=state, identity="passes"))


def truth(predictor: Predictor, frames: list[np.ndarray]) -> np.ndarray:
    return np.concatenate([predictor.predict(np.stack(frames[i : i + 8])) for i in range(0, len(frames), 8)])


def test_one_pass_hands_over_every_window_and_a_second_pass_skips_what_was_written(predictor, matrix, oracles):
    path = matrix["nocues_mkv"]
    assert VideoReader(path).plan().plan == "sequential"
    want = truth(predictor, oracles["nocues_mkv"])
    written: dict[int, tuple] = {}
    info, _ = predict_pass(predictor, VideoReader(path), 10, set(),
                           lambda poses, result: written.setdefault(result.start, (poses, result)))
    assert info.frame_count == len(want)
    assert [(r.start, r.stop) for _, r in written.values()] == [(a, min(a + 10, len(want))) for a in range(0, len(want), 10)]
    got = np.concatenate([poses for poses, _ in written.values()])
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-3)

    again: dict[int, tuple] = {}
    calls = []
    original = predictor.predict
    predictor.predict = lambda frames: calls.append(len(frames)) or original(frames)
    try:
        predict_pass(predictor, VideoReader(path), 10, {0, 2}, lambda poses, result: again.setdefault(result.start, (poses, result)))
    finally:
        predictor.predict = original
    assert sorted(again) == [a for a in range(0, len(want), 10) if a not in (0, 20)]
    assert sum(calls) == len(want) - 20  # the skipped windows were decoded, not predicted
    for start, (poses, _) in again.items():
        np.testing.assert_allclose(poses, written[start][0], rtol=1e-4, atol=1e-3)


def test_spans_placed_by_prefix_sums_give_the_sequential_rows(predictor, matrix, oracles):
    path = matrix["highfps_mkv"]
    plan = VideoReader(path).plan()
    assert plan.plan == "spans" and plan.span_count >= 2
    want = truth(predictor, oracles["highfps_mkv"])
    pieces = [(0, 1), (1, plan.span_count)]
    rows, first = [], 0
    for k0, k1 in pieces:
        poses, result = predict_spans(predictor, VideoReader(path, info=plan), k0, k1)
        assert result.relative and result.start == 0 and result.stop == len(poses)
        placed = result.placed_at(first)
        assert placed.start == first and all(first <= f < placed.stop for f in placed.missing)
        rows.append(poses)
        first = placed.stop
    got = np.concatenate(rows)
    assert len(got) == len(want)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-3)
