"""Tracking metrics on cases small enough to count by hand: every expected number is derived in the
test from the CLEAR-MOT and IDF1 definitions, not from the code under test."""

from __future__ import annotations

import numpy as np
import pytest

from posecluster.tracking.metrics import tracking_scores

NAN = np.nan


def tracks(*animals):
    """(frames, animals, 1 part, 2) from one list of x positions per animal (None: absent); y = 0."""
    frames = len(animals[0])
    out = np.full((frames, len(animals), 1, 2), NAN)
    for a, xs in enumerate(animals):
        for f, x in enumerate(xs):
            if x is not None:
                out[f, a, 0] = (x, 0.0)
    return out


def test_a_swap_counts_a_switch_for_each_animal_and_halves_idf1():
    truth = tracks([0, 0, 0, 0], [100, 100, 100, 100])
    predicted = tracks([0, 0, 100, 100], [100, 100, 0, 0])  # the two predictions swap at frame 2
    scores = tracking_scores(predicted, truth, threshold_px=10)
    # Frame 2: both true animals are paired with the other prediction than before: 2 switches.
    assert scores.id_switches == 2
    assert scores.id_switches_per_1000_frames == pytest.approx(2 / 4 * 1000)
    assert (scores.misses, scores.false_positives) == (0, 0)
    assert scores.mota == pytest.approx(1 - 2 / 8)  # 8 true detections
    # Best one-to-one pairing of trajectories: each keeps 2 of its 4 frames: IDTP 4 of 8 + 8 detections.
    assert scores.idtp == 4
    assert scores.idf1 == pytest.approx(2 * 4 / (8 + 8))
    assert scores.complete_frames_fraction == 1.0 and scores.all_individuals_fraction == 1.0


def test_swapping_back_is_two_more_switches_and_the_majority_pairing_wins_idf1():
    truth = tracks([0] * 6, [100] * 6)
    predicted = tracks([0, 0, 100, 100, 0, 0], [100, 100, 0, 0, 100, 100])
    scores = tracking_scores(predicted, truth, threshold_px=10)
    assert scores.id_switches == 4
    assert scores.mota == pytest.approx(1 - 4 / 12)
    assert scores.idtp == 8  # 4 frames each under the pairing (0-0, 1-1)
    assert scores.idf1 == pytest.approx(16 / 24)


def test_a_correspondence_that_still_holds_is_kept_even_where_the_nearest_pairing_differs():
    # Frame 1: prediction 0 drifted to 4.5 (still within 5 of truth 0 at 0), prediction 1 to 1 (5 from
    # truth 1 at 6). The nearest pairing would swap them (1 + 1.5 < 4.5 + 5); CLEAR-MOT keeps both.
    truth = tracks([0, 0], [6, 6])
    predicted = tracks([0, 4.5], [6, 1])
    scores = tracking_scores(predicted, truth, threshold_px=5)
    assert scores.id_switches == 0 and scores.mota == 1.0


def test_misses_false_positives_and_absent_frames():
    # Truth in frames 0-2, absent in 3; the prediction misses frame 0 and reports a ghost in frame 3.
    truth = tracks([0, 0, 0, None])
    predicted = tracks([None, 1, 2, 3])
    scores = tracking_scores(predicted, truth, threshold_px=10)
    assert (scores.misses, scores.false_positives, scores.id_switches) == (1, 1, 0)
    assert scores.true_detections == 3 and scores.predicted_detections == 3
    assert scores.mota == pytest.approx(1 - 2 / 3)
    assert scores.idtp == 2 and scores.idf1 == pytest.approx(4 / 6)
    # complete: frame 1, 2 (paired) and 3 (no true animal in view); not frame 0.
    assert scores.complete_frames_fraction == pytest.approx(3 / 4)
    assert scores.all_individuals_fraction == pytest.approx(3 / 4)


def test_a_prediction_beyond_the_threshold_is_a_miss_and_a_false_positive():
    truth = tracks([0, 0])
    predicted = tracks([0, 30])  # frame 1: 30 px away, threshold 10
    scores = tracking_scores(predicted, truth, threshold_px=10)
    assert (scores.misses, scores.false_positives) == (1, 1)
    assert scores.mota == pytest.approx(1 - 2 / 2)


def test_distance_is_the_mean_over_the_parts_both_poses_have():
    truth = np.array([[[[0.0, 0.0], [10.0, 0.0], [20.0, 0.0]]]])  # 1 frame, 1 animal, 3 parts
    near = truth.copy()
    near[0, 0, 0] = (8.0, 0.0)  # 8 px off
    near[0, 0, 2] = (NAN, NAN)  # missing: mean over parts 0 and 1 = (8 + 0) / 2 = 4
    assert tracking_scores(near, truth, threshold_px=4).mota == 1.0
    assert tracking_scores(near, truth, threshold_px=3.9).mota == pytest.approx(1 - 2)


def test_an_individual_the_tracker_never_reports_lowers_the_all_individuals_fraction():
    truth = tracks([0, 0], [100, 100])
    predicted = tracks([0, 0], [None, 100])
    scores = tracking_scores(predicted, truth, threshold_px=10)
    assert scores.all_individuals_fraction == pytest.approx(1 / 2)
    assert scores.misses == 1 and scores.complete_frames_fraction == pytest.approx(1 / 2)
