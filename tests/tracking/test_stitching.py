"""Stitching tracklets into a fixed number of individuals, on scenes small enough to reason about."""

from __future__ import annotations

import numpy as np

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


def test_a_gap_is_bridged_and_a_false_positive_inside_it_is_left_out():
    # One animal walking right at 2 px/frame, missed in frames 10-14; a ghost at (200, 200) in 11-12.
    tracklets = scene(30, [(lambda t: 2.0 * t, lambda t: 0.0, set(range(30)) - set(range(10, 15))),
                         (lambda t: 200.0, lambda t: 200.0, {11, 12})])
    individuals = individual_of_key(tracklets, stitch(tracklets, n_individuals=1))
    assert individuals == {(0, 0): 0, (11, 0): -1, (15, 0): 0}


def test_with_more_animals_in_view_than_individuals_the_shortest_track_is_left_out():
    tracklets = scene(30, [(lambda t: 0.0, lambda t: 0.0, set(range(30))),
                         (lambda t: 100.0, lambda t: 0.0, set(range(30))),
                         (lambda t: 200.0, lambda t: 0.0, set(range(10, 20)))])
    individuals = individual_of_key(tracklets, stitch(tracklets, n_individuals=2))
    assert individuals == {(0, 0): 0, (0, 1): 1, (10, 2): -1}


def test_an_animal_back_after_a_long_absence_is_the_individual_that_left_there():
    # A stays at x=20 throughout; B at x=300 leaves after frame 39 and is back at frame 140 (100 frames
    # away, beyond max_gap_frames = 60). A third individual was never seen: B stays B.
    tracklets = scene(180, [(lambda t: 20.0, lambda t: 0.0, set(range(180))),
                          (lambda t: 300.0, lambda t: 0.0, set(range(40)) | set(range(140, 180)))])
    individuals = individual_of_key(tracklets, stitch(tracklets, n_individuals=3))
    assert individuals == {(0, 0): 0, (0, 1): 1, (140, 1): 1}
