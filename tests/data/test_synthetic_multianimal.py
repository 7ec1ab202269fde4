"""The rendered multi-animal project: labels and ground truth agree with what the pixels show, the animals
cross, touch and leave the frame, and identity decides whether they can be told apart by colour."""

from __future__ import annotations

from dataclasses import replace

import av
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from posecluster.data import synthetic_multianimal as sm
from posecluster.data.formats import madlc
from posecluster.data.project import read_project

ANIMAL = np.array([45, 40, 48])  # identity: false colour
BODY = sm.BODYPARTS.index("body")


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> sm.SyntheticMultiAnimalProject:
    root = str(tmp_path_factory.mktemp("ma") / "project")
    return sm.write_project(root, labeled_frames=6, video_frames=40)


def _is_animal(rgb: np.ndarray) -> bool:
    return bool(np.abs(rgb.astype(float) - ANIMAL).max() < 30)


def test_the_rendered_project_reads_back_as_a_madlc_project(project):
    read = read_project(project.uri)  # also checks every labeled image exists and holds its labels
    labels = read.labels
    assert read.config.multianimal and read.config.identity is False
    assert read.config.individuals == ["animal1", "animal2", "animal3"]
    assert labels.bodyparts == sm.BODYPARTS and labels.unique_bodyparts == ["landmark"]
    np.testing.assert_array_equal(labels.keypoints, project.labels.keypoints)
    header = (project.uri + "/" + labels.folders()[0] + "/CollectedData_synthetic.csv")
    lines = open(header).read().splitlines()
    assert lines[1].split(",")[3:] == [a for a in read.config.individuals for _ in range(8)] + ["single"] * 2


def test_labeled_points_sit_on_the_animals_in_the_images(project):
    labels = project.labels
    checked = hits = 0
    for i in range(len(labels)):
        pixels = np.asarray(Image.open(labels.image_uri(i)).convert("RGB"))
        for x, y in labels.keypoints[i, :, BODY]:
            if not np.isnan(x):
                hits += _is_animal(pixels[int(round(y)), int(round(x))])
                checked += 1
        lx, ly = labels.unique_keypoints[i, 0]
        assert pixels[int(ly), int(lx)].max() < 80 and pixels[int(ly), int(lx + 0.085 * 28.8)].min() > 180
    assert checked >= 10 and hits >= checked - 2  # an animal drawn over another may cover its centre


def test_video_frames_show_the_animals_where_the_ground_truth_says(project):
    video = project.videos[0]
    truth_table = pd.read_hdf(video.truth_uri)  # DLC's own reading: plain pandas, no key
    assert truth_table.columns.get_level_values("individuals").unique().tolist() == [
        "animal1", "animal2", "animal3", "single"]
    np.testing.assert_array_equal(madlc.read_tracks(video.truth_uri).poses, video.truth.poses)
    with av.open(video.uri) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(frames) == len(video.truth) == 40
    hits = 0
    for f in range(0, 40, 5):
        for a in range(3):
            x, y, likelihood = video.truth.poses[f, a, BODY]
            if not np.isnan(x):
                assert likelihood == 1
                hits += _is_animal(frames[f][int(round(y)), int(round(x))])
    present = int((~np.isnan(video.truth.poses[::5, :, BODY, 0])).sum())
    assert hits >= present - 2  # an animal drawn over another may cover its centre


def test_animals_cross_touch_and_leave_the_frame():
    renderer = sm.MultiAnimalRenderer(sm.MultiAnimalScene())
    truth = renderer.tracks(300)
    events = sm.scene_events(truth, renderer.length)
    assert events["crossings"] >= 3 and events["touching_frames"] >= 10
    assert 10 <= events["frames_with_absent_animal"] <= 150
    assert truth.animals_present().all(axis=1).sum() >= 100  # most frames still have every animal
    # An absent animal is NaN throughout, with no likelihood either.
    absent = ~truth.animals_present()
    assert np.isnan(truth.poses[absent]).all()


def _far_apart_frame(renderer: sm.MultiAnimalRenderer) -> np.ndarray:
    states = renderer.states(np.arange(200))
    for state in states:
        centres = state[:, :2]
        gaps = [np.linalg.norm(centres[a] - centres[b]) for a in range(3) for b in range(a + 1, 3)]
        margin = 0.5 * renderer.length
        inside = ((centres > margin) & (centres < [128 - margin, 96 - margin])).all()
        if min(gaps) > 1.1 * renderer.length and inside:
            return state
    raise AssertionError("no frame with the animals apart")


@pytest.mark.parametrize("identity", [False, True])
def test_identity_decides_whether_animals_differ_in_colour(identity):
    renderer = sm.MultiAnimalRenderer(replace(sm.MultiAnimalScene(noise_sigma=0), identity=identity))
    state = _far_apart_frame(renderer)
    image = renderer.render(state).astype(float)
    colours = [image[int(round(y)), int(round(x))] for x, y, _ in state]
    spread = max(np.abs(colours[a] - colours[b]).max() for a in range(3) for b in range(a + 1, 3))
    assert (spread > 60) if identity else (spread < 3)
    assert sm.project_config(renderer.scene).identity is identity
