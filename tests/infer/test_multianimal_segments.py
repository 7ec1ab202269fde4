"""Multi-animal segments with detections that are right (the rendered truth plus noise, in shuffled
order, some missed): stored, joined and stitched into the tracked table, scored against the truth, and
the same table whether the video is one segment or cut into many."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from posecluster import storage
from posecluster.data.formats.madlc import read_tracks
from posecluster.data.synthetic_multianimal import MultiAnimalRenderer, MultiAnimalScene
from posecluster.infer.multianimal_segments import (
    AnimalNames, AnimalSegment, join_animal_segments, read_animal_segment, write_animal_segment,
)
from posecluster.infer.segments import SegmentResult
from posecluster.tracking import FrameDetections, TrackingConfig, track_segment, warmup_start
from posecluster.tracking.metrics import tracking_scores

FRAMES = 240
SCENE = MultiAnimalScene(width=128, height=96, seed=3)


@pytest.fixture(scope="module")
def truth():
    return MultiAnimalRenderer(SCENE).tracks(FRAMES)


def detections(truth, seed: int = 0) -> list[FrameDetections]:
    """What a good detector gives: each visible animal with 1 px of noise and likelihood 0.9, in a
    random order per frame, 3% of them missed."""
    rng = np.random.default_rng(seed)
    frames = []
    for poses in truth.poses:
        seen = [a for a in range(len(poses)) if np.isfinite(poses[a, :, 0]).any() and rng.random() > 0.03]
        rows = poses[rng.permutation(seen)].copy() if seen else np.zeros((0, *poses.shape[1:]))
        rows[..., :2] += rng.normal(0, 1.0, rows[..., :2].shape)
        rows[..., 2] = np.where(np.isfinite(rows[..., 0]), 0.9, np.nan)
        frames.append(FrameDetections(rows))
    return frames


def store(found: list[FrameDetections], truth, cuts: list[int], folder: str) -> list[str]:
    """Each segment as a worker stores it: linked from warmup_start(start), its own frames' unique parts."""
    bounds = [0, *cuts, FRAMES]
    uris = []
    for start, stop in zip(bounds, bounds[1:]):
        tracklets = track_segment(found[warmup_start(start):stop], start, stop, TrackingConfig())
        uri = storage.join(folder, f"{start:09d}-{stop:09d}.npz")
        write_animal_segment(uri, AnimalSegment(tracklets, truth.unique_poses[start:stop]),
                             SegmentResult(video_uri="arena.mp4", start=start, stop=stop, frames=stop - start))
        uris.append(uri)
    return uris


def names(truth) -> AnimalNames:
    return AnimalNames("DLC_resnet_50_arenaJan1shuffle1_posecluster", truth.individuals, truth.bodyparts,
                       truth.unique_bodyparts)


def test_right_detections_become_tracks_that_keep_every_animals_identity(truth, tmp_path):
    uris = store(detections(truth), truth, [], str(tmp_path / "segments"))
    joined, figures = join_animal_segments(uris, names(truth), FRAMES, str(tmp_path / "arena_el"), ("csv",))
    tracks = read_tracks(joined.outputs["h5"])
    scores = tracking_scores(tracks.poses, truth.poses, threshold_px=5.0)
    assert scores.id_switches == 0 and scores.idf1 > 0.95 and scores.mota > 0.9, scores
    np.testing.assert_array_equal(tracks.unique_poses, truth.unique_poses)
    assert figures.individuals_found == 3 and figures.detections == scores.predicted_detections
    assert figures.tracklets >= figures.tracklets_kept >= 3
    # DeepLabCut's tracked layout (its docs): scorer/individuals/bodyparts/coords, unique parts under
    # "single", every frame a row; the csv with the same four header rows.
    frame = pd.read_hdf(joined.outputs["h5"], "df_with_missing")
    assert list(frame.columns.names) == ["scorer", "individuals", "bodyparts", "coords"]
    assert list(dict.fromkeys(frame.columns.get_level_values("individuals"))) == [*truth.individuals, "single"]
    assert frame.index.tolist() == list(range(FRAMES))
    csv = pd.read_csv(joined.outputs["csv"], header=[0, 1, 2, 3], index_col=0)
    np.testing.assert_allclose(csv.to_numpy(), frame.to_numpy(), rtol=1e-12)


@pytest.mark.parametrize("cuts", [[80, 160], [1, 2, 100, 239], list(range(30, FRAMES, 30))])
def test_the_video_cut_anywhere_gives_the_table_of_one_segment(truth, tmp_path, cuts):
    found = detections(truth)
    whole, _ = join_animal_segments(store(found, truth, [], str(tmp_path / "one")), names(truth), FRAMES,
                                    str(tmp_path / "one_el"))
    cut, _ = join_animal_segments(store(found, truth, cuts, str(tmp_path / "many")), names(truth), FRAMES,
                                  str(tmp_path / "many_el"))
    one, many = read_tracks(whole.outputs["h5"]), read_tracks(cut.outputs["h5"])
    np.testing.assert_array_equal(many.poses, one.poses)
    np.testing.assert_array_equal(many.unique_poses, one.unique_poses)


def test_segments_that_do_not_tile_the_video_are_refused(truth, tmp_path):
    uris = store(detections(truth), truth, [80, 160], str(tmp_path))
    with pytest.raises(ValueError, match="expected 80"):
        join_animal_segments([uris[0], uris[2]], names(truth), FRAMES, str(tmp_path / "out_el"))
    with pytest.raises(ValueError, match="cover 160 of 240"):
        join_animal_segments(uris[:2], names(truth), FRAMES, str(tmp_path / "out_el"))
    storage.atomic_write_bytes(str(tmp_path / "bad.npz"), b"not a segment")
    with pytest.raises(ValueError):
        read_animal_segment(str(tmp_path / "bad.npz"))
