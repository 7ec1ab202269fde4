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


@pytest.mark.parametrize("yaml_text, field, allowed", [
    ("model:\n  target:\n    radius_px: 0\n", "model.target.radius_px = 0", "> 0"),
    ("model:\n  target:\n    gaussian_sigma_px: -2\n", "model.target.gaussian_sigma_px = -2", "> 0"),
    ("model:\n  target:\n    locref_stdev: 0\n", "model.target.locref_stdev = 0", "> 0"),
    ("project:\n  pcutoff: 1.5\n", "project.pcutoff = 1.5", ">= 0, <= 1"),
    ("augment:\n  scale_range: [1.25, 0.5]\n", "augment.scale_range", "0 < low <= high"),
    ("augment:\n  crop_size: [0, 448]\n", "augment.crop_size.0 = 0", "greater than 0"),
], ids=["radius", "sigma", "locref-stdev", "pcutoff", "scale-range", "crop-size"])
def test_values_that_would_break_training_are_refused_in_one_line(yaml_text, field, allowed):
    with pytest.raises(InputError) as info:
        PoseclusterConfig.from_yaml_text(yaml_text, source="my.yaml")
    message = str(info.value)
    assert message.startswith("my.yaml: ") and field in message and allowed in message and "\n" not in message


@pytest.mark.parametrize("line, field, allowed", [
    ("pcutoff: null", "pcutoff = None", ">= 0, <= 1"),
    ("pcutoff: 7", "pcutoff = 7", ">= 0, <= 1"),
    ("iteration: two", "iteration = 'two'", ">= 0"),
    ("TrainingFraction: [0]", "TrainingFraction.0 = 0", "> 0, <= 1"),
], ids=["pcutoff-null", "pcutoff-range", "iteration-text", "fraction"])
def test_a_bad_value_in_a_dlc_config_names_file_field_and_range(tmp_path, line, field, allowed):
    path = tmp_path / "config.yaml"
    path.write_text(f"Task: t\nscorer: s\nbodyparts: [a, b]\n{line}\n")
    with pytest.raises(InputError) as info:
        read_project_config(str(path))
    message = str(info.value)
    assert message.startswith(f"{path}: ") and field in message and allowed in message and "\n" not in message


@pytest.mark.parametrize("field,value", [("Task", "../../elsewhere"), ("scorer", "lab/other"), ("date", "..")])
def test_names_from_a_dlc_config_cannot_steer_a_write_into_another_folder(tmp_path, field, value):
    """Task, scorer and date become parts of file names (CollectedData_<scorer>.h5, <video>DLC_..<Task><date>..)."""
    from posecluster.config import ProjectConfig
    from posecluster.errors import InputError

    with pytest.raises(InputError, match=f"{field}.*usable in a file name"):
        ProjectConfig.from_dlc({field: value, "bodyparts": ["snout"]}, str(tmp_path / "config.yaml"))


MADLC = """Task: social
scorer: Ann
date: Mar3
multianimalproject: true
identity: false
individuals: [mouse1, mouse2]
uniquebodyparts: [feeder]
multianimalbodyparts: [nose, tailbase]
bodyparts: MULTI!
skeleton: [[nose, tailbase]]
"""


def test_a_madlc_config_is_read_and_written_with_deeplabcuts_keys(tmp_path):
    from posecluster.data.formats.dlc import read_raw_project_config, write_project_config

    path = tmp_path / "config.yaml"
    path.write_text(MADLC)
    project = read_project_config(str(path))
    assert project.multianimal and project.identity is False
    assert project.individuals == ["mouse1", "mouse2"] and project.bodyparts == ["nose", "tailbase"]
    assert project.unique_bodyparts == ["feeder"] and project.all_bodyparts == ["nose", "tailbase", "feeder"]
    write_project_config(str(tmp_path / "out.yaml"), project)
    raw = read_raw_project_config(str(tmp_path / "out.yaml"))
    assert raw["multianimalproject"] is True and raw["identity"] is False and raw["bodyparts"] == "MULTI!"
    assert raw["individuals"] == ["mouse1", "mouse2"] and raw["multianimalbodyparts"] == ["nose", "tailbase"]
    assert raw["uniquebodyparts"] == ["feeder"] and raw["skeleton"] == [["nose", "tailbase"]]
    assert read_project_config(str(tmp_path / "out.yaml")) == project


@pytest.mark.parametrize("change, message", [
    ("individuals: [mouse1, single]", "'single' is DeepLabCut's column for unique body parts"),
    ("individuals: []", "at least one individual"),
    ("uniquebodyparts: [nose]", "both multianimalbodyparts and uniquebodyparts"),
    ("multianimalbodyparts: [nose, nose]", "multianimalbodyparts must be unique"),
    ("individuals: mouse1", "'individuals' must be a list"),
])
def test_a_bad_madlc_config_names_the_file_and_the_dlc_key(tmp_path, change, message):
    key = change.split(":")[0]
    text = "\n".join(change if line.startswith(f"{key}:") else line for line in MADLC.splitlines())
    path = tmp_path / "config.yaml"
    path.write_text(text)
    with pytest.raises(InputError, match=message) as info:
        read_project_config(str(path))
    assert str(info.value).startswith(f"{path}: ")


def test_a_single_animal_config_still_says_so_to_deeplabcut():
    from posecluster.config import ProjectConfig

    raw = ProjectConfig(bodyparts=["a"]).to_dlc()
    assert raw["multianimalproject"] is False and raw["identity"] is None and raw["bodyparts"] == ["a"]
    assert "individuals" not in raw and "multianimalbodyparts" not in raw
