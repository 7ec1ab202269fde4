"""CUDA paths: mixed precision and channels_last in training and inference. CI has no GPU."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from posecluster.data.project import read_project
from posecluster.infer.predictor import Predictor
from posecluster.train.checkpoint import load_model
from posecluster.train.loop import train
from tests.conftest import tiny_config

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


def test_cuda_training_uses_mixed_precision_and_learns(synthetic_project, tmp_path):
    project = read_project(synthetic_project.uri)
    config = tiny_config(project.config, project.uri, epochs=6).with_overrides({"train": {"device": "cuda"}})
    result = train(config, project.labels, str(tmp_path / "run"))
    losses = [h["loss"] for h in result.history]
    assert losses[-1] < losses[0] and all(np.isfinite(losses))


def test_cuda_predictions_agree_with_cpu(trained_run, synthetic_project):
    trained = load_model(trained_run[0])
    frames = np.random.default_rng(0).integers(0, 255, (4, 80, 96, 3), dtype=np.uint8)
    cpu = Predictor(trained, trained.config.infer.model_copy(update={"device": "cpu", "mixed_precision": "off"}))
    gpu = Predictor(trained, trained.config.infer.model_copy(update={"device": "cuda"}))
    assert gpu.amp and gpu.channels_last
    a, b = cpu.predict(frames), gpu.predict(frames)
    # bf16/fp16 moves the argmax by at most a cell on some frames; compare likelihood and most positions.
    close = np.linalg.norm(a[..., :2] - b[..., :2], axis=-1) < 2.0
    assert close.mean() > 0.9


def test_calibration_and_rechecks_run_on_cuda(trained_run, synthetic_project, tmp_path):
    """Calibration checks bf16/fp16 by CUDA autocast, rechecks included (their rows and masks on the GPU),
    and a CUDA predictor predicts its close calls again in fp32."""
    from dataclasses import replace

    from posecluster.train.calibrate import calibrate_run
    from tests.conftest import copy_finished_run

    run = str(tmp_path / "run")
    copy_finished_run(trained_run[0], run)
    calibrated = calibrate_run(run, read_project(synthetic_project.uri).labels, count=8)
    reduced = calibrated.reduced
    assert set(reduced.recheck_margins) == {"bf16", "fp16", "int8"}
    assert reduced.checks["bf16"].arithmetic == "cuda autocast bfloat16"
    assert reduced.checks["fp16"].arithmetic == "cuda autocast float16"
    frames = np.random.default_rng(1).integers(0, 255, (6, 80, 96, 3), dtype=np.uint8)

    def on_cuda(model, setting):
        return Predictor(model, model.config.infer.model_copy(update={"device": "cuda", "mixed_precision": setting,
                                                                      "batch_size": 6}))

    exact = on_cuda(calibrated, "off").predict(frames)
    rechecked = on_cuda(calibrated, "on")
    assert rechecked.recheck_chain and rechecked.recheck_chain[-1][1] == "fp32"
    assert rechecked.predict(frames).shape == exact.shape and 0 <= rechecked.rechecked_frames <= len(frames)
    # Margins no decision stays under: every frame is predicted again in fp32, so the poses are fp32's.
    everything = replace(calibrated, reduced=replace(reduced, recheck_margins={p: 1e9 for p in reduced.recheck_margins}))
    all_rechecked = on_cuda(everything, "on")
    poses = all_rechecked.predict(frames)
    assert all_rechecked.rechecked_frames == len(frames)
    np.testing.assert_array_equal(all_rechecked.exact_rows, np.arange(len(frames)))
    np.testing.assert_allclose(poses, exact, atol=1e-3)
