"""Score-map and location-refinement targets against arrays computed by hand."""

from __future__ import annotations

import math

import numpy as np
import torch

from posecluster.config import TargetConfig
from posecluster.model.targets import make_targets

# Stride 8 on a 4x4 grid: cell centres at 4, 12, 20, 28. Keypoint (13, 21), radius 10:
# squared distances per cell (rows y=4..28, columns x=4..28) put these cells inside the disk.
EXPECTED_DISK = np.array([[0, 0, 0, 0], [0, 1, 0, 0], [1, 1, 1, 0], [0, 1, 1, 0]], dtype=np.float32)


def targets_for(point, scale=1.0, **config):
    keypoints = torch.tensor([[point, [np.nan, np.nan]]], dtype=torch.float32)  # second part unlabeled
    return make_targets(keypoints, torch.tensor([scale]), (4, 4), 8.0, TargetConfig(**config))


def test_disk_scoremap_matches_hand_computation():
    t = targets_for([13.0, 21.0], radius_px=10.0)
    np.testing.assert_array_equal(t.scoremap[0, 0].numpy(), EXPECTED_DISK)


def test_radius_scales_with_the_image_scale():
    t = targets_for([13.0, 21.0], scale=0.5, radius_px=20.0)
    np.testing.assert_array_equal(t.scoremap[0, 0].numpy(), EXPECTED_DISK)


def test_locref_is_the_offset_over_7_2801_inside_the_disk_only():
    t = targets_for([13.0, 21.0], radius_px=10.0)
    locref, weight = t.locref[0].numpy(), t.locref_weight[0].numpy()
    # cell (row 2, col 0) is centred at (4, 20): offset (9, 1)
    np.testing.assert_allclose(locref[0:2, 2, 0], np.array([9.0, 1.0]) / 7.2801, rtol=1e-6)
    np.testing.assert_array_equal(weight[0], EXPECTED_DISK)
    np.testing.assert_array_equal(weight[1], EXPECTED_DISK)
    assert np.all(locref[0][EXPECTED_DISK == 0] == 0)


def test_unlabeled_parts_have_zero_weight_everywhere():
    t = targets_for([13.0, 21.0], radius_px=10.0)
    assert t.scoremap_weight[0, 0].min() == 1 and t.scoremap_weight[0, 1].max() == 0
    assert t.scoremap[0, 1].max() == 0 and t.locref_weight[0, 2:].max() == 0
    assert torch.isfinite(t.locref).all()


def test_gaussian_targets_peak_near_the_keypoint():
    t = targets_for([12.0, 20.0], kind="gaussian", gaussian_sigma_px=8.0)
    heat = t.scoremap[0, 0].numpy()
    assert heat[2, 1] == 1.0  # the cell centred exactly on the keypoint
    assert heat[2, 2] == np.float32(math.exp(-64 / 128))


def test_unlabeled_parts_are_masked_by_default_or_trained_absent_on_request():
    from posecluster.config import LossConfig
    from posecluster.model.losses import pose_loss

    masked = targets_for([13.0, 21.0], radius_px=10.0)
    absent = targets_for([13.0, 21.0], radius_px=10.0, unlabeled="absent")
    assert TargetConfig().unlabeled == "mask"  # DeepLabCut 3.0's behaviour
    assert masked.scoremap_weight[0, 1].sum() == 0  # the unlabeled part is left out of the loss
    assert torch.all(absent.scoremap_weight[0, 1] == 1) and torch.all(absent.scoremap[0, 1] == 0)
    assert absent.locref_weight[0, 2:].sum() == 0  # never a location target for a missing label
    # A confident detection of the unlabeled part costs nothing when masked, and is penalised when absent.
    logits = torch.full((1, 2, 4, 4), -6.0)
    logits[0, 0] = torch.from_numpy(EXPECTED_DISK) * 12 - 6
    logits[0, 1, 1, 1] = 6.0
    loss = {name: pose_loss({"scoremap": logits}, t, LossConfig(), TargetConfig(unlabeled=name))[0]
            for name, t in (("mask", masked), ("absent", absent))}
    assert loss["absent"] > 3 * loss["mask"]
