"""Outlier criteria find the faults injected into a real analysis, and nothing in a clean track."""

from __future__ import annotations

import glob

import numpy as np

from posecluster.analysis.outliers import OutlierOptions, find_outliers, fitting_frames
from posecluster.data.formats.poses import read_track
from tests.analysis.test_filtering import smooth_track


def real_track(poses_folder: str):
    return read_track(next(p for p in glob.glob(f"{poses_folder}/*.h5") if not p.endswith("_filtered.h5")))


def test_injected_jumps_and_low_likelihood_frames_are_found(analysed_video):
    track = real_track(analysed_video[1])
    options = OutlierOptions(algorithms=("jump", "uncertain"), epsilon=20, p_bound=0.01)
    baseline = find_outliers(track, options)  # what the network's own mistakes already trigger
    quiet = [f for f in range(5, len(track) - 5) if not {f - 1, f, f + 1, f + 2} & set(baseline)
             and (track.likelihood[f - 1 : f + 2] >= 0.01).all()]
    jump, dim = quiet[0], quiet[-1]
    track.poses[jump, 2, :2] += 45  # one ear leaps away for one frame
    track.poses[dim, 0, 2] = 0.004  # the snout almost invisible
    found = find_outliers(track, options)
    expected = dict(baseline)
    expected.update({jump: ["jump"], jump + 1: ["jump"], dim: ["uncertain"]})
    assert found == dict(sorted(expected.items()))


def test_fitting_flags_a_displaced_animal_but_not_a_smooth_noisy_one():
    clean = smooth_track(noise=1.0)
    assert not fitting_frames(clean, epsilon=20, p_bound=0.01).any()
    clean.poses[150, :, :2] += 40
    flagged = np.flatnonzero(fitting_frames(clean, epsilon=20, p_bound=0.01))
    assert 150 in flagged and len(flagged) <= 3


def test_frames_the_decoder_lost_are_not_blamed_on_the_network():
    track = smooth_track()
    track.poses[30] = np.nan
    assert find_outliers(track, OutlierOptions(algorithms=("jump", "uncertain"))) == {}
