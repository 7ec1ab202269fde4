"""Outlier criteria and filters on a multi-animal table judge and smooth each animal's track alone."""

from __future__ import annotations

import numpy as np
import pytest

from posecluster.analysis.animals import filter_animals, find_animal_outliers
from posecluster.analysis.filtering import FilterOptions
from posecluster.analysis.outliers import OutlierOptions
from posecluster.data.multianimal import AnimalTracks

FRAMES = 30


def two_animals(landmark: bool = True) -> AnimalTracks:
    """Animal a moves right, b left, on smooth curves (at most ~2 px a frame); a landmark stands still."""
    t = np.arange(FRAMES)
    poses = np.full((FRAMES, 2, 1, 3), 0.9)
    poses[:, 0, 0, 0], poses[:, 0, 0, 1] = 10 + 1.5 * t, 20 + 5 * np.sin(t / 4)
    poses[:, 1, 0, 0], poses[:, 1, 0, 1] = 50 - 1.2 * t, 40 + 6 * np.cos(t / 5)
    if not landmark:
        return AnimalTracks("scorer", ["a", "b"], ["nose"], [], poses)
    return AnimalTracks("scorer", ["a", "b"], ["nose"], ["landmark"], poses, np.tile([5.0, 5.0, 0.9], (FRAMES, 1, 1)))


def test_a_spike_in_one_animals_track_is_flagged_for_that_animal_by_jump_and_fitting():
    tracks = two_animals(landmark=False)  # (a still landmark is slow to fit and adds nothing here)
    tracks.poses[18, 1, 0, :2] += 12.0  # b's nose is 17 px off for one frame
    found = find_animal_outliers(tracks, OutlierOptions(algorithms=("jump", "fitting"), epsilon=8.0))
    # The spike and the frame after it (back on track): both a jump; the fit's one-step forecast misses both.
    assert found == {18: ["jump:b", "fitting:b"], 19: ["jump:b", "fitting:b"]}


def test_an_absent_animal_is_not_an_outlier_and_the_median_leaves_its_absence():
    tracks = two_animals()
    tracks.poses[10:15, 1] = np.nan  # b is out of sight (the tracker found no one)
    tracks.poses[22, 0, 0, 2] = 0.001  # a is unsure once
    found = find_animal_outliers(tracks, OutlierOptions(algorithms=("jump", "uncertain"), epsilon=8.0))
    assert found == {22: ["uncertain:a"]}
    filtered = filter_animals(tracks, FilterOptions(method="median", window=5))
    assert np.isnan(filtered.poses[10:15, 1]).all() and not np.isnan(filtered.poses[:10, 1]).any()
    np.testing.assert_array_equal(filtered.unique_poses, tracks.unique_poses)  # a still landmark stays put
    # a's smooth track and b's are each their own running median: nothing is pulled towards the other animal
    np.testing.assert_allclose(filtered.poses[5:8, 0, 0, 0], tracks.poses[5:8, 0, 0, 0], atol=1e-9)


def test_the_ensemble_criterion_is_refused_for_multianimal_tables():
    with pytest.raises(ValueError, match="not run as ensembles"):
        find_animal_outliers(two_animals(), OutlierOptions(algorithms=("ensemble",)))
