from __future__ import annotations

import pytest

from posecluster.config import OptimizerConfig, PoseclusterConfig
from posecluster.data.formats.dlc import read_project_config
from posecluster.errors import InputError


def test_defaults_are_the_paper_values():
    config = PoseclusterConfig()
    assert config.model.backbone.name == "resnet50"
    assert config.model.target.radius_px == 17.0
    assert config.model.target.locref_stdev == pytest.approx(7.2801)
    assert config.model.loss.locref_weight == 0.05
    assert config.model.global_scale == 0.8
    assert config.augment.scale_range == (0.5, 1.25) and config.augment.rotation_deg == 25
    assert config.train.optimizer.name == "adamw" and config.train.optimizer.schedule[0].lr == 5e-4
    assert config.train.batch_size == 8


def test_yaml_round_trip_preserves_every_value():
    config = PoseclusterConfig().with_overrides({"train": {"epochs": 7}, "model": {"target": {"kind": "gaussian"}}})
    again = PoseclusterConfig.from_yaml_text(config.to_yaml())
    assert again == config


def test_unknown_keys_and_bad_values_are_rejected_with_the_source():
    with pytest.raises(InputError, match="my.yaml"):
        PoseclusterConfig.from_yaml_text("train:\n  epochs: -1\n", source="my.yaml")
    with pytest.raises(InputError, match="epoch"):
        PoseclusterConfig.from_yaml_text("train:\n  epoch: 3\n", source="my.yaml")


def test_paper_sgd_schedule_is_a_valid_optimizer_section():
    sgd = OptimizerConfig.paper_sgd()
    assert [s.lr for s in sgd.schedule] == [0.005, 0.02, 0.002, 0.001]


def test_dlc_config_is_read_ignoring_placeholders(openfield):
    project = read_project_config(f"{openfield}/config.yaml")
    assert project.bodyparts == ["snout", "leftear", "rightear", "tailbase"]
    assert project.scorer == "Pranav" and project.task == "openfield" and project.date == "Oct30"
    assert project.training_fractions == [0.95] and project.pcutoff == 0.4


def test_dlc_config_without_bodyparts_names_the_file(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text("Task: x\nscorer: y\n")
    with pytest.raises(InputError, match="config.yaml.*bodyparts"):
        read_project_config(str(path))
