"""Checkpoints and trained models in storage.

A run folder (any URI) holds: `config.yaml` (resolved), `split.json`, `checkpoints/epoch-NNNN/state.pt`
(model + optimizer + progress, for resuming; one folder per checkpoint, the layout Ray Train's persistent
storage writes too), `history.csv`, and once training ends `model.pt` (weights + config + body parts:
everything inference needs, nothing else).
"""

from __future__ import annotations

from typing import Protocol

from posecluster import storage

# The trained-model artifact lives in posecluster.model.artifact (inference must not import train);
# re-exported here so existing imports keep working.
from posecluster.model.artifact import (  # noqa: F401
    EPOCH_FILE as _EPOCH_FILE,
    MODEL_FILE,
    STATE_FILE,
    TrainedModel,
    checkpoint_files,
    from_bytes,
    load_model,
    resolve_model_uri,
    save_model,
    to_bytes,
)


class CheckpointStore(Protocol):
    """Where the loop saves and finds training state; Ray Train provides its own implementation."""

    def latest(self) -> dict | None: ...

    def save(self, state: dict, epoch: int) -> None: ...


class UriCheckpointStore:
    def __init__(self, run_uri: str, keep: int = 3):
        self.run_uri = run_uri
        self.folder = storage.join(run_uri, "checkpoints")
        self.keep = keep

    def epochs(self) -> list[tuple[int, str]]:
        return checkpoint_files(self.run_uri)

    def latest(self) -> dict | None:
        epochs = self.epochs()
        if not epochs:
            return None
        uri = epochs[-1][1]
        return from_bytes(storage.read_bytes(uri), uri)

    def save(self, state: dict, epoch: int) -> None:
        storage.atomic_write_bytes(storage.join(self.folder, f"epoch-{epoch:04d}", STATE_FILE), to_bytes(state))
        for _, old in self.epochs()[: -self.keep]:
            storage.remove(storage.parent(old), recursive=True)
