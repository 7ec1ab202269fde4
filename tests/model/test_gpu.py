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
