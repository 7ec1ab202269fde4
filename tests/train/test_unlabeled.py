"""The unsupervised term's importance follows Lightning Pose's AnnealWeight; at 0 nothing is drawn or run."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from posecluster.data.project import read_project
from posecluster.train.loop import build_model
from posecluster.train.unlabeled import UnlabeledTerm
from tests.conftest import tiny_config


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
    value, parts = term(model, model, torch.device("cpu"), False, False, importance=0.0)
    assert float(value) == 0.0 and parts == {} and not drawn
    value, parts = term(model, model, torch.device("cpu"), False, False, importance=0.5)
    assert drawn and set(parts) == {"temporal"} and np.isfinite(float(value.detach()))
    assert float(value.detach()) == pytest.approx(0.5 * term.losses[0].weight * parts["temporal"], rel=1e-5)
