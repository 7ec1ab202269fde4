"""The ensemble outlier criterion: frames where an ensemble's members disagree (Lightning Pose)."""

from __future__ import annotations

import numpy as np
import pytest

from posecluster.analysis.outliers import OutlierOptions, find_outliers
from posecluster.data.tracks import PoseTrack


def test_frames_where_members_disagree_are_flagged_and_only_those():
    rng = np.random.default_rng(1)
    truth = np.cumsum(rng.normal(0, 1, (50, 2, 2)), axis=0) + 100
    members = np.repeat(truth[None], 3, 0) + rng.normal(0, 0.5, (3, 50, 2, 2))  # agree to ~1 px
    members[2, 12, 1] += [30, 0]  # one member puts a body part elsewhere
    members[0, 31, 0] += [0, -12]
    track = PoseTrack("s", ["a", "b"], np.concatenate([members.mean(0), np.ones((50, 2, 1))], -1))
    variance = members.var(axis=0)  # independent of the code under test: plain numpy on the members
    flagged = find_outliers(track, OutlierOptions(algorithms=("ensemble",), ensemble_std_px=5.0), variance)
    assert flagged == {12: ["ensemble"], 31: ["ensemble"]}


def test_ensemble_criterion_without_a_variance_table_says_what_to_do():
    track = PoseTrack("s", ["a"], np.ones((5, 1, 3)))
    with pytest.raises(ValueError, match="analyze with an ensemble model"):
        find_outliers(track, OutlierOptions(algorithms=("ensemble",)))
