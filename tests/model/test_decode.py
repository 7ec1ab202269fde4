from __future__ import annotations

import math

import numpy as np
import torch

from posecluster.config import TargetConfig
from posecluster.model.decode import cutoff_margins, decode, rival_margins, shifted_cell_margins
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


def _bump(height: int, width: int, y: int, x: int, peak: float) -> torch.Tensor:
    """A smooth peak: its neighbours are lower but above the background, as a trained map's are."""
    ys, xs = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    return peak - 0.8 * ((ys - y) ** 2 + (xs - x) ** 2).float()


def test_a_rival_peak_sets_the_margin_and_the_top_peaks_own_shoulder_does_not():
    one_peak = _bump(12, 16, 4, 5, 3.0)
    two_peaks = torch.maximum(_bump(12, 16, 4, 5, 3.0), _bump(12, 16, 9, 13, 2.7)).clamp(min=-8.0)
    level = torch.full((12, 16), -6.0)  # a flat map: every cell ties with the top one
    margins = rival_margins(torch.stack([one_peak, two_peaks, level])[None])[0]
    assert torch.isinf(margins[0])  # the 8 cells around the top are lower but not rivals
    assert abs(float(margins[1]) - 0.3) < 1e-5
    assert float(margins[2]) == 0.0


def test_rivals_are_found_per_body_part_and_frame():
    maps = torch.full((2, 3, 8, 8), -8.0)
    maps[0, 0, 1, 1], maps[0, 0, 6, 6] = 2.0, 1.9  # close call
    maps[0, 1, 1, 1], maps[0, 1, 6, 6] = 2.0, -3.0  # clear winner
    maps[1, 2, 3, 3], maps[1, 2, 3, 5] = 1.0, 1.5  # two cells apart: the rival wins by 0.5
    margins = rival_margins(maps)
    np.testing.assert_allclose(margins[0, :2].numpy(), [0.1, 5.0], atol=1e-6)
    assert abs(float(margins[1, 2]) - 0.5) < 1e-6


def test_a_neighbour_of_the_top_cell_is_a_close_call_only_where_taking_it_moves_the_keypoint():
    """rival_margins leaves out the top's 8 neighbours; the argmax can still move there under a reduced
    path, and the keypoint with it unless the neighbour's offset points at the same place."""
    maps = torch.full((1, 3, 6, 6), -5.0)
    maps[0, :, 2, 2], maps[0, :, 2, 3] = 3.0, 2.9  # a neighbour 0.1 logits below the top, in every map
    maps[0, 2, 5, 5] = 2.0  # far away: a rival peak, not a neighbour
    locref = torch.zeros(1, 6, 6, 6)
    locref[0, 0, 2, 3] = -8.0 / 7.2801  # part 0 (x offsets in channel 0): points back at the top's spot
    locref[0, 2, 2, 3] = -4.0 / 7.2801  # part 1: halfway back: taking it moves the keypoint 4 px
    margins = shifted_cell_margins(maps, locref, stride=8.0, locref_stdev=7.2801, move_px=1.0)[0]
    assert float(margins[0]) == 8.0  # only the 5-logit-lower neighbours that decode 8 px away count
    assert abs(float(margins[1]) - 0.1) < 1e-5 and abs(float(margins[2]) - 0.1) < 1e-5  # part 2: no offsets
    # What the rival search alone saw: the flat background 8 below, and part 2's far peak 1 below.
    np.testing.assert_allclose(rival_margins(maps)[0].numpy(), [8.0, 8.0, 1.0], atol=1e-6)
    corner = torch.full((1, 1, 4, 4), -5.0)
    corner[0, 0, 0, 0] = 1.0  # neighbours outside the map do not exist
    assert float(shifted_cell_margins(corner, None, 8.0, 7.2801, 1.0)[0, 0]) == 6.0


def test_a_top_logit_near_the_p_cutoff_is_a_close_call_and_one_far_from_it_is_not():
    # logit(0.6) = log(1.5) = 0.405: a top of 0.5 lies 0.095 from crossing it, a top of 4 lies 3.595 away.
    maps = torch.full((1, 2, 5, 5), -6.0)
    maps[0, 0, 2, 2], maps[0, 1, 1, 3] = 0.5, 4.0
    margins = cutoff_margins(maps, 0.6)
    torch.testing.assert_close(margins, torch.tensor([[0.5 - math.log(1.5), 4.0 - math.log(1.5)]]))
    assert torch.isinf(cutoff_margins(maps, 0.0)).all()  # no cutoff, no decision to cross
