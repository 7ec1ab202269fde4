"""Checkpoints and trained models in storage.

A run folder (any URI) holds: `config.yaml` (resolved), `split.json`, `checkpoints/epoch-NNNN/state.pt`
(model + optimizer + progress, for resuming; one folder per checkpoint, the layout Ray Train's persistent
storage writes too), `history.csv`, and once training ends `model.pt` (weights + config + body parts:
everything inference needs, nothing else).
"""

from __future__ import annotations

import hashlib
import io
import re
from dataclasses import dataclass
from typing import Protocol

import torch

from posecluster import storage
from posecluster.config import PoseclusterConfig

MODEL_FILE = "model.pt"
STATE_FILE = "state.pt"
_EPOCH_FILE = re.compile(r"epoch-(\d+)/state\.pt$")


def to_bytes(obj) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def from_bytes(data: bytes, source: str):
    try:
        return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ValueError(f"{source}: not a readable posecluster checkpoint ({exc})") from None


class CheckpointStore(Protocol):
    """Where the loop saves and finds training state; Ray Train provides its own implementation."""

    def latest(self) -> dict | None: ...

    def save(self, state: dict, epoch: int) -> None: ...


class UriCheckpointStore:
    def __init__(self, run_uri: str, keep: int = 3):
        self.folder = storage.join(run_uri, "checkpoints")
        self.keep = keep

    def epochs(self) -> list[tuple[int, str]]:
        if not storage.exists(self.folder):
            return []
        found = []
        for uri in storage.list_files(self.folder, suffixes=(".pt",)):
            match = _EPOCH_FILE.search(uri)
            if match:
                found.append((int(match.group(1)), uri))
        return sorted(found)

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


@dataclass
class TrainedModel:
    """What inference needs: the config, the body parts, the weights, and an identity for caching."""

    config: PoseclusterConfig
    bodyparts: list[str]
    state_dict: dict
    identity: str
    uri: str = ""

    @property
    def scorer(self) -> str:
        """DeepLabCut's scorer naming, so DLC's own tools recognise the outputs."""
        project, split = self.config.project, self.config.split
        net = self.config.model.backbone.name.replace("resnet", "resnet_")
        return f"DLC_{net}_{project.task}{project.date}shuffle{split.shuffle}_posecluster"


def save_model(run_uri: str, config: PoseclusterConfig, bodyparts: list[str], state_dict: dict) -> str:
    uri = storage.join(run_uri, MODEL_FILE)
    payload = {"config": config.to_yaml(), "bodyparts": list(bodyparts), "model": state_dict}
    storage.atomic_write_bytes(uri, to_bytes(payload))
    return uri


def resolve_model_uri(uri: str) -> str:
    """A run folder means its model.pt, else its latest checkpoint; a file URI is used as is."""
    if uri.endswith(".pt"):
        return uri
    candidate = storage.join(uri, MODEL_FILE)
    if storage.exists(candidate):
        return candidate
    store = UriCheckpointStore(uri)
    epochs = store.epochs()
    if epochs:
        return epochs[-1][1]
    raise FileNotFoundError(f"{uri}: no {MODEL_FILE} and no checkpoints/epoch-*/{STATE_FILE}")


def load_model(uri: str) -> TrainedModel:
    uri = resolve_model_uri(uri)
    data = storage.read_bytes(uri)
    payload = from_bytes(data, uri)
    if not isinstance(payload, dict) or "model" not in payload or "config" not in payload:
        raise ValueError(f"{uri}: not a posecluster model (expected keys model, config, bodyparts)")
    config = PoseclusterConfig.from_yaml_text(payload["config"], source=uri)
    return TrainedModel(
        config=config,
        bodyparts=list(payload["bodyparts"]),
        state_dict=payload["model"],
        identity=hashlib.sha256(data).hexdigest()[:16],
        uri=uri,
    )
