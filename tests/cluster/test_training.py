"""Data-parallel training on a real local Ray Train with 2 CPU workers (gloo), checkpoints in moto S3."""

from __future__ import annotations

import os
import signal
import threading
import time

import psutil
import pytest
import torch

from posecluster import storage
from posecluster.cluster.training import scaled_for_workers, train_distributed
from posecluster.config import PoseclusterConfig
from posecluster.data.project import read_project
from posecluster.train.checkpoint import load_model
from posecluster.train.loop import train
from tests.conftest import tiny_config


def deterministic_config(project, epochs=2, batch=4):
    # BatchNorm frozen: batch statistics would differ per worker. SGD, not AdamW: Adam divides each
    # gradient by its own running magnitude, which turns rounding-level differences on near-zero
    # gradients into whole +-lr steps; SGD's update is linear in the gradient, so equal gradients show
    # as equal weights (measured: 3.5e-7 after 12 steps; AdamW 1.5e-4 at lr 1e-4). fp32: bf16 autocast
    # (auto on CPUs that have it) rounds each side's activations differently, 7.6e-5 after 12 steps.
    return tiny_config(project.config, project.uri, epochs=epochs).with_overrides({
        "model": {"backbone": {"freeze_batchnorm": "yes"}},
        "augment": {"enabled": False},
        "train": {"batch_size": batch, "scale_lr_with_workers": False, "checkpoint_every_epochs": 1, "mixed_precision": "off",
                  "optimizer": {"name": "sgd", "schedule": [{"from_fraction": 0.0, "lr": 1e-2}]}},
    })


@pytest.mark.slow  # the suite's 15-minute budget; Ray Train's data parallelism is also run by the killed-worker and scope tests
def test_two_workers_with_batch_b_equal_one_worker_with_batch_2b(ray_local, synthetic_project, tmp_path):
    project = read_project(synthetic_project.uri)
    single = train(deterministic_config(project, batch=4), project.labels, str(tmp_path / "single"))
    train_distributed(deterministic_config(project, batch=2), project.uri, str(tmp_path / "ddp"), workers=2)
    a, b = load_model(str(tmp_path / "single")).state_dict, load_model(str(tmp_path / "ddp")).state_dict
    assert single.history[-1]["step"] == 12  # 24 images / 4 per step x 2 epochs, the same on both sides
    changed = 0
    for key in a:
        torch.testing.assert_close(b[key], a[key], rtol=1e-4, atol=1e-5)
        changed += not torch.equal(a[key], torch.zeros_like(a[key]))
    assert changed > 50


def _kill_a_worker_after_first_checkpoint(run: str, killed: list) -> None:
    deadline = time.time() + 300
    while time.time() < deadline and not storage.exists(f"{run}/checkpoints/epoch-0001/state.pt"):
        time.sleep(0.5)
    for proc in psutil.process_iter(["cmdline"]):
        if any("RayTrainWorker" in part for part in (proc.info["cmdline"] or [])):
            os.kill(proc.pid, signal.SIGKILL)
            killed.append(proc.pid)
            return


def test_a_killed_worker_resumes_from_the_s3_checkpoint_and_finishes(ray_local, synthetic_project, s3_bucket):
    project = read_project(synthetic_project.uri)
    run = f"{s3_bucket}/models/ddp"
    killed: list = []
    chaos = threading.Thread(target=_kill_a_worker_after_first_checkpoint, args=(run, killed), daemon=True)
    chaos.start()
    train_distributed(deterministic_config(project, epochs=4, batch=2), project.uri, run, workers=2)
    chaos.join(timeout=5)
    assert killed, "no Ray Train worker process was found to kill"
    model = load_model(run)
    assert model.uri == f"{run}/model.pt"
    history = storage.read_bytes(f"{run}/history.csv").decode().splitlines()
    header = history[0].split(",")
    rows = [dict(zip(header, line.split(","))) for line in history[1:]]
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3, 4]
    assert int(rows[-1]["attempt_started_at_epoch"]) >= 1  # the last attempt started from a checkpoint


def test_learning_rate_grows_with_the_global_batch(synthetic_project):
    project = read_project(synthetic_project.uri)
    config = tiny_config(project.config, project.uri)
    base = config.train.optimizer.schedule[0].lr
    assert scaled_for_workers(config, 4).train.optimizer.schedule[0].lr == pytest.approx(base * 2)  # sqrt(4), AdamW
    sgd = config.with_overrides({"train": {"optimizer": {"name": "sgd"}}})
    assert scaled_for_workers(sgd, 4).train.optimizer.schedule[0].lr == pytest.approx(base * 4)
    assert scaled_for_workers(config, 1) == config


@pytest.mark.slow  # 15 s; the sweep command itself is the same trial runner as ensemble training
def test_a_tiny_sweep_writes_its_table_and_plot(ray_local, synthetic_project, tmp_path):
    from posecluster.cluster.sweep import run_sweep

    project = read_project(synthetic_project.uri)
    config = tiny_config(project.config, project.uri, epochs=1)
    result = run_sweep(config, project.uri, str(tmp_path / "sweep"), fractions=[0.5, 0.75], shuffles=[1])
    assert result.table["train_images"].tolist() == [16, 24]
    assert storage.read_bytes(result.plot_uri)[:4] == b"\x89PNG"
    assert "test_error_px" in storage.read_bytes(result.table_uri).decode()


@pytest.mark.slow  # 27 s; the losses are tested on one worker, DDP on the supervised loss
def test_two_workers_train_with_the_unsupervised_losses_on(ray_local, synthetic_project, tmp_path):
    """Clips from the project's own video on each worker, temporal + Pose PCA losses, DDP over gloo."""
    project = read_project(synthetic_project.uri)
    calibrated = PoseclusterConfig().train.int8_calibration_images  # the default a user's training has
    config = deterministic_config(project, epochs=1, batch=4).with_overrides(
        {"train": {"int8_calibration_images": calibrated},
         "unsupervised": {"losses": [{"kind": "temporal", "epsilon_px": 0.0, "prob_threshold": 0.0},
                                     {"kind": "pca", "epsilon_px": 0.0}], "clip_frames": 3,
                         "anneal": {"initial": 1.0}}})  # on from the first step (Lightning Pose's ramp starts at 0)
    result = train_distributed(config, project.uri, str(tmp_path / "unsupervised"), workers=2)
    last = result.history[-1]
    # With epsilon 0 neither loss can be exactly zero on a barely trained network: both ran, on every rank.
    assert last["unsupervised_temporal"] > 0 and last["unsupervised_pca"] > 0
    trained = load_model(str(tmp_path / "unsupervised"))
    assert trained.config.unsupervised.losses[0].kind == "temporal"
    # Rank 0 calibrates as a one-process training does: the int8 version and the reduced paths' pose
    # checks, timed on the worker's CPU, so `auto` may pick a reduced path for a Ray Train model too.
    assert trained.reduced is not None and trained.reduced.int8_onnx and {"int8", "bf16"} <= set(trained.reduced.checks)
    assert all(check.images > 0 for check in trained.reduced.checks.values())
