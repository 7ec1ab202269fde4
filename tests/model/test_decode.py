from __future__ import annotations

import numpy as np
import torch

from posecluster.config import TargetConfig
from posecluster.model.decode import decode
from posecluster.model.targets import make_targets


def test_decode_is_argmax_cell_centre_plus_scaled_offset():
    logits = torch.full((1, 1, 4, 5), -5.0)
    logits[0, 0, 2, 1] = 3.0
    locref = torch.zeros(1, 2, 4, 5)
    locref[0, :, 2, 1] = torch.tensor([0.5, -0.25])
    pose = decode(logits, locref, stride=8.0, locref_stdev=7.2801)[0, 0].numpy()
    np.testing.assert_allclose(pose, [1 * 8 + 4 + 0.5 * 7.2801, 2 * 8 + 4 - 0.25 * 7.2801, 1 / (1 + np.exp(-3.0))], rtol=1e-6)


def test_targets_decode_back_to_the_keypoint():
    points = torch.tensor([[[37.3, 22.9], [5.2, 60.1]]])
    t = make_targets(points, torch.ones(1), (10, 8), 8.0, TargetConfig())
    logits = t.scoremap * 20 - 10
    poses = decode(logits, t.locref, 8.0, 7.2801)
    np.testing.assert_allclose(poses[0, :, :2].numpy(), points[0].numpy(), atol=1e-4)
