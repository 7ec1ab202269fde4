from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from posecluster.config import LossConfig, TargetConfig
from posecluster.model.losses import pose_loss
from posecluster.model.targets import make_targets


def make(points):
    return make_targets(torch.tensor(points, dtype=torch.float32), torch.ones(len(points)), (6, 6), 8.0, TargetConfig())


def test_loss_is_bce_plus_0_05_huber_over_weighted_elements():
    t = make([[[20.0, 20.0], [30.0, 14.0]]])
    outputs = {"scoremap": torch.zeros(1, 2, 6, 6), "locref": torch.zeros(1, 4, 6, 6)}
    total, parts = pose_loss(outputs, t, LossConfig(), TargetConfig())
    assert math.isclose(parts["scoremap"], math.log(2), rel_tol=1e-6)
    inside = t.locref_weight > 0
    huber = F.huber_loss(torch.zeros_like(t.locref)[inside], t.locref[inside], reduction="mean")
    assert math.isclose(float(total), math.log(2) + 0.05 * float(huber), rel_tol=1e-5)


def test_unlabeled_parts_do_not_affect_the_loss():
    t = make([[[20.0, 20.0], [float("nan"), float("nan")]]])
    base = {"scoremap": torch.zeros(1, 2, 6, 6), "locref": torch.zeros(1, 4, 6, 6)}
    changed = {"scoremap": base["scoremap"].clone(), "locref": base["locref"].clone()}
    changed["scoremap"][0, 1] = 7.0
    changed["locref"][0, 2:] = -3.0
    a, _ = pose_loss(base, t, LossConfig(), TargetConfig())
    b, _ = pose_loss(changed, t, LossConfig(), TargetConfig())
    assert torch.equal(a, b)


def test_a_batch_loss_is_the_mean_of_its_halves():
    # What makes W workers x batch b equal one worker x batch W*b under data parallelism.
    points = [[[20.0, 20.0], [30.0, 14.0]], [[9.0, 35.0], [float("nan"), float("nan")]],
              [[40.0, 8.0], [12.0, 12.0]], [[25.0, 25.0], [33.0, 41.0]]]
    torch.manual_seed(0)
    outputs = {"scoremap": torch.randn(4, 2, 6, 6), "locref": torch.randn(4, 4, 6, 6)}
    whole, _ = pose_loss(outputs, make(points), LossConfig(), TargetConfig())
    halves = [pose_loss({k: v[s] for k, v in outputs.items()}, make(points[s]), LossConfig(), TargetConfig())[0]
              for s in (slice(0, 2), slice(2, 4))]
    assert torch.allclose(whole, (halves[0] + halves[1]) / 2, rtol=1e-6)
