"""Frame-to-frame linking of one segment, on frames small enough to follow by hand."""

from __future__ import annotations

import numpy as np
import pytest

from posecluster.errors import InputError
from posecluster.tracking import FrameDetections, track_segment, warmup_start


def frame(*xs):
    """One frame: an animal with one body part at (x, 0) per x, in the order given."""
    poses = np.array([[[x, 0.0, 0.9]] for x in xs]).reshape(len(xs), 1, 3)
    return FrameDetections(poses)


# A stands at x=0, B at x=50; B is missed in frame 2, and frame 3 lists B before A.
FRAMES = [frame(0, 50), frame(0, 50), frame(0), frame(50, 0), frame(0, 50)]


def test_an_animal_missed_for_a_frame_ends_its_tracklet_and_a_new_one_starts():
    segment = track_segment(FRAMES, 0, 5)
    t = segment.tracklets
    # A: (frame 0, row 0) through frame 4; B: (0, 1) in frames 0-1, then (3, 0) in frames 3-4.
    assert t.first_frame.tolist() == [0, 0, 3] and t.first_index.tolist() == [0, 1, 0]
    assert t.last_frame.tolist() == [4, 1, 4] and t.last_index.tolist() == [0, 1, 1]
    assert t.detections.tolist() == [5, 2, 2]
    assert segment.counts.tolist() == [2, 2, 1, 2, 2]
    assert segment.labels.tolist() == [0, 1, 0, 1, 0, 2, 0, 0, 2]
    assert segment.start_link.tolist() == [-1, -1, -1]


def test_a_segment_names_the_detection_before_its_start_that_each_tracklet_continues():
    assert [warmup_start(s) for s in (0, 1, 2, 3)] == [0, 0, 0, 1]
    segment = track_segment(FRAMES[1:], 3, 5)  # frames 1-2 are read, not tracked
    t = segment.tracklets
    # Frame 3 lists B (row 0, nothing to continue: B was missed in frame 2), then A (row 1, continuing
    # row 0 of frame 2).
    assert t.first_frame.tolist() == [3, 3] and t.first_index.tolist() == [0, 1]
    assert segment.start_link.tolist() == [-1, 0]


def test_a_moving_animal_is_linked_and_one_jumping_beyond_max_link_px_is_not():
    frames = [frame(0), frame(5), frame(10), frame(15), frame(45)]
    t = track_segment(frames, 0, 5).tracklets  # a 30 px jump after a steady 5 px/frame
    assert t.first_frame.tolist() == [0, 4] and t.detections.tolist() == [4, 1]


def test_a_detection_with_no_usable_part_is_not_tracked():
    poses = np.array([[[0.0, 0.0, 0.9]], [[9.0, 9.0, 0.01]], [[np.nan, np.nan, np.nan]]])
    segment = track_segment([FrameDetections(poses)], 0, 1)
    assert segment.labels.tolist() == [0, -1, -1] and len(segment.tracklets) == 1


def test_the_wrong_number_of_frames_is_an_input_error_naming_the_frame():
    with pytest.raises(InputError, match=r"video.mp4, frame 4: .*\[1, 4\) given, \[1, 5\) needed"):
        track_segment(FRAMES[1:4], 3, 5, source="video.mp4")
    with pytest.raises(InputError, match="frame 2: more detections"):
        track_segment(FRAMES, 0, 2, source="video.mp4")


def test_poses_of_the_wrong_shape_are_an_input_error_naming_the_frame():
    with pytest.raises(InputError, match=r"frame 1: poses must be \(animals, body parts, 3\)"):
        track_segment([FRAMES[0], np.zeros((2, 4))], 0, 2)
    with pytest.raises(InputError, match="frame 0: identity must be"):
        track_segment([(np.zeros((2, 1, 3)), np.zeros((3, 2)))], 0, 1)
