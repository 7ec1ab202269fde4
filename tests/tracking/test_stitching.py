"""Stitching tracklets into a fixed number of individuals, on scenes small enough to reason about."""

from __future__ import annotations

import numpy as np

import pytest

from posecluster.config import TrackingConfig
from posecluster.tracking import FrameDetections, join_segments, stitch, track_segment


def scene(n_frames, animals):
    """The tracklets of a video (one segment, joined); animals: (x(t), y(t), frames present) per animal,
    one body part each, likelihood 0.9."""
    frames = []
    for t in range(n_frames):
        poses = [[[x(t), y(t), 0.9]] for x, y, present in animals if t in present]
        frames.append(FrameDetections(np.array(poses).reshape(len(poses), 1, 3)))
    return join_segments([track_segment(frames, 0, n_frames)]).tracklets


def individual_of_key(t, individuals):
    return {(int(f), int(i)): int(k) for f, i, k in zip(t.first_frame, t.first_index, individuals)}


def stitched(tracklets, n_individuals):
    """Each tracklet's individual, the same whether the flow is solved over the whole video at once or in
    windows shorter than the gaps and the tracklets (each window's decisions handed on to the next)."""
    whole = individual_of_key(tracklets, stitch(tracklets, n_individuals))
    for width in (1, 3, 10, 25):
        windowed = stitch(tracklets, n_individuals, TrackingConfig(stitch_window_frames=width))
        assert individual_of_key(tracklets, windowed) == whole, f"windows of {width} frames"
    return whole


def test_a_gap_is_bridged_and_a_false_positive_inside_it_is_left_out():
    # One animal walking right at 2 px/frame, missed in frames 10-14; a ghost at (200, 200) in 11-12.
    tracklets = scene(30, [(lambda t: 2.0 * t, lambda t: 0.0, set(range(30)) - set(range(10, 15))),
                         (lambda t: 200.0, lambda t: 200.0, {11, 12})])
    assert stitched(tracklets, 1) == {(0, 0): 0, (11, 0): -1, (15, 0): 0}


def test_with_more_animals_in_view_than_individuals_the_shortest_track_is_left_out():
    tracklets = scene(30, [(lambda t: 0.0, lambda t: 0.0, set(range(30))),
                         (lambda t: 100.0, lambda t: 0.0, set(range(30))),
                         (lambda t: 200.0, lambda t: 0.0, set(range(10, 20)))])
    assert stitched(tracklets, 2) == {(0, 0): 0, (0, 1): 1, (10, 2): -1}


def test_an_animal_back_after_a_long_absence_is_the_individual_that_left_there():
    # A stays at x=20 throughout; B at x=300 leaves after frame 39 and is back at frame 140 (100 frames
    # away, beyond max_gap_frames = 60). A third individual was never seen: B stays B.
    tracklets = scene(180, [(lambda t: 20.0, lambda t: 0.0, set(range(180))),
                          (lambda t: 300.0, lambda t: 0.0, set(range(40)) | set(range(140, 180)))])
    assert stitched(tracklets, 3) == {(0, 0): 0, (0, 1): 1, (140, 1): 1}


@pytest.mark.parametrize("width", [1, 7, 40, 500])
def test_windows_never_hold_more_tracks_than_individuals_and_leave_the_short_ghosts_out(width):
    # Two animals pacing for 400 frames, each missed for 5 frames every 50 (gaps bridged across window
    # boundaries), and a ghost for 3 frames every 40 frames: windows of any width give the same two tracks.
    def pacing(x0):
        return (lambda t: x0 + 40.0 * np.sin(t / 30.0), lambda t: 50.0, {t for t in range(400) if t % 50 >= 5})
    ghost = (lambda t: 500.0, lambda t: 500.0, {t for t in range(400) if t % 40 < 3})
    tracklets = scene(400, [pacing(0.0), pacing(200.0), ghost])
    individual = stitch(tracklets, 2, TrackingConfig(stitch_window_frames=width))
    ghosts = tracklets.first_frame % 40 < 3
    ghosts &= np.isclose(tracklets.head_poses[:, 0, 0, 0], 500.0)
    assert (individual[ghosts] == -1).all()
    x_start = tracklets.head_poses[:, 0, 0, 0]
    left, right = individual[~ghosts & (x_start < 100)], individual[~ghosts & (x_start > 100) & (x_start < 300)]
    assert len(left) == len(right) == 8 and set(left) == {0} and set(right) == {1}


def test_a_long_false_track_loses_to_a_longer_animal_that_appears_before_it_ends():
    # One individual; a still object detected for 2,100 frames, longer than a window, and an animal from
    # frame 2,050 to 5,999: the window deciding the object looks on to its end and keeps the animal.
    tracklets = scene(6000, [(lambda t: 0.0, lambda t: 0.0, set(range(2100))),
                           (lambda t: 300.0, lambda t: 0.0, set(range(2050, 6000)))])
    assert individual_of_key(tracklets, stitch(tracklets, 1)) == {(0, 0): -1, (2050, 1): 0}
    # Beyond the lookahead the earlier tracklet is kept unweighed (the documented limit).
    short = TrackingConfig(stitch_window_frames=100, stitch_lookahead_frames=500)
    assert individual_of_key(tracklets, stitch(tracklets, 1, short)) == {(0, 0): 0, (2050, 1): -1}
