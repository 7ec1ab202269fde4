"""Frame-to-frame linking of one segment, on frames small enough to follow by hand."""

from __future__ import annotations

import numpy as np
import pytest

from posecluster.errors import InputError
from posecluster.tracking import FrameDetections, join_segments, links_into, track_segment


def frame(*xs):
    """One frame: an animal with one body part at (x, 0) per x, in the order given."""
    poses = np.array([[[x, 0.0, 0.9]] for x in xs]).reshape(len(xs), 1, 3)
    return FrameDetections(poses)


# A stands at x=0, B at x=50; B is missed in frame 2, and frame 3 lists B before A.
FRAMES = [frame(0, 50), frame(0, 50), frame(0), frame(50, 0), frame(0, 50)]


def whole(frames):
    """The whole video's tracklets: one segment, joined (which links into its first two frames)."""
    return join_segments([track_segment(frames, 0, len(frames))]).tracklets


def test_an_animal_missed_for_a_frame_ends_its_tracklet_and_a_new_one_starts():
    t = whole(FRAMES)
    # A: (frame 0, row 0) through frame 4; B: (0, 1) in frames 0-1, then (3, 0) in frames 3-4.
    assert t.first_frame.tolist() == [0, 0, 3] and t.first_index.tolist() == [0, 1, 0]
    assert t.last_frame.tolist() == [4, 1, 4] and t.last_index.tolist() == [0, 1, 1]
    assert t.detections.tolist() == [5, 2, 2]


def test_a_segment_leaves_the_links_into_its_first_two_frames_to_the_join():
    # Each detection of frames 0 and 1 begins a tracklet; the ones after are linked as the whole video's.
    segment = track_segment(FRAMES, 0, 5)
    t = segment.tracklets
    # A: (0, 0) alone, then (1, 0) through frame 4; B: (0, 1) alone, (1, 1) alone, then (3, 0) in frames 3-4.
    assert t.first_frame.tolist() == [0, 0, 1, 1, 3] and t.first_index.tolist() == [0, 1, 0, 1, 0]
    assert t.last_frame.tolist() == [0, 0, 4, 1, 4] and t.detections.tolist() == [1, 1, 4, 1, 2]
    assert segment.counts.tolist() == [2, 2, 1, 2, 2]
    assert segment.labels.tolist() == [0, 1, 2, 3, 2, 4, 2, 2, 4]
    # Its edges: the detections of frames 0, 1 (first two) and 3, 4 (last two), as given.
    assert segment.edges.frames.tolist() == [0, 1, 3, 4] and segment.edges.counts.tolist() == [2, 2, 2, 2]
    assert segment.edges.poses[:, 0, 0].tolist() == [0, 50, 0, 50, 50, 0, 0, 50]


def test_a_segment_is_given_its_own_frames_only_and_links_from_its_third():
    segment = track_segment(FRAMES[2:], 2, 5)
    t = segment.tracklets
    # Frame 2: A (row 0); frame 3: B (row 0), A (row 1), each a tracklet of its own; frame 4 lists A, B
    # and is linked into: A continues row 1 of frame 3, B row 0.
    assert t.first_frame.tolist() == [2, 3, 3] and t.first_index.tolist() == [0, 0, 1]
    assert t.detections.tolist() == [1, 2, 2] and t.last_index.tolist() == [0, 1, 0]
    assert segment.edges.frames.tolist() == [2, 3, 4]  # first two and last two, each once
    with pytest.raises(InputError, match=r"frame 5: more detections than the frames \[3, 5\) given"):
        track_segment(FRAMES[1:], 3, 5)  # frames 1-2 before the segment: refused, never needed


def test_links_into_a_frame_from_the_two_before_are_the_ones_a_segment_makes():
    # Into frame 3: A (row 1) continues A at frame 2 (row 0); B is new (missed in frame 2).
    assert links_into(FRAMES[1], FRAMES[2], FRAMES[3], 3) == {1: 0}
    # Into frame 4 (velocity from frames 2-3): the segment's own link, row 0 <- row 1, row 1 <- row 0.
    assert links_into(FRAMES[2], FRAMES[3], FRAMES[4], 4) == {0: 1, 1: 0}
    assert links_into(None, FRAMES[0], FRAMES[1], 1) == {0: 0, 1: 1}


def test_a_moving_animal_is_linked_and_one_jumping_beyond_max_link_px_is_not():
    frames = [frame(0), frame(5), frame(10), frame(15), frame(45)]
    t = whole(frames)  # a 30 px jump after a steady 5 px/frame
    assert t.first_frame.tolist() == [0, 4] and t.detections.tolist() == [4, 1]


def test_a_detection_with_no_usable_part_is_not_tracked():
    poses = np.array([[[0.0, 0.0, 0.9]], [[9.0, 9.0, 0.01]], [[np.nan, np.nan, np.nan]]])
    segment = track_segment([FrameDetections(poses)], 0, 1)
    assert segment.labels.tolist() == [0, -1, -1] and len(segment.tracklets) == 1


def test_the_wrong_number_of_frames_is_an_input_error_naming_the_frame():
    with pytest.raises(InputError, match=r"video.mp4, frame 4: .*\[3, 4\) given, \[3, 5\) needed"):
        track_segment(FRAMES[3:4], 3, 5, source="video.mp4")
    with pytest.raises(InputError, match="frame 2: more detections"):
        track_segment(FRAMES, 0, 2, source="video.mp4")


def test_poses_of_the_wrong_shape_are_an_input_error_naming_the_frame():
    with pytest.raises(InputError, match=r"frame 1: poses must be \(animals, body parts, 3\)"):
        track_segment([FRAMES[0], np.zeros((2, 4))], 0, 2)
    with pytest.raises(InputError, match="frame 0: identity must be"):
        track_segment([(np.zeros((2, 1, 3)), np.zeros((3, 2)))], 0, 1)
