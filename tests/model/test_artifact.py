"""The trained-model artifact: a job pins one file by its bytes; a run still training is refused."""

from __future__ import annotations

import pytest

from posecluster import storage
from posecluster.model.artifact import ModelMismatchError, load_pinned, pin_model, resolve_model_uri


def test_a_pinned_model_loads_only_the_bytes_that_were_pinned(trained_run, tmp_path):
    run = str(tmp_path / "run")
    storage.atomic_write_bytes(f"{run}/model.pt", storage.read_bytes(f"{trained_run[0]}/model.pt"))
    pinned, trained = pin_model(run)
    assert pinned.uri == f"{run}/model.pt" and len(pinned.sha256) == 64
    assert load_pinned(pinned).sha256 == pinned.sha256 == trained.sha256
    storage.atomic_write_bytes(f"{run}/model.pt", storage.read_bytes(f"{run}/model.pt") + b"\0")
    with pytest.raises(ModelMismatchError, match="changed since the job started"):
        load_pinned(pinned)


def test_a_run_folder_still_training_is_refused_unless_a_checkpoint_is_named(tmp_path):
    run = str(tmp_path / "training")
    checkpoint = f"{run}/checkpoints/epoch-0003/state.pt"
    storage.atomic_write_bytes(checkpoint, b"not read here")
    with pytest.raises(ValueError, match="still training") as refused:
        pin_model(run)
    assert checkpoint in str(refused.value)  # says what to name instead
    assert resolve_model_uri(run) == checkpoint  # analyze/evaluate keep the latest-checkpoint fallback
    assert resolve_model_uri(checkpoint, allow_checkpoint=False) == checkpoint
