"""A maDLC project from the command line: train and evaluate; what multi-animal models refuse."""

from __future__ import annotations

import json

import numpy as np
import pytest

from posecluster import storage
from posecluster.cli.main import main
from posecluster.data.split import Split, indices_of
from posecluster.data.synthetic_multianimal import BODYPARTS, UNIQUE_BODYPARTS, MultiAnimalScene, write_project
from posecluster.model.artifact import load_multianimal
from posecluster.model.multianimal_model import MultiAnimalSpec


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A rendered 3-animal project at 64x64 and a run trained on it for two epochs from the CLI."""
    root = tmp_path_factory.mktemp("madlc")
    project = write_project(str(root / "project"), labeled_frames=12, video_frames=4,
                            scene=MultiAnimalScene(width=64, height=64))
    run = str(root / "run")
    code = main(["train", project.uri, "--out", run, "--backbone", "resnet18", "--weights", "none", "--epochs", "2",
                 "--batch-size", "4", "--set", "model.global_scale=1.0", "--set", "augment.crop_size=null",
                 "--set", "train.progress=no"])
    assert code == 0
    return project, run


def test_a_madlc_project_trains_and_evaluates_from_the_command_line(trained, capsys):
    project, run = trained
    assert main(["evaluate", run]) == 0
    printed = capsys.readouterr().out
    assert "multi-animal error after matching" in printed and "landmark" in printed and "tailbase" in printed
    results = json.loads(storage.read_bytes(f"{run}/evaluation/results.json"))
    split = Split.load(f"{run}/split.json")
    for name, images in (("train", split.train_images), ("test", split.test_images)):
        rows = indices_of(project.labels.images, images)
        # the animals the renderer put (at least partly) inside each image
        present = int((~np.isnan(project.labels.keypoints[rows]).all(axis=(2, 3))).sum())
        counts = results["animals"][name]
        assert counts["labeled"] == present and 0 <= counts["matched"] <= min(present, counts["predicted"])
    assert set(results["per_bodypart"]) == set(BODYPARTS + UNIQUE_BODYPARTS)


def test_model_pt_records_what_the_project_config_says(trained):
    project, run = trained
    loaded = load_multianimal(run)
    # the rendered config: skeleton nose-head, head-body, body-tailbase over these parts; look-alike animals
    assert loaded.spec == MultiAnimalSpec(("nose", "head", "body", "tailbase"), ("landmark",),
                                          ("animal1", "animal2", "animal3"), ((0, 1), (1, 2), (2, 3)), False)
    assert loaded.trained.reduced is None  # no int8 calibration for multi-animal models


@pytest.mark.parametrize("command", [
    ["export", "{run}", "--out", "{tmp}/export"],
    ["calibrate", "{run}"],
    ["train", "{project}", "--out", "{tmp}/ensemble", "--ensemble", "2"],
])
def test_reduced_precision_export_and_ensembles_are_refused_for_multianimal_models(trained, tmp_path, capsys, command):
    project, run = trained
    argv = [part.format(run=run, tmp=tmp_path, project=project.uri) for part in command]
    assert main(argv) == 2
    assert "multi-animal models run in fp32 for now" in capsys.readouterr().err
    assert not storage.exists(f"{tmp_path}/export") and not storage.exists(f"{tmp_path}/ensemble")
