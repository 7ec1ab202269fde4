"""Lightning Pose's unsupervised losses: zero on a plausible track, positive (by the expected amount) on a
jumping one or on a pose outside the labels' subspace; soft-argmax finds a known peak."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from posecluster.config import PcaLossConfig, TemporalLossConfig, UnsupervisedConfig
from posecluster.model.decode import soft_argmax
from posecluster.model.unsupervised import PcaLoss, TemporalLoss, build_losses


def _track(steps: np.ndarray) -> torch.Tensor:
    """(1 clip, T frames, 1 part, 2) from per-frame displacements."""
    return torch.tensor(np.cumsum(steps, axis=0), dtype=torch.float32)[None, :, None, :]


def test_temporal_loss_is_zero_on_a_smooth_track_and_charges_the_excess_of_a_jump():
    loss = TemporalLoss(TemporalLossConfig(epsilon_px=20.0, prob_threshold=0.05))
    smooth = _track(np.full((6, 2), [6.0, 8.0]))  # 10 px per frame, under epsilon
    confident = torch.ones(1, 6, 1)
    assert float(loss(smooth, confident)) == 0.0
    jumping = _track(np.array([[0, 0], [6, 8], [30, 40], [6, 8], [0, 0], [0, 0]], dtype=float))
    # One step of 50 px among 5 steps: (50 - 20) / 5 = 6 px.
    assert float(loss(jumping, confident)) == pytest.approx(6.0)
    unsure = confident.clone()
    unsure[0, 2] = 0.01  # the jump lands on a frame the network is unsure of: not charged
    assert float(loss(jumping, unsure)) == 0.0
    assert loss.weight == pytest.approx(1 / (2 * np.exp(5.0)))


def _rigid_poses(count: int, rng) -> np.ndarray:
    """Three parts on a rigid bar that only translates: poses in a 2-D subspace of R^6."""
    offsets = np.array([[0.0, 0.0], [10.0, 5.0], [20.0, 10.0]])
    return rng.uniform(50, 150, (count, 1, 2)) + offsets[None]


def test_pca_loss_is_zero_inside_the_labels_subspace_and_positive_outside():
    rng = np.random.default_rng(0)
    labels = _rigid_poses(40, rng)
    labels[3, 1] = np.nan  # incomplete labels are left out of the fit
    loss = PcaLoss(PcaLossConfig(components_to_keep=0.99), labels)
    assert loss.components.shape == (2, 6) and loss.epsilon < 1e-6
    plausible = torch.tensor(_rigid_poses(8, rng), dtype=torch.float32).reshape(2, 4, 3, 2)
    assert float(loss(plausible, torch.ones(2, 4, 3))) < 1e-3
    broken = plausible.clone()
    broken[0, 1, 2] += torch.tensor([0.0, 30.0])  # one part leaves the bar
    assert float(loss(broken, torch.ones(2, 4, 3))) > 1.0
    with pytest.raises(ValueError, match="labeled poses"):
        PcaLoss(PcaLossConfig(), labels[:5])


def test_losses_are_chosen_by_config_and_off_by_default():
    labels = _rigid_poses(20, np.random.default_rng(1))
    assert build_losses(UnsupervisedConfig(), labels) == []
    chosen = build_losses(UnsupervisedConfig(losses=[{"kind": "temporal"}, {"kind": "pca"}]), labels)
    assert [type(loss) for loss in chosen] == [TemporalLoss, PcaLoss]


def test_soft_argmax_finds_a_sharp_peak_and_its_refinement():
    logits = torch.full((1, 1, 6, 8), -20.0)
    logits[0, 0, 2, 5] = 20.0
    locref = torch.zeros(1, 2, 6, 8)
    locref[0, :, 2, 5] = torch.tensor([0.5, -0.25])
    xy, confidence = soft_argmax(logits, locref, stride=8.0, locref_stdev=2.0)
    # Cell (row 2, column 5) is centred at (5*8+4, 2*8+4); offsets x stdev: (+1, -0.5).
    torch.testing.assert_close(xy[0, 0], torch.tensor([45.0, 19.5]))
    assert float(confidence) == pytest.approx(1.0)
    logits.requires_grad_(True)
    soft_argmax(logits, None, 8.0, 1.0)[0].sum().backward()
    assert logits.grad is not None and torch.isfinite(logits.grad).all()
