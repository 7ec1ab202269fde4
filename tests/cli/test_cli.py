"""The command line as a user runs it: train, evaluate and analyze on a rendered project."""

from __future__ import annotations

import json
import subprocess
import sys

import pandas as pd
import pytest

from posecluster import storage
from posecluster.cli.main import main
from posecluster.config import PoseclusterConfig


def test_help_explains_every_command():
    out = subprocess.run([sys.executable, "-m", "posecluster", "--help"], capture_output=True, text=True, check=True).stdout
    for command in ("demo", "train", "evaluate", "analyze"):
        assert command in out
    train_help = subprocess.run([sys.executable, "-m", "posecluster", "train", "--help"], capture_output=True, text=True, check=True).stdout
    assert "--set" in train_help and "TORCH_HOME" in train_help


def test_train_evaluate_analyze_from_the_command_line(synthetic_project, tmp_path, capsys):
    run, out = str(tmp_path / "run"), str(tmp_path / "poses")
    # Values are read by their field's type: off/no are words for named choices, booleans for true/false fields.
    config = tmp_path / "train.yaml"
    config.write_text("model:\n  backbone:\n    freeze_batchnorm: no\ntrain:\n  mixed_precision: off\n")
    code = main(["train", synthetic_project.uri, "--out", run, "--backbone", "resnet18", "--weights", "none",
                 "--epochs", "1", "--set", "model.global_scale=1.0", "--set", "augment.crop_size=[64, 64]",
                 "--set", "train.progress=no", "--set", "train.channels_last=off", "--config", str(config)])
    assert code == 0 and storage.exists(f"{run}/model.pt")
    resolved = PoseclusterConfig.load(f"{run}/config.yaml")
    assert (resolved.model.backbone.freeze_batchnorm, resolved.train.mixed_precision) == ("no", "off")
    assert (resolved.train.channels_last, resolved.train.progress) == ("off", False)
    assert main(["evaluate", run]) == 0
    printed = capsys.readouterr().out
    assert "test error" in printed and "snout" in printed
    video = synthetic_project.videos[0].uri
    assert main(["analyze", video, "--model", run, "--out", out, "--format", "csv", "--quiet"]) == 0
    tables = storage.list_files(out, suffixes=(".h5",))
    assert len(tables) == 1 and len(pd.read_hdf(tables[0])) == 64
    assert storage.list_files(out, suffixes=(".csv",))


def test_a_bad_project_is_reported_with_its_file_and_exit_code_2(tmp_path, capsys):
    (tmp_path / "config.yaml").write_text("Task: x\n")
    code = main(["train", str(tmp_path), "--out", str(tmp_path / "run")])
    assert code == 2
    assert f"{tmp_path}/config.yaml" in capsys.readouterr().err


@pytest.mark.parametrize("pair", ["noequals", "=3"])
def test_malformed_overrides_are_refused(pair, synthetic_project, tmp_path):
    assert main(["train", synthetic_project.uri, "--out", str(tmp_path / "r"), "--set", pair]) == 2


def test_analysis_takes_infer_settings_from_a_config_file_and_refuses_training_ones(trained_run, synthetic_project,
                                                                                    tmp_path, capsys):
    config = tmp_path / "posecluster.yaml"
    config.write_text("infer:\n  batch_size: 3\n  bogus: 1\n")
    video = synthetic_project.videos[0].uri
    assert main(["analyze", video, "--model", trained_run[0], "--out", str(tmp_path / "a"), "--config", str(config)]) == 2
    assert "bogus" in capsys.readouterr().err
    assert main(["analyze", video, "--model", trained_run[0], "--out", str(tmp_path / "b"),
                 "--set", "train.epochs=3"]) == 2
    config.write_text("infer:\n  batch_size: 3\n")
    assert main(["analyze", video, "--model", trained_run[0], "--out", str(tmp_path / "c"), "--config", str(config),
                 "--quiet"]) == 0
    meta = storage.list_files(str(tmp_path / "c"), suffixes=("_meta.json",))
    assert '"batch_size": 3' in storage.read_bytes(meta[0]).decode()


def test_analysis_reads_on_and_off_as_the_words_of_the_infer_settings(trained_run, synthetic_project, tmp_path):
    """`--set infer.mixed_precision=off` and a config file's `channels_last: on` were read as YAML 1.1
    booleans and refused; they are the settings' own words."""
    config = tmp_path / "posecluster.yaml"
    config.write_text("infer:\n  channels_last: on\n")
    out = str(tmp_path / "poses")
    assert main(["analyze", synthetic_project.videos[0].uri, "--model", trained_run[0], "--out", out, "--quiet",
                 "--config", str(config), "--set", "infer.mixed_precision=off"]) == 0
    meta = json.loads(storage.read_bytes(storage.list_files(out, suffixes=("_meta.json",))[0]))
    assert meta["precision"]["requested"] == "off" and meta["precision"]["path"] == "fp32"
    assert (meta["config"]["infer"]["mixed_precision"], meta["config"]["infer"]["channels_last"]) == ("off", "on")
    assert main(["analyze", synthetic_project.videos[0].uri, "--model", trained_run[0], "--out", out,
                 "--set", "infer.mixed_precision=maybe"]) == 2


@pytest.mark.slow  # 22 s; DDP itself is tested in tests/cluster/test_training.py
def test_data_parallel_training_from_relative_paths_reports_its_wall_time(ray_local, synthetic_project, tmp_path,
                                                                          monkeypatch, capsys):
    import shutil

    shutil.copytree(synthetic_project.uri, tmp_path / "project")
    monkeypatch.chdir(tmp_path)  # Ray Train workers run elsewhere: the CLI must hand them absolute paths
    code = main(["train", "./project", "--out", "./runs/r1", "--workers", "2", "--epochs", "1", "--batch-size", "4",
                 "--backbone", "resnet18", "--weights", "none", "--set", "model.global_scale=1.0",
                 "--set", "augment.crop_size=[64, 64]"])
    printed = capsys.readouterr().out
    assert code == 0 and (tmp_path / "runs" / "r1" / "model.pt").exists()
    seconds = float(printed.split("trained 1 epochs in ")[1].split(" s")[0])
    assert seconds > 0


def test_evaluation_without_confident_predictions_says_so():
    from posecluster.train.evaluate import Evaluation

    nan = float("nan")
    summary = Evaluation(train_error_px=3.2, test_error_px=nan, train_error_pcutoff_px=nan, test_error_pcutoff_px=nan,
                         pcutoff=0.6, train_images=4, test_images=0, per_bodypart={}, outputs={}).summary()
    assert "nan" not in summary and "no test images" in summary and "no prediction at or above the p-cutoff" in summary
