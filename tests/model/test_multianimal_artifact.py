"""model.pt of a multi-animal model: what it records, and files that are damaged or hostile."""

from __future__ import annotations

import pytest
import torch

from posecluster import storage
from posecluster.config import BackboneConfig, ModelConfig, PoseclusterConfig, ProjectConfig
from posecluster.errors import InputError
from posecluster.model.artifact import (MODEL_FILE, from_bytes, load_model, load_multianimal, multianimal_fields,
                                        save_model, to_bytes)
from posecluster.model.multianimal_model import MultiAnimalParams, MultiAnimalPoseModel, MultiAnimalSpec
from posecluster.model.precision import choose_multianimal_inference

SPEC = MultiAnimalSpec(("nose", "head", "tail"), ("feeder",), ("m1", "m2"), ((0, 1), (1, 2)), identity=True)
MODEL = ModelConfig(backbone=BackboneConfig(name="resnet18", weights="none"))


@pytest.fixture(scope="module")
def payload(tmp_path_factory):
    """The plain data of a saved multi-animal model.pt (untrained weights)."""
    project = ProjectConfig(task="t", scorer="s", date="Jan1", bodyparts=list(SPEC.bodyparts), multianimal=True,
                            individuals=list(SPEC.individuals), unique_bodyparts=list(SPEC.unique_bodyparts),
                            identity=True)
    config = PoseclusterConfig(project=project, model=MODEL)
    run = str(tmp_path_factory.mktemp("ma") / "run")
    uri = save_model(run, config, [*SPEC.bodyparts, *SPEC.unique_bodyparts], MultiAnimalPoseModel(MODEL, SPEC).state_dict(), None,
                     multianimal_fields(SPEC, MultiAnimalParams()))
    return from_bytes(storage.read_bytes(uri), uri)


def write(tmp_path, payload) -> str:
    uri = str(tmp_path / MODEL_FILE)
    storage.atomic_write_bytes(uri, to_bytes(payload))
    return uri


def test_the_spec_and_decode_parameters_come_back_with_a_network_that_has_their_heads(payload, tmp_path):
    loaded = load_multianimal(write(tmp_path, payload))
    assert loaded.spec == SPEC and loaded.params == MultiAnimalParams()
    outputs = loaded.model(torch.rand(1, 3, 64, 64))
    # 3 parts + 1 unique part, an (x, y) field per edge, a logit per individual
    assert [outputs[k].shape[1] for k in ("scoremap", "locref", "paf", "identity")] == [4, 8, 4, 2]


@pytest.mark.parametrize("damage, message", [
    (lambda p: p["multianimal"].update(graph=[[0, 7]]), "graph edge"),
    (lambda p: p["multianimal"].update(graph="0-1"), "graph must be a list"),
    (lambda p: p["multianimal"].update(identity="yes"), "identity must be true or false"),
    (lambda p: p["multianimal"].update(run="os.system"), "must hold graph"),
    (lambda p: p["multianimal"].pop("graph"), "must hold graph"),
    (lambda p: p.update(multianimal=None), "must hold graph"),
    (lambda p: p.update(family="x" * 10_000), "unknown model family"),
    (lambda p: p["multianimal"]["params"]["peaks"].update(threshold="0.1"), "threshold must be a float"),
    (lambda p: p["multianimal"]["params"].update(hook=1), "unknown parameter"),
    (lambda p: p["multianimal"].update(individuals=["m2", "m1"]), "individuals differ from its config's project"),
    (lambda p: p.update(bodyparts=["nose"]), "bodyparts differ"),
])
def test_a_damaged_multianimal_model_is_refused_naming_the_file(payload, tmp_path, damage, message):
    # The spec is checked before any weights are used: these files carry none (small and quick to write).
    section = payload["multianimal"]
    damaged = {**payload, "model": {}, "multianimal": {
        **section, "params": {k: dict(v) for k, v in section["params"].items()}}}
    damage(damaged)
    uri = write(tmp_path, damaged)
    with pytest.raises(InputError, match=message) as caught:
        load_multianimal(uri)
    assert str(caught.value).startswith(uri)


def test_weights_that_do_not_fit_a_valid_spec_are_refused_naming_the_file(payload, tmp_path):
    uri = write(tmp_path, {**payload, "multianimal": {**payload["multianimal"], "graph": [[0, 1]]}})
    with pytest.raises(InputError, match="weights do not fit the recorded multi-animal spec") as caught:
        load_multianimal(uri)
    assert str(caught.value).startswith(uri)


def test_a_file_whose_family_and_config_disagree_is_refused(payload, tmp_path):
    with pytest.raises(InputError, match="a single model whose config says multianimalproject: True"):
        load_model(write(tmp_path, {**payload, "family": "single", "model": {}}))


def test_multianimal_inference_runs_fp32_on_auto_and_refuses_reduced_paths():
    assert choose_multianimal_inference("auto").path == "fp32"
    assert choose_multianimal_inference("off").path == "fp32"
    for setting in ("on", "int8"):
        with pytest.raises(InputError, match="multi-animal models run in fp32 for now"):
            choose_multianimal_inference(setting, source="run/model.pt")
