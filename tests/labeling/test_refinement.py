"""The refinement loop: outlier frames into the project with predictions as initial labels, a labeler
corrects some, merge makes a new iteration, and retraining uses the corrected labels."""

from __future__ import annotations

import glob
import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from posecluster import storage
from posecluster.analysis.outliers import OutlierOptions, find_outliers
from posecluster.cli.main import main
from posecluster.data import synthetic
from posecluster.data.formats import dlc
from posecluster.data.formats.poses import read_track, write_track
from posecluster.data.project import read_project
from posecluster.data.split import Split
from posecluster.labeling.project_frames import folder_labels
from posecluster.train.loop import train
from tests.conftest import copy_analysis, tiny_config

FOLDER = "labeled-data/trial7"


@pytest.fixture
def project(tmp_path) -> str:
    """The session detector's training project, freshly written (the loop modifies it)."""
    return synthetic.write_project(str(tmp_path / "project"), labeled_frames=32, video_frames=16,
                                   scene=synthetic.Scene(width=96, height=80, seed=3, body_length=0.4)).uri


@pytest.fixture
def faulty_poses(analysed_video, tmp_path) -> tuple[str, list[int]]:
    """A copy of the analysis with three injected whole-body jumps the network 'made'."""
    folder = copy_analysis(analysed_video[1], tmp_path / "poses")
    (meta_path,) = Path(folder).glob("*_meta.json")
    meta = json.loads(meta_path.read_text())
    track = read_track(meta["outputs"]["h5"])
    injected = [20, 45, 70]
    for frame in injected:
        track.poses[frame, :, :2] += 35
    write_track(track, meta["outputs"]["h5"])
    # as the analysis itself would have recorded them: the meta names the table it describes by sha256
    meta["table_sha256"] = hashlib.sha256(Path(meta["outputs"]["h5"]).read_bytes()).hexdigest()
    meta_path.write_text(json.dumps(meta))
    return folder, injected


def test_outliers_merge_and_retrain_use_the_corrected_labels(project, faulty_poses, analysed_video, tmp_path, capsys):
    poses, injected = faulty_poses
    video = analysed_video[0]
    assert main(["outliers", poses, "--project", project, "--algorithm", "jump", "--n", "4"]) == 0
    assert "written for labeling" in capsys.readouterr().out

    record = json.loads(storage.read_bytes(f"{project}/{FOLDER}/outliers-iter0.json"))
    frames = {name: entry["frame"] for name, entry in record["frames"].items()}
    (table,) = [t for t in glob.glob(f"{poses}/*.h5") if not t.endswith("_filtered.h5")]
    track = read_track(table)
    candidates = find_outliers(track, OutlierOptions(algorithms=("jump",)))
    assert {f for i in injected for f in (i, i + 1)} <= set(candidates) and len(candidates) > 4
    assert len(frames) == 4 and set(frames.values()) <= set(candidates)  # reduced by k-means to --n
    assert all(entry["reasons"] == ["jump"] for entry in record["frames"].values())
    config = dlc.read_project_config(f"{project}/config.yaml")
    labels = folder_labels(project, config, FOLDER)
    for name, frame in frames.items():
        assert Path(project, name).exists()
        predicted = track.poses[frame]
        expected = np.where((predicted[:, 2] >= config.pcutoff)[:, None], predicted[:, :2], np.nan)
        np.testing.assert_allclose(labels.keypoints[labels.images.index(name)], expected)  # initial labels
    machine = pd.read_hdf(f"{project}/{FOLDER}/machinelabels-iter0.h5")
    assert sorted(machine.index) == sorted(frames) and "likelihood" in machine.columns.get_level_values("coords")

    # A labeler corrects two frames to the true positions and accepts the other two as predicted.
    corrected = sorted(frames)[:2]
    for name in corrected:
        labels.keypoints[labels.images.index(name)] = video.truth[frames[name]]
    dlc.write_tables(labels, project)

    assert main(["merge", project]) == 0
    assert "2 corrected, 2 accepted as predicted" in capsys.readouterr().out
    assert yaml.safe_load(storage.read_bytes(f"{project}/config.yaml"))["iteration"] == 1
    assert main(["merge", project]) == 2  # nothing proposed for iteration 1 yet

    dataset = read_project(project)
    run = str(tmp_path / "run-iter1")
    train(tiny_config(dataset.config, project, epochs=1), dataset.labels, run)
    split = Split.load(f"{run}/split.json")
    used = set(split.train_images) | set(split.test_images)
    assert set(frames) <= used and len(used) == 32 + 4
    for name in corrected:
        np.testing.assert_allclose(dataset.labels.keypoints[dataset.labels.images.index(name)], video.truth[frames[name]])


def test_merge_can_keep_only_frames_someone_refined(project, faulty_poses, analysed_video):
    poses, _ = faulty_poses
    assert main(["outliers", poses, "--project", project, "--algorithm", "jump", "--n", "3"]) == 0
    config = dlc.read_project_config(f"{project}/config.yaml")
    labels = folder_labels(project, config, FOLDER)
    labels.keypoints[0] += 1.5  # one nudged; the rest untouched
    dlc.write_tables(labels, project)
    assert main(["merge", project, "--refined-only"]) == 0
    assert folder_labels(project, config, FOLDER).images == [labels.images[0]]


def test_a_second_outliers_run_by_another_model_leaves_machine_labels_with_one_scorer(project, faulty_poses,
                                                                                      analysed_video):
    from dataclasses import replace

    from posecluster.labeling.folder_table import read_folder_table
    from posecluster.labeling.outliers import extract_track_outliers

    poses, _ = faulty_poses
    (table,) = [t for t in glob.glob(f"{poses}/*.h5") if not t.endswith("_filtered.h5")]
    track, video = read_track(table), analysed_video[0].uri
    jumps = OutlierOptions(algorithms=("jump",))
    first = extract_track_outliers(video, table, track, project, jumps, n=2)
    # A rerun with another model, whose poses differ from the first's everywhere.
    other = replace(track, scorer="DLC_resnet50_otherJan1shuffle1_5000", poses=track.poses + np.array([3.0, -2.0, 0.0]))
    second = extract_track_outliers(video, table, other, project, jumps, n=4, seed=1)
    proposed = set(first.new_images) | set(second.new_images)
    assert len(first.new_images) == 2 and set(second.new_images) - set(first.new_images)
    machine = pd.read_hdf(f"{project}/{FOLDER}/machinelabels-iter0.h5")
    assert machine.columns.get_level_values("scorer").unique().tolist() == [other.scorer]
    assert set(machine.index) == proposed and machine.shape[1] == 3 * len(track.bodyparts)
    assert not machine.isna().all(axis=1).any()  # each run's rows keep their values
    record = json.loads(storage.read_bytes(f"{project}/{FOLDER}/outliers-iter0.json"))["frames"]
    for image in proposed:  # each run's own predictions of the frames it proposed
        by = track if image in first.new_images else other
        np.testing.assert_allclose(machine.loc[image].to_numpy().reshape(-1, 3), by.poses[record[image]["frame"]],
                                   rtol=1e-6)
    refine = read_folder_table(project, FOLDER)  # what the web app's refine page reads
    assert set(refine.machine) == proposed and all(len(points) == len(track.bodyparts) for points in refine.machine.values())
