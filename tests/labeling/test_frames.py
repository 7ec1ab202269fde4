"""Frame selection on real encoded videos: k-means finds distinct scenes, uniform spreads evenly."""

from __future__ import annotations

import numpy as np
import pytest

from posecluster.data import synthetic
from posecluster.data.video import probe
from posecluster.labeling.frames import frame_range, kmeans_indices, thumbnails, uniform_indices

SCENE_FRAMES = 25


@pytest.fixture(scope="module")
def four_scenes(tmp_path_factory) -> str:
    """One video made of four visually distinct scenes (arena palettes), 25 frames each."""
    frames = []
    for palette in range(4):
        renderer = synthetic.Renderer(synthetic.Scene(width=96, height=80, seed=palette, palette=palette))
        frames += [renderer.render(state) for state in renderer.trajectory(SCENE_FRAMES)]
    uri = str(tmp_path_factory.mktemp("scenes") / "four_scenes.mp4")
    synthetic.encode_video(uri, frames, 96, 80, gop=10)
    return uri


def test_kmeans_picks_one_frame_from_each_distinct_scene(four_scenes):
    info = probe(four_scenes)
    indices, features = thumbnails(info, 0, info.frame_count)
    assert features.shape == (100, 30 * 25)  # 30 px wide, aspect kept
    chosen = kmeans_indices(indices, features, 4, seed=0)
    assert sorted(i // SCENE_FRAMES for i in chosen) == [0, 1, 2, 3], chosen


def test_kmeans_is_reproducible_and_returns_everything_when_there_are_few_frames(four_scenes):
    info = probe(four_scenes)
    indices, features = thumbnails(info, 0, info.frame_count)
    assert kmeans_indices(indices, features, 8, seed=3) == kmeans_indices(indices, features, 8, seed=3)
    assert kmeans_indices(indices[:5], features[:5], 8) == list(range(5))


def test_long_videos_are_subsampled_before_clustering(four_scenes):
    info = probe(four_scenes)
    indices, features = thumbnails(info, 0, info.frame_count, max_frames=30)
    assert len(indices) <= 30 and np.all(np.diff(indices) == 4)


def test_chosen_frames_are_kept_exactly_however_long_the_range(four_scenes):
    """Outlier candidates are arbitrary frames: none may be lost to the subsampling of long videos."""
    info = probe(four_scenes)
    wanted = {3, 4, 57, 58, 99}
    indices, features = thumbnails(info, 3, 100, max_frames=10, only=wanted)
    assert indices.tolist() == sorted(wanted) and features.shape == (5, 30 * 25)


def test_uniform_spreads_frames_over_the_chosen_range(four_scenes):
    info = probe(four_scenes)
    first, last = frame_range(info, 0.5, 1.0)
    assert (first, last) == (50, 100)
    assert uniform_indices(first, last, 5) == [55, 65, 75, 85, 95]
    assert uniform_indices(0, 3, 10) == [0, 1, 2]
    with pytest.raises(ValueError, match="start < stop"):
        frame_range(info, 0.8, 0.2)
