"""Training: loss falls on the real openfield labels, runs are written whole, and resume is exact."""

from __future__ import annotations

import torch

from posecluster import storage
from posecluster.config import PoseclusterConfig
from posecluster.data.project import read_project
from posecluster.train.checkpoint import UriCheckpointStore, load_model
from posecluster.train.loop import learning_rate, train
from tests.conftest import tiny_config


def test_short_training_on_openfield_lowers_the_loss(openfield, tmp_path):
    project = read_project(openfield)
    config = PoseclusterConfig(project=project.config).with_overrides(
        {
            "model": {"backbone": {"name": "resnet18", "weights": "none"}, "global_scale": 0.2},
            "augment": {"crop_size": [96, 96]},
            "train": {"epochs": 3, "batch_size": 16, "progress": False,
                      "optimizer": {"schedule": [{"from_fraction": 0.0, "lr": 2e-3}]}},
        }
    )
    result = train(config, project.labels, str(tmp_path / "run"))
    losses = [h["loss"] for h in result.history]
    assert losses[-1] < 0.5 * losses[0], losses


def test_a_run_folder_holds_config_split_checkpoints_history_and_model(trained_run):
    run, result = trained_run
    for name in ("config.yaml", "split.json", "history.csv", "model.pt"):
        assert storage.exists(storage.join(run, name)), name
    found = storage.list_files(storage.join(run, "checkpoints"))
    assert [u.split("/checkpoints/")[1] for u in found] == [
        "epoch-0016/state.pt", "epoch-0020/state.pt", "epoch-0024/state.pt"]  # keep_checkpoints=3
    config = PoseclusterConfig.load(storage.join(run, "config.yaml"))
    assert config.train.epochs == 24 and config.model.backbone.name == "resnet18"
    model = load_model(run)
    assert model.bodyparts == ["snout", "leftear", "rightear", "tailbase"] and len(model.identity) == 16


def test_resumed_training_matches_an_uninterrupted_run(synthetic_project, tmp_path):
    project = read_project(synthetic_project.uri)
    config = tiny_config(project.config, synthetic_project.uri, epochs=2).with_overrides(
        {"train": {"checkpoint_every_epochs": 1, "optimizer": {"schedule": [{"from_fraction": 0.0, "lr": 1e-3}]}}}
    )
    straight = train(config.with_overrides({"train": {"epochs": 3}}), project.labels, str(tmp_path / "straight"))
    train(config, project.labels, str(tmp_path / "resumed"))  # stops after epoch 2
    resumed = train(config.with_overrides({"train": {"epochs": 3}}), project.labels, str(tmp_path / "resumed"))
    assert [h["epoch"] for h in resumed.history] == [1, 2, 3]
    assert [h["loss"] for h in resumed.history] == [h["loss"] for h in straight.history]
    a, b = load_model(str(tmp_path / "straight")), load_model(str(tmp_path / "resumed"))
    for key in a.state_dict:
        assert torch.equal(a.state_dict[key], b.state_dict[key]), key


def test_checkpoints_can_live_in_s3(synthetic_project, s3_bucket):
    project = read_project(synthetic_project.uri)
    config = tiny_config(project.config, synthetic_project.uri, epochs=1)
    run = f"{s3_bucket}/models/run1"
    train(config, project.labels, run)
    assert UriCheckpointStore(run).latest()["epoch"] == 1
    assert load_model(run).uri == f"{run}/model.pt"


def test_learning_rate_follows_the_schedule_by_fraction_of_steps():
    schedule = PoseclusterConfig().train.optimizer
    assert learning_rate(schedule, 0, 1000) == 5e-4
    assert learning_rate(schedule, 799, 1000) == 5e-4
    assert learning_rate(schedule, 800, 1000) == 1e-4
    assert learning_rate(schedule, 960, 1000) == 1e-5


def test_training_takes_bf16_where_the_cpu_has_it_and_fp32_where_not(synthetic_project, tmp_path):
    from posecluster.model.precision import CpuCapability
    from posecluster.train.loop import TrainContext

    project = read_project(synthetic_project.uri)
    config = tiny_config(project.config, synthetic_project.uri, epochs=1).with_overrides(
        {"train": {"int8_calibration_images": 0}})
    for cpu, path in ((CpuCapability(isa="AVX2"), "fp32"), (CpuCapability(isa="AVX512", bf16=True), "bf16")):
        result = train(config, project.labels, str(tmp_path / path), TrainContext(cpu=cpu))
        assert [h["precision"] for h in result.history] == [path]
        trained = load_model(str(tmp_path / path))
        # Master weights stay fp32 whatever the forward pass ran in; no calibration was asked for.
        assert all(v.dtype == torch.float32 for v in trained.state_dict.values() if v.is_floating_point())
        assert trained.reduced is None
