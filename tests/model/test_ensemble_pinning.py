"""Pinning an ensemble: every member's bytes are hashed once; a worker loads exactly those bytes."""

from __future__ import annotations

import shutil

import pytest

from posecluster.infer.ensemble import EnsemblePredictor, pin, pinned_predictor
from posecluster.model.artifact import ModelMismatchError
from posecluster.model.ensemble import PinnedEnsemble


def test_a_pinned_ensemble_loads_every_member_and_refuses_one_that_changed(ensemble_folder, tmp_path):
    folder = shutil.copytree(ensemble_folder, tmp_path / "ensemble")
    pinned, scorer, bodyparts = pin(str(folder))
    assert isinstance(pinned, PinnedEnsemble) and len(pinned.members) == 3
    assert scorer.endswith("_ensemble3") and len(bodyparts) == 4
    predictor = pinned_predictor(pinned, {"batch_size": 3})
    assert isinstance(predictor, EnsemblePredictor) and predictor.infer.batch_size == 3
    assert [m.trained.sha256 for m in predictor.members] == [m.sha256 for m in pinned.members]

    changed = folder / "member-1" / "model.pt"
    changed.write_bytes(changed.read_bytes() + b"\0")
    with pytest.raises(ModelMismatchError, match="member-1"):
        pinned_predictor(pinned)
    assert pin(str(folder))[0].sha256 != pinned.sha256  # a new job gets another key: nothing is reused


def test_members_with_different_body_parts_are_refused_before_any_worker_starts(ensemble_folder, tmp_path):
    from posecluster.model.artifact import load_model, save_model

    folder = shutil.copytree(ensemble_folder, tmp_path / "ensemble")
    member = load_model(f"{folder}/member-2")
    save_model(f"{folder}/member-2", member.config, [*member.bodyparts[:-1], "tailtip"], member.state_dict)
    with pytest.raises(ValueError, match="member-2.*body parts"):
        pin(str(folder))
