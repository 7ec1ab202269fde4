"""Tracking rendered 3-animal scenes end to end: identities kept through crossings, touching and leaving
the frame, and a sharded run identical to a single-process run wherever the video is cut."""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import pytest

from posecluster.tracking import scenes, track_in_segments, track_video
from posecluster.tracking.metrics import tracking_scores

FRAMES = 600


@pytest.fixture(scope="module")
def scene():
    config = scenes.SceneConfig(frames=FRAMES, seed=3)
    truth = scenes.ground_truth(config)
    return truth, scenes.detections(truth, config)


def centres(truth):
    """(frames, animals, 2) mean of the parts in view; NaN where the animal is absent."""
    in_view = np.isfinite(truth[..., :1])
    count = in_view.sum(axis=2)
    return np.where(count > 0, np.where(in_view, truth, 0).sum(axis=2) / np.maximum(count, 1), np.nan)


def test_the_rendered_scene_has_crossings_touching_and_an_animal_leaving_and_coming_back(scene):
    truth, detections = scene
    with np.errstate(invalid="ignore"):
        apart = np.linalg.norm(centres(truth)[:, 0] - centres(truth)[:, 1], axis=-1)
    assert np.nanmin(apart) < 13  # bodies are 10 px wide: the two pacing animals touch when they pass
    present = np.isfinite(truth[..., 0]).any(axis=2)
    gone = np.flatnonzero(~present[:, 2])
    assert len(gone) > 30 and present[gone[-1] + 1:, 2].any()  # animal 2 leaves and comes back
    assert sum(len(d.poses) > present[f].sum() for f, d in enumerate(detections)) > 5  # false positives
    assert sum(len(d.poses) < present[f].sum() for f, d in enumerate(detections)) > 20  # missed animals


def test_three_animals_that_cross_touch_and_leave_keep_their_identities(scene):
    truth, detections = scene
    tracks = track_video(detections, FRAMES, n_individuals=3)
    assert tracks.shape == (FRAMES, 3, len(scenes.BODYPARTS), 3)
    scores = tracking_scores(tracks, truth, threshold_px=10)
    assert scores.id_switches == 0
    assert scores.idf1 > 0.95 and scores.mota > 0.95
    assert scores.false_positives <= 2  # the spurious animals are left out


def test_with_an_identity_head_each_individual_is_its_identity_column():
    config = scenes.SceneConfig(frames=FRAMES, seed=5, identity=True)
    truth = scenes.ground_truth(config)
    tracks = track_video(scenes.detections(truth, config), FRAMES, n_individuals=3)
    with np.errstate(invalid="ignore"):
        for animal in range(3):
            error = np.linalg.norm(tracks[:, animal, :, :2] - truth[:, animal], axis=-1)
            both = np.isfinite(error).any(axis=1)
            assert np.mean(np.nanmean(error[both], axis=1) < 10) > 0.99


def random_cuts(rng, frames):
    count = int(rng.integers(1, 12))
    return sorted(rng.choice(np.arange(1, frames), size=count, replace=False).tolist())


def test_sharded_tracks_equal_the_single_process_tracks_for_any_cuts(scene):
    truth, detections = scene
    whole = track_video(detections, FRAMES, n_individuals=3)
    present = np.isfinite(truth[..., 0]).any(axis=2)
    missed = [f for f, d in enumerate(detections) if 0 < f and len(d.poses) < present[f].sum()]
    with np.errstate(invalid="ignore"):
        touching = np.flatnonzero(np.linalg.norm(centres(truth)[:, 0] - centres(truth)[:, 1], axis=-1) < 15)
    leaves = np.flatnonzero(present[:-1, 2] & ~present[1:, 2]) + 1
    rng = np.random.default_rng(0)
    cut_sets = [
        list(range(100, FRAMES, 100)),  # 100-frame segments
        [int(f) for f in touching[:8]],  # cuts right at a crossing, frame after frame
        [f for f in missed[:10] if f > 0], [f + 1 for f in missed[:10]],  # at and just after a gap
        [int(f) for f in leaves] + [int(f) + 2 for f in leaves],  # where an animal leaves
        [1, 2, 3, FRAMES - 1],  # one-frame segments: the two frames before a cut lie in two segments
        *[random_cuts(rng, FRAMES) for _ in range(8)],
    ]
    for cuts in cut_sets:
        cuts = sorted(set(c for c in cuts if 0 < c < FRAMES))
        sharded = track_in_segments(detections, cuts, n_individuals=3)
        assert np.array_equal(sharded, whole, equal_nan=True), f"cuts {cuts}"


def test_segments_of_one_and_two_frames_through_a_crossing_give_the_single_process_tracks_with_identities():
    config = scenes.SceneConfig(frames=240, seed=5, identity=True)
    truth = scenes.ground_truth(config)
    detections = scenes.detections(truth, config)
    with np.errstate(invalid="ignore"):
        assert (np.linalg.norm(centres(truth)[:, 0] - centres(truth)[:, 1], axis=-1) < 13).any()  # they touch
    whole = track_video(detections, 240, n_individuals=3)
    one_two = np.cumsum(np.tile([1, 2], 80))[:-1].tolist()  # 1, 3, 4, 6, ...: segments of 1 and 2 frames
    for cuts in (list(range(1, 240)), one_two, one_two[1:]):
        assert np.array_equal(track_in_segments(detections, cuts, n_individuals=3), whole, equal_nan=True), cuts


def test_segments_tracked_by_two_worker_processes_give_the_single_process_tracks(scene):
    _, detections = scene
    whole = track_video(detections, FRAMES, n_individuals=3)
    # forkserver: fresh processes (not copies of this one), as separate machines would be
    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("forkserver")) as pool:
        sharded = track_in_segments(detections, list(range(100, FRAMES, 100)), n_individuals=3, map_fn=pool.map)
    assert np.array_equal(sharded, whole, equal_nan=True)
