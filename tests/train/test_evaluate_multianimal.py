"""The multi-animal error after matching, checked on poses whose distances are worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from posecluster.train.evaluate_multianimal import match_animals, matched_errors

NAN = np.nan
PARTS = ["nose", "tail"]


def animal(nose, tail, likelihood=(0.9, 0.9)):
    return [[*nose, likelihood[0]], [*tail, likelihood[1]]]


def test_predictions_in_another_order_are_matched_to_the_nearest_labeled_animal():
    truth = np.array([[[10, 10], [20, 10]], [[50, 50], [60, 50]]], dtype=float)
    # listed second-animal first, each 3 px (nose) and 4 px (tail) off
    poses = np.array([animal((50, 53), (64, 50)), animal((13, 10), (20, 14))], dtype=float)
    assert sorted(match_animals(truth, poses)) == [(0, 1), (1, 0)]
    result = matched_errors([truth], [poses], [np.ones(2)], PARTS, pcutoff=0.5)
    assert result.matched_animals == 2 and result.labeled_animals == 2 and result.predicted_animals == 2
    assert result.per_bodypart["nose"]["error_px"] == pytest.approx(3.0)
    assert result.per_bodypart["tail"]["error_px"] == pytest.approx(4.0)
    assert result.error_px == pytest.approx(3.5)


def test_a_missed_animal_and_an_unsure_part_count_only_where_they_should():
    truth = np.array([[[10, 10], [20, 10]], [[50, 50], [60, 50]], [[NAN, NAN], [NAN, NAN]]])  # third absent
    # one animal found: its nose 6 px off but unsure (0.2), its tail exact; a second found with only a nose
    poses = np.array([animal((16, 10), (20, 10), (0.2, 0.95)), animal((51, 50), (NAN, NAN), (0.9, NAN))])
    result = matched_errors([truth], [poses], [np.ones(2)], PARTS, pcutoff=0.5)
    assert (result.labeled_animals, result.predicted_animals, result.matched_animals) == (2, 2, 2)
    assert result.per_bodypart["nose"]["error_px"] == pytest.approx((6 + 1) / 2)
    assert result.per_bodypart["nose"]["error_pcutoff_px"] == pytest.approx(1.0)  # the unsure nose left out
    assert result.per_bodypart["tail"]["error_px"] == pytest.approx(0.0)  # the missing tail is not an error
    assert result.error_pcutoff_px == pytest.approx((1 + 0) / 2)


def test_animals_without_a_body_part_in_common_are_never_matched():
    truth = np.array([[[10, 10], [NAN, NAN]]])
    poses = np.array([animal((NAN, NAN), (12, 10))])
    assert match_animals(truth, poses) == []
    result = matched_errors([truth, truth[:0]], [poses, poses[:0]], [np.ones(1), np.ones(0)], PARTS, pcutoff=0.5)
    assert result.matched_animals == 0 and result.images == 2 and np.isnan(result.error_px)
