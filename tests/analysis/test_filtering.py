"""Filters on tracks with known faults, and the filter command on a real analysis."""

from __future__ import annotations

import glob

import numpy as np
import pytest

from posecluster.analysis.filtering import FilterOptions, arima, filter_track, median, spline_fill
from posecluster.cli.main import main
from posecluster.data.formats.dlc import read_table
from posecluster.data.formats.poses import read_track
from posecluster.data.tracks import PoseTrack
from tests.conftest import copy_analysis


def smooth_track(frames: int = 240, noise: float = 0.0, seed: int = 0) -> PoseTrack:
    t = np.arange(frames)
    poses = np.zeros((frames, 2, 3))
    poses[:, 0, 0], poses[:, 0, 1] = 100 + 30 * np.sin(t / 20), 80 + 20 * np.cos(t / 25)
    poses[:, 1, :2] = poses[:, 0, :2] + [12, 0]
    poses[..., :2] += np.random.default_rng(seed).normal(0, noise, (frames, 2, 2))
    poses[..., 2] = 0.95
    return PoseTrack("DLC_test", ["snout", "tail"], poses)


def test_median_removes_a_one_frame_spike_and_keeps_undecoded_frames_empty():
    series = np.linspace(0, 10, 50)
    series[20] += 80
    series[30] = np.nan
    out = median(series, 5)
    assert abs(out[20] - series[19:22:2].mean()) < 0.5
    assert np.isnan(out[30]) and not np.isnan(out[29]) and not np.isnan(out[31])
    with pytest.raises(ValueError, match="odd"):
        median(series, 4)


def test_spline_fills_gaps_up_to_the_longest_allowed_and_no_further():
    t = np.arange(100, dtype=float)
    truth = 50 + 20 * np.sin(t / 10)
    series = truth.copy()
    series[20:23] = np.nan  # a 3-frame gap
    series[60:70] = np.nan  # a 10-frame gap
    series[:2] = np.nan  # edges are not extrapolated
    filled = spline_fill(series, max_gap=5)
    np.testing.assert_allclose(filled[20:23], truth[20:23], atol=0.05)
    assert np.isnan(filled[60:70]).all() and np.isnan(filled[:2]).all()
    assert not np.isnan(spline_fill(series)[60:70]).any()


def test_arima_follows_the_track_and_reduces_its_noise():
    clean, noisy = smooth_track(noise=0.0), smooth_track(noise=2.0, seed=1)
    fitted = arima(noisy.xy[:, 0, 0])
    error_before = np.abs(noisy.xy[10:, 0, 0] - clean.xy[10:, 0, 0]).mean()
    error_after = np.abs(fitted[10:] - clean.xy[10:, 0, 0]).mean()
    assert error_after < error_before


@pytest.mark.parametrize("method", ["median", "spline", "arima"])
def test_filters_keep_likelihoods_and_shape(method):
    track = smooth_track(noise=1.0)
    track.poses[100, 1, 2] = 0.001  # below p_bound: missing for spline/arima
    out = filter_track(track, FilterOptions(method=method))
    assert out.poses.shape == track.poses.shape
    np.testing.assert_array_equal(out.likelihood, track.likelihood)
    assert not np.isnan(out.xy[5:-5]).any()


def test_the_filter_command_writes_a_dlc_table_beside_the_original(analysed_video, tmp_path):
    poses = copy_analysis(analysed_video[1], tmp_path / "poses")
    assert main(["filter", poses, "--method", "median", "--format", "csv"]) == 0
    original_uri = next(p for p in glob.glob(f"{poses}/*.h5") if not p.endswith("_filtered.h5"))
    filtered_uri = original_uri[: -len(".h5")] + "_filtered.h5"
    original, filtered = read_track(original_uri), read_track(filtered_uri)
    assert filtered.bodyparts == original.bodyparts and len(filtered) == len(original) == 90
    np.testing.assert_array_equal(filtered.likelihood, original.likelihood)
    assert read_table(filtered_uri[: -len(".h5")] + ".csv").shape == (90, 12)
    assert not np.array_equal(filtered.xy, original.xy)
