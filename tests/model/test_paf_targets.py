"""Multi-animal targets against maps worked out by hand on small grids (stride 8: cell centres 4, 12, ...)."""

from __future__ import annotations

import numpy as np
import torch

from posecluster.config import TargetConfig
from posecluster.model.paf_targets import PafTargetParams, make_multianimal_targets

NAN = float("nan")


def _targets(keypoints, unique=None, graph=((0, 1),), identity=False, grid=(8, 10), **score):
    kp = torch.tensor([keypoints], dtype=torch.float32)
    uq = None if unique is None else torch.tensor([unique], dtype=torch.float32)
    return make_multianimal_targets(kp, uq, torch.ones(1), grid, 8.0, TargetConfig(**score), list(graph),
                                    PafTargetParams(paf_width_px=10.0), identity)


def test_each_cell_refines_towards_the_nearest_animals_keypoint():
    # Part 0 of two animals 16 px apart on one row; radius 17 covers both from the cells between them.
    t = _targets([[[20.0, 20.0], [NAN, NAN]], [[36.0, 20.0], [NAN, NAN]]], radius_px=17.0)
    locref = t.parts.locref[0, 0:2].numpy() * 7.2801
    # cell (row 2, col 2) is centred at (20, 20): animal 0's keypoint is on it.
    np.testing.assert_allclose(locref[:, 2, 2], [0.0, 0.0], atol=1e-5)
    # cell (2, 4) at (36, 20): animal 1's keypoint; cell (2, 3) at (28, 20): a tie, the first animal wins.
    np.testing.assert_allclose(locref[:, 2, 4], [0.0, 0.0], atol=1e-5)
    np.testing.assert_allclose(locref[:, 2, 3], [-8.0, 0.0], atol=1e-5)
    # The score map is the union of both disks: cells within 17 px of either keypoint.
    ys, xs = np.mgrid[0:8, 0:10] * 8 + 4
    near = np.minimum((xs - 20) ** 2 + (ys - 20) ** 2, (xs - 36) ** 2 + (ys - 20) ** 2) <= 17**2
    np.testing.assert_array_equal(t.parts.scoremap[0, 0].numpy(), near.astype(np.float32))


def test_paf_is_the_unit_vector_on_cells_within_the_width_of_the_limb():
    t = _targets([[[12.0, 20.0], [60.0, 20.0]]])
    paf = t.paf[0].numpy()
    expected = np.zeros((8, 10), dtype=np.float32)
    expected[1:4, 1:8] = 1.0  # rows y = 12, 20, 28 (within 10 px of y = 20), columns x = 12 .. 60
    np.testing.assert_array_equal(paf[0], expected)
    np.testing.assert_array_equal(paf[1], np.zeros_like(expected))


def test_crossing_limbs_average_their_fields_where_they_overlap():
    t = _targets([[[12.0, 36.0], [60.0, 36.0]], [[36.0, 12.0], [36.0, 60.0]]])
    paf = t.paf[0].numpy()
    # cell (4, 4) centred at (36, 36) lies on both limbs: the mean of (1, 0) and (0, 1).
    np.testing.assert_allclose(paf[:, 4, 4], [0.5, 0.5])
    np.testing.assert_allclose(paf[:, 4, 1], [1.0, 0.0])  # (12, 36): only the horizontal limb
    np.testing.assert_allclose(paf[:, 1, 4], [0.0, 1.0])  # (36, 12): only the vertical one


def test_an_unlabeled_part_is_masked_over_its_animals_box_only():
    # Animal 0 has part 1 unlabeled; animal 1 is absent (no label): masks nothing.
    t = _targets([[[20.0, 20.0], [NAN, NAN]], [[NAN, NAN], [NAN, NAN]]], radius_px=9.0)
    weight = t.parts.scoremap_weight[0].numpy()
    box = np.zeros((8, 10), dtype=bool)
    box[1:4, 1:4] = True  # cell centres within [11, 29] on both axes: 20 +- 9
    np.testing.assert_array_equal(weight[0], np.ones((8, 10)))
    np.testing.assert_array_equal(weight[1], (~box).astype(np.float32))
    np.testing.assert_array_equal(t.paf_weight[0, 0].numpy(), (~box).astype(np.float32))
    assert torch.isfinite(t.paf).all() and torch.isfinite(t.parts.locref).all()
    absent = _targets([[[20.0, 20.0], [NAN, NAN]], [[NAN, NAN], [NAN, NAN]]], radius_px=9.0, unlabeled="absent")
    assert absent.parts.scoremap_weight.min() == 1 and absent.paf_weight.min() == 1


def test_identity_target_is_the_individual_of_the_nearest_keypoint_inside_a_disk():
    t = _targets([[[20.0, 20.0], [44.0, 20.0]], [[60.0, 52.0], [NAN, NAN]]], identity=True, radius_px=9.0)
    ids, weight = t.identity[0].numpy(), t.identity_weight[0].numpy()
    assert ids[2, 2] == 0 and ids[2, 5] == 0 and ids[6, 7] == 1  # cells at (20,20), (44,20), (60,52)
    assert weight[2, 2] == weight[6, 7] == 1 and weight[0, 9] == 0
    assert weight.sum() == 3 * 5  # radius 9 on stride 8: each keypoint's cell and its 4 neighbours


def test_unique_parts_follow_the_animal_parts_as_single_animal_targets():
    t = _targets([[[20.0, 20.0], [44.0, 20.0]]], unique=[[68.0, 52.0]], radius_px=9.0)
    assert t.parts.scoremap.shape == (1, 3, 8, 10) and t.parts.locref.shape == (1, 6, 8, 10)
    assert t.parts.scoremap[0, 2, 6, 8] == 1 and t.parts.scoremap[0, 2].sum() == 5
