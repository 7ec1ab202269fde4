"""The trained-model artifact: finding it, loading it, and pinning it for a job.

A run folder (any URI) holds `model.pt` once training ends (weights + config + body parts: everything
inference needs) and `checkpoints/epoch-NNNN/state.pt` while it trains. Inference code needs only this
module, never `posecluster.train`.

A long job must use one set of weights from start to end: `pin_model` resolves what the user named once
to an immutable file URI plus the sha256 of its bytes; `load_pinned` loads exactly those bytes and refuses
anything else (a model.pt replaced mid-job, a truncated upload), so no output mixes weights under one id.
model.pt also carries the calibrated int8 graph and the reduced-precision checks (`reduced`), so the one
hash pins them too: a model re-calibrated mid-job is a changed file like any other.
"""

from __future__ import annotations

import hashlib
import io
import re
from dataclasses import dataclass

import torch

from posecluster import storage
from posecluster.config import PoseclusterConfig
from posecluster.model.precision import ReducedPrecision

MODEL_FILE = "model.pt"
STATE_FILE = "state.pt"
EPOCH_FILE = re.compile(r"epoch-(\d+)/state\.pt$")
REDUCED_KEY = "reduced_precision"


class ModelMismatchError(RuntimeError):
    """The model file no longer holds the bytes the job pinned (replaced or damaged)."""


def to_bytes(obj) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def from_bytes(data: bytes, source: str):
    try:
        return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ValueError(f"{source}: not a readable posecluster checkpoint ({exc})") from None


def dlc_scorer(config: PoseclusterConfig) -> str:
    """DeepLabCut's scorer naming, so DLC's own tools recognise the outputs."""
    project, split = config.project, config.split
    net = config.model.backbone.name.replace("resnet", "resnet_")
    return f"DLC_{net}_{project.task}{project.date}shuffle{split.shuffle}_posecluster"


@dataclass
class TrainedModel:
    """What inference needs: the config, the body parts, the weights, and an identity for caching."""

    config: PoseclusterConfig
    bodyparts: list[str]
    state_dict: dict
    identity: str
    uri: str = ""
    sha256: str = ""
    # The calibrated int8 graph and each reduced path's agreement with fp32 (None: never calibrated).
    reduced: ReducedPrecision | None = None

    @property
    def scorer(self) -> str:
        return dlc_scorer(self.config)


@dataclass(frozen=True)
class PinnedModel:
    """One model file and the hash of its bytes: what every worker of a job must load."""

    uri: str
    sha256: str

    @property
    def identity(self) -> str:
        return self.sha256[:16]


def checkpoint_files(run_uri: str) -> list[tuple[int, str]]:
    """(epoch, state.pt URI) of a run folder's checkpoints, oldest first."""
    folder = storage.join(run_uri, "checkpoints")
    if not storage.exists(folder):
        return []
    found = []
    for uri in storage.list_files(folder, suffixes=(".pt",)):
        match = EPOCH_FILE.search(uri)
        if match:
            found.append((int(match.group(1)), uri))
    return sorted(found)


def resolve_model_uri(uri: str, allow_checkpoint: bool = True) -> str:
    """A run folder means its model.pt, else (allow_checkpoint) its latest checkpoint; a file URI is used
    as is. Without allow_checkpoint a run folder that is still training is refused: its latest checkpoint
    changes while a job would run."""
    if uri.endswith(".pt"):
        return uri
    candidate = storage.join(uri, MODEL_FILE)
    if storage.exists(candidate):
        return candidate
    epochs = checkpoint_files(uri)
    if epochs and not allow_checkpoint:
        raise ValueError(f"{uri}: no {MODEL_FILE} yet (still training? latest checkpoint: epoch {epochs[-1][0]}); "
                         f"name a checkpoint file to use it, e.g. --model {epochs[-1][1]}")
    if epochs:
        return epochs[-1][1]
    raise FileNotFoundError(f"{uri}: no {MODEL_FILE} and no checkpoints/epoch-*/{STATE_FILE}")


def model_from_bytes(data: bytes, uri: str) -> TrainedModel:
    payload = from_bytes(data, uri)
    if not isinstance(payload, dict) or "model" not in payload or "config" not in payload:
        raise ValueError(f"{uri}: not a posecluster model (expected keys model, config, bodyparts)")
    config = PoseclusterConfig.from_yaml_text(payload["config"], source=uri)
    digest = hashlib.sha256(data).hexdigest()
    reduced = ReducedPrecision.from_payload(payload[REDUCED_KEY], uri) if payload.get(REDUCED_KEY) else None
    return TrainedModel(config=config, bodyparts=list(payload["bodyparts"]), state_dict=payload["model"],
                        identity=digest[:16], uri=uri, sha256=digest, reduced=reduced)


def load_model(uri: str) -> TrainedModel:
    uri = resolve_model_uri(uri)
    return model_from_bytes(storage.read_bytes(uri), uri)


def pin_model(uri: str) -> tuple[PinnedModel, TrainedModel]:
    """Resolve `uri` once (refusing a run folder still training) and hash the bytes read."""
    resolved = resolve_model_uri(uri, allow_checkpoint=False)
    trained = model_from_bytes(storage.read_bytes(resolved), resolved)
    return PinnedModel(resolved, trained.sha256), trained


def load_pinned(pinned: PinnedModel) -> TrainedModel:
    """Exactly the pinned bytes, or ModelMismatchError naming the file."""
    data = storage.read_bytes(pinned.uri)
    digest = hashlib.sha256(data).hexdigest()
    if digest != pinned.sha256:
        raise ModelMismatchError(f"{pinned.uri}: changed since the job started (sha256 {digest[:16]}..., "
                                 f"pinned {pinned.sha256[:16]}...); start a new job to use the new model")
    return model_from_bytes(data, pinned.uri)


def save_model(run_uri: str, config: PoseclusterConfig, bodyparts: list[str], state_dict: dict,
               reduced: ReducedPrecision | None = None) -> str:
    uri = storage.join(run_uri, MODEL_FILE)
    payload = {"config": config.to_yaml(), "bodyparts": list(bodyparts), "model": state_dict}
    if reduced is not None:
        payload[REDUCED_KEY] = reduced.to_payload()
    storage.atomic_write_bytes(uri, to_bytes(payload))
    return uri


def save_reduced_precision(model_uri: str, reduced: ReducedPrecision) -> TrainedModel:
    """Rewrite a model file (whole, atomically) with this reduced-precision section; weights, config and
    body parts unchanged. Its sha256 changes: jobs pinned to the old bytes refuse the new file."""
    uri = resolve_model_uri(model_uri, allow_checkpoint=False)
    payload = from_bytes(storage.read_bytes(uri), uri)
    payload[REDUCED_KEY] = reduced.to_payload()
    data = to_bytes(payload)
    storage.atomic_write_bytes(uri, data)
    return model_from_bytes(data, uri)
