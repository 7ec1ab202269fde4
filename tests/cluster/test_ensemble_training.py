"""`train --ensemble K`: K members as parallel Ray trials into one ensemble folder."""

from __future__ import annotations

import json

import pytest
import torch

from posecluster import api
from posecluster.data.project import read_project
from posecluster.data.split import Split
from posecluster.infer.ensemble import EnsemblePredictor, load_predictor
from posecluster.train.checkpoint import load_model
from tests.conftest import tiny_config


@pytest.mark.slow  # the suite's 15-minute budget; ensembles are analysed in test_archive_ensemble and tests/infer/test_ensemble
def test_members_train_as_trials_into_one_ensemble_folder(ray_local, synthetic_project, tmp_path):
    project = read_project(synthetic_project.uri)
    config = tiny_config(project.config, project.uri, epochs=1)
    out = str(tmp_path / "ensemble")
    api.train_ensemble(project.uri, out, config, members=2, vary_shuffles=True)
    manifest = json.loads((tmp_path / "ensemble" / "ensemble.json").read_text())
    assert [(m["folder"], m["seed"], m["shuffle"]) for m in manifest["members"]] == [
        ("member-0", config.train.seed, 1), ("member-1", config.train.seed + 1, 2)]
    first, second = (load_model(f"{out}/member-{k}") for k in range(2))  # each an ordinary run
    assert (first.config.train.seed, second.config.train.seed) == (config.train.seed, config.train.seed + 1)
    key = "scoremap_head.deconv.weight"
    assert not torch.equal(first.state_dict[key], second.state_dict[key])
    splits = [Split.load(f"{out}/member-{k}/split.json") for k in range(2)]
    assert splits[0].test_images != splits[1].test_images  # shuffles 1 and 2
    predictor = load_predictor(out)
    assert isinstance(predictor, EnsemblePredictor) and len(predictor.members) == 2
    with pytest.raises(ValueError, match="already holds an ensemble"):
        api.train_ensemble(project.uri, out, config, members=2)
