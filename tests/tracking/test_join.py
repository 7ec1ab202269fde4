"""Joining segments' tracklets across cuts."""

from __future__ import annotations

from dataclasses import fields

import numpy as np
import pytest

from posecluster.tracking import Tracklets, join_segments, scenes, track_segment


@pytest.fixture(scope="module")
def detections():
    config = scenes.SceneConfig(frames=200, seed=7)
    return scenes.detections(scenes.ground_truth(config), config)


def segments(detections, cuts):
    bounds = [0, *cuts, len(detections)]
    return [track_segment(detections[a:b], a, b) for a, b in zip(bounds, bounds[1:])]


def summaries(parts):
    """The segments as a join reads them: tracklets and edge detections, no other detection."""
    for part in parts:
        part.counts = part.labels = part.poses = None
    return parts


def test_tracklets_joined_across_cuts_have_the_summary_of_tracklets_tracked_in_one_piece(detections):
    whole = join_segments(segments(detections, [])).tracklets
    one_two = np.cumsum(np.tile([1, 2], 66))[:-1].tolist()  # segments of 1 and 2 frames, alternating
    for cuts in ([50, 100, 150], [1, 2, 3, 4, 5, 199], list(range(7, 200, 7)), one_two, list(range(1, 200))):
        joined = join_segments(summaries(segments(detections, cuts)))
        for field in fields(Tracklets):
            assert np.array_equal(getattr(joined.tracklets, field.name), getattr(whole, field.name), equal_nan=True), (cuts, field.name)
        assert [len(rows) for rows in joined.rows_of_segment] == [len(s.tracklets) for s in segments(detections, cuts)]


def test_segments_that_do_not_tile_the_video_are_refused(detections):
    parts = segments(detections, [100])
    with pytest.raises(ValueError, match="starts at frame 100, expected 0"):
        join_segments(parts[1:])
    with pytest.raises(ValueError, match="starts at frame 0, expected 100"):
        join_segments([parts[0], parts[0]])
