"""The Ensemble Kalman Smoother (the maintained `eks` package) on a track with known truth and noise."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("eks", reason="the `ensemble` extra (ensemble-kalman-smoother) is not installed")

from posecluster.analysis.ensemble_smoothing import (  # noqa: E402
    ensemble_median,
    ensemble_stats,
    read_ensemble_variance,
    smooth_ensemble,
    variance_frame,
)


def _truth(frames: int, parts: int) -> np.ndarray:
    t = np.arange(frames)
    return np.stack([np.stack([100 + 40 * np.sin(t / 20 + k), 80 + 30 * np.cos(t / 25 + k)], -1)
                     for k in range(parts)], 1)


def _error(poses: np.ndarray, truth: np.ndarray) -> float:
    return float(np.nanmean(np.linalg.norm(poses[..., :2] - truth, axis=-1)))


def test_smoother_reduces_error_against_known_truth():
    rng = np.random.default_rng(0)
    truth = _truth(240, 2)
    members = np.empty((3, 240, 2, 3))
    members[..., :2] = truth + rng.normal(0, 4.0, members[..., :2].shape)  # known noise, sigma 4 px
    members[..., 2] = rng.uniform(0.7, 1.0, members[..., 2].shape)
    members[1, 100:106, 0, :2] += 40  # one member loses a body part for a few frames
    smoothed = smooth_ensemble(members)
    mean, variance = ensemble_stats(members)
    assert _error(smoothed.poses, truth) < 0.8 * _error(mean, truth)
    assert _error(smoothed.poses, truth) < 0.8 * _error(ensemble_median(members), truth)
    # Likelihood: the members' mean; variance: the members' plain variance in px², large where they disagree.
    np.testing.assert_allclose(smoothed.poses[..., 2], members[..., 2].mean(0), atol=1e-5)
    np.testing.assert_allclose(smoothed.ensemble_var, members[..., :2].var(0))
    assert variance[100:106, 0].min() > 100 > variance[:90, 0].max()
    assert np.all(smoothed.posterior_var > 0)


def test_frames_no_member_predicted_stay_missing_and_tables_round_trip_variance():
    truth = _truth(60, 1)
    members = np.repeat(np.concatenate([truth, np.full((60, 1, 1), 0.9)], -1)[None], 2, 0)
    members[1, :, :, :2] += 1.0
    members[:, 30] = np.nan  # the decoder lost frame 30
    smoothed = smooth_ensemble(members, smooth_param=1.0)
    assert np.isnan(smoothed.poses[30]).all() and np.isfinite(smoothed.poses[29]).all()
    frame = variance_frame("scorer", ["nose"], smoothed.ensemble_var, smoothed.posterior_var)
    np.testing.assert_allclose(read_ensemble_variance(frame, ["nose"])[:30], np.full((30, 1, 2), 0.25))


def test_members_that_agree_exactly_give_a_variance_never_below_zero():
    # Identical members (as perturbed copies of one model often are at a peak): no disagreement at all,
    # where EKS's float32 arithmetic can leave a posterior variance a round-off below zero.
    truth = _truth(120, 2)
    member = np.concatenate([truth, np.full(truth.shape[:2] + (1,), 0.95)], axis=-1)
    smoothed = smooth_ensemble(np.stack([member] * 3))
    assert np.isfinite(smoothed.posterior_var).all() and (smoothed.posterior_var >= 0).all()
    assert (smoothed.ensemble_var < 1e-12).all()
