"""The unsupervised term's importance follows Lightning Pose's AnnealWeight; at 0 nothing is drawn or run."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from posecluster.data.project import read_project
from posecluster.model.precision import Precision
from posecluster.train.loop import build_model
from posecluster.train.unlabeled import UnlabeledTerm
from tests.conftest import tiny_config

FP32 = Precision("fp32", "test")


@pytest.fixture
def config(synthetic_project):
    project = read_project(synthetic_project.uri)
    return tiny_config(project.config, synthetic_project.uri).with_overrides(
        {"unsupervised": {"losses": [{"kind": "temporal"}], "clip_frames": 2}}), project


def test_importance_rises_from_zero_by_a_hundredth_per_epoch_up_to_one(config):
    cfg, project = config
    term = UnlabeledTerm(cfg, project.labels.keypoints)
    assert [term.importance(e) for e in (0, 1, 2, 50)] == pytest.approx([0.0, 0.01, 0.02, 0.5])
    assert term.importance(100) == term.importance(400) == 1.0
    held = UnlabeledTerm(cfg.with_overrides({"unsupervised": {"anneal": {"hold_epochs": 3, "per_epoch": 0.5}}}),
                         project.labels.keypoints)
    assert [held.importance(e) for e in (0, 3, 4, 5, 6)] == [0.0, 0.0, 0.5, 1.0, 1.0]


def test_at_zero_importance_no_clip_is_drawn_and_the_term_adds_nothing(config):
    cfg, project = config
    term = UnlabeledTerm(cfg, project.labels.keypoints)
    drawn = []
    real = term.sampler.sample
    term.sampler.sample = lambda: drawn.append(1) or real()
    model = build_model(cfg, len(project.config.bodyparts), pretrained=False)
    value, parts = term(model, model, torch.device("cpu"), False, FP32, importance=0.0)
    assert float(value) == 0.0 and parts == {} and not drawn
    value, parts = term(model, model, torch.device("cpu"), False, FP32, importance=0.5)
    assert drawn and set(parts) == {"temporal"} and np.isfinite(float(value.detach()))
    assert float(value.detach()) == pytest.approx(0.5 * term.losses[0].weight * parts["temporal"], rel=1e-5)


def test_the_clip_pass_leaves_batchnorm_running_statistics_as_the_labeled_batches_left_them(config):
    """Otherwise inference normalises with statistics of a few near-identical clip frames: the training
    loss looks the same and the test error is not (a benchmark found this)."""
    cfg, project = config
    cfg = cfg.with_overrides({"unsupervised": {"losses": [{"kind": "temporal", "epsilon_px": 0.0,
                                                           "prob_threshold": 0.0}]}})  # never exactly 0
    term = UnlabeledTerm(cfg, project.labels.keypoints)
    model = build_model(cfg, len(project.config.bodyparts), pretrained=False)
    model.train()
    before = {name: value.clone() for name, value in model.state_dict().items() if "running" in name}
    momenta = [m.momentum for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    value, _ = term(model, model, torch.device("cpu"), False, FP32, importance=1.0)
    value.backward()  # the losses still reach the weights
    after = model.state_dict()
    assert before and all(torch.equal(before[name], after[name]) for name in before)
    assert [m.momentum for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)] == momenta
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())
