"""Ensemble analysis: every frame decoded once, all members on the same batch, EKS tables beside the members'."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("eks", reason="the `ensemble` extra (ensemble-kalman-smoother) is not installed")

from posecluster import api  # noqa: E402
from posecluster.data.formats.poses import read_pose_table, read_track  # noqa: E402
from posecluster.data.video import probe  # noqa: E402
from posecluster.infer import pipeline  # noqa: E402
from posecluster.infer.ensemble import EnsemblePredictor, analyze_ensemble_video, load_predictor  # noqa: E402


def test_each_frame_is_decoded_once_and_every_member_sees_the_same_batch(ensemble_folder, analysed_video,
                                                                           tmp_path, monkeypatch):
    video = analysed_video[0]
    decoded: list[int] = []
    real_read_frames = pipeline.read_frames

    def counting_read_frames(*args, **kwargs):  # the real decoder, counted
        for item in real_read_frames(*args, **kwargs):
            decoded.append(item[0])
            yield item

    monkeypatch.setattr(pipeline, "read_frames", counting_read_frames)
    predictor = load_predictor(ensemble_folder)
    assert isinstance(predictor, EnsemblePredictor) and len(predictor.members) == 3
    inputs: list[list] = [[] for _ in predictor.members]
    for k, member in enumerate(predictor.members):
        member.model.register_forward_pre_hook(lambda module, args, k=k: inputs[k].append(args[0]))

    result = analyze_ensemble_video(predictor, video.uri, str(tmp_path), progress=False)
    frames = probe(video.uri).frame_count
    assert sorted(decoded) == list(range(frames))  # once each, not once per member
    assert [sum(len(b) for b in batches) for batches in inputs] == [frames] * 3
    assert all(a is b is c for a, b, c in zip(*inputs))  # one prepared tensor per batch, shared

    smoothed = read_track(result.outputs["h5"]).poses
    members = np.stack([read_track(result.outputs[f"member{k}"]).poses for k in range(3)])
    assert smoothed.shape == (frames, 4, 3) and np.isfinite(smoothed).all()
    np.testing.assert_allclose(smoothed[..., 2], members[..., 2].mean(0), atol=1e-5)
    variance = read_pose_table(result.outputs["ensemble_variance"])
    ensemble_var_x = variance.xs("ensemble_var_x", axis=1, level="coords").to_numpy()
    np.testing.assert_allclose(ensemble_var_x, members[..., 0].var(0), rtol=1e-4, atol=1e-4)
    posterior_var_x = variance.xs("posterior_var_x", axis=1, level="coords").to_numpy()
    # A variance: finite and never negative (EKS's float32 round-off is clipped), and not all zero.
    assert np.isfinite(posterior_var_x).all() and (posterior_var_x >= 0).all() and posterior_var_x.mean() > 0
    # Against the rendered truth, the smoothed track is no worse than the first member alone.
    error = lambda poses: np.linalg.norm(poses[..., :2] - video.truth, axis=-1).mean()  # noqa: E731
    assert error(smoothed) <= error(members[0]) * 1.05
    meta = json.loads(open(result.outputs["h5"][: -len(".h5")] + "_meta.json").read())
    assert len(meta["ensemble"]["members"]) == 3 and meta["model"]["uri"] == ensemble_folder
    # Every member ran on the one shared batch: each record says the size that ran.
    sizes = [len(batch) for batch in inputs[0]]
    assert {m["batch_size"] for m in meta["precision"]["members"]} == {predictor.batch_size} == {max(sizes)}


def test_analyze_command_on_an_ensemble_folder_writes_the_smoothed_table(ensemble_folder, analysed_video, tmp_path):
    [result] = api.analyze([analysed_video[0].uri], ensemble_folder, str(tmp_path), progress=False)
    assert {"h5", "ensemble_variance", "member0", "member1", "member2"} <= set(result.outputs)
    assert result.outputs["h5"].endswith("_ensemble3.h5") and result.frames_predicted == 90
