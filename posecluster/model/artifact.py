"""The trained-model artifact: finding it, loading it, and pinning it for a job.

A run folder (any URI) holds `model.pt` once training ends (weights + config + body parts: everything
inference needs) and `checkpoints/epoch-NNNN/state.pt` while it trains. Inference code needs only this
module, never `posecluster.train`.

A long job must use one set of weights from start to end: `pin_model` resolves what the user named once
to an immutable file URI plus the sha256 of its bytes; `load_pinned` loads exactly those bytes and refuses
anything else (a model.pt replaced mid-job, a truncated upload), so no output mixes weights under one id.
model.pt also carries the calibrated int8 graph and the reduced-precision checks (`reduced`), so the one
hash pins them too: a model re-calibrated mid-job is a changed file like any other.

A multi-animal (maDLC) model.pt also records its family ("multianimal"), its MultiAnimalSpec (body
parts, unique body parts, individuals, PAF graph, identity head) and its decoding parameters, all as
plain data checked field by field when read (the file is untrusted). `load_multianimal` /
`multianimal_from_trained` give the ready network with its spec and parameters. Multi-animal models run
in fp32 for now: calibration, int8, export and ensembles refuse them (`refuse_multianimal`).
"""

from __future__ import annotations

import hashlib
import io
import re
from dataclasses import dataclass, fields, is_dataclass

import torch

from posecluster import storage
from posecluster.config import PoseclusterConfig
from posecluster.errors import InputError
from posecluster.model.multianimal_model import MultiAnimalParams, MultiAnimalPoseModel, MultiAnimalSpec
from posecluster.model.precision import ReducedPrecision

MODEL_FILE = "model.pt"
STATE_FILE = "state.pt"
EPOCH_FILE = re.compile(r"epoch-(\d+)/state\.pt$")
REDUCED_KEY = "reduced_precision"
FAMILY_KEY = "family"
SINGLE_ANIMAL = "single"
MULTI_ANIMAL = "multianimal"
SPEC_KEY = "multianimal"  # the spec's fields plus "params" (decoding and training parameters)


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
    # Multi-animal models only: what the network detects and how its outputs are decoded.
    multianimal: MultiAnimalSpec | None = None
    multianimal_params: MultiAnimalParams | None = None

    @property
    def family(self) -> str:
        return MULTI_ANIMAL if self.multianimal is not None else SINGLE_ANIMAL

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
    spec, params = _family_from_payload(payload, config, uri)
    if spec is not None and reduced is not None:
        raise InputError(uri, "a multi-animal model with a reduced-precision section; multi-animal models run in "
                              "fp32 for now, so this file was not written by posecluster")
    return TrainedModel(config=config, bodyparts=list(payload["bodyparts"]), state_dict=payload["model"],
                        identity=digest[:16], uri=uri, sha256=digest, reduced=reduced, multianimal=spec,
                        multianimal_params=params)


# --- the multi-animal family in model.pt (and in checkpoints, which load_model reads too) ---


def spec_to_payload(spec: MultiAnimalSpec) -> dict:
    return {"bodyparts": list(spec.bodyparts), "unique_bodyparts": list(spec.unique_bodyparts),
            "individuals": list(spec.individuals), "graph": [[int(a), int(b)] for a, b in spec.graph],
            "identity": bool(spec.identity)}


def multianimal_fields(spec: MultiAnimalSpec, params: MultiAnimalParams) -> dict:
    """What a multi-animal checkpoint or model.pt carries besides the single-animal keys; `bodyparts` is
    every part a frame can hold (animal parts, then unique ones: the project config's all_bodyparts)."""
    return {FAMILY_KEY: MULTI_ANIMAL, "bodyparts": [*spec.bodyparts, *spec.unique_bodyparts],
            SPEC_KEY: {**spec_to_payload(spec), "params": _plain(params)}}


def _plain(value):
    if is_dataclass(value):
        return {f.name: _plain(getattr(value, f.name)) for f in fields(value)}
    return value


def spec_from_payload(raw, config: PoseclusterConfig, uri: str) -> MultiAnimalSpec:
    """The spec of a multi-animal file: names and identity from its config's project section (so a model
    never disagrees with the names its tables carry), the PAF graph from its `multianimal` section. The
    section may repeat the names (posecluster writes them); they must then be the config's. Every field
    is checked: the file is untrusted data, not code."""
    project = config.project
    allowed = {"bodyparts", "unique_bodyparts", "individuals", "graph", "identity", "params"}
    if not isinstance(raw, dict) or "graph" not in raw or not set(raw) <= allowed:
        got = sorted(map(str, raw))[:10] if isinstance(raw, dict) else type(raw).__name__
        raise InputError(uri, f"multi-animal section must hold graph (and optionally {sorted(allowed - {'graph'})}), "
                              f"got {got}")
    graph = raw["graph"]
    if not isinstance(graph, list) or not all(
            isinstance(edge, list) and len(edge) == 2 and all(type(i) is int for i in edge) for edge in graph):
        raise InputError(uri, "multi-animal spec: graph must be a list of [int, int] body-part index pairs")
    if "identity" in raw and not isinstance(raw["identity"], bool):
        raise InputError(uri, "multi-animal spec: identity must be true or false")
    expected = {"bodyparts": list(project.bodyparts), "unique_bodyparts": list(project.unique_bodyparts),
                "individuals": list(project.individuals), "identity": bool(project.identity)}
    differing = [key for key, value in expected.items() if key in raw and raw[key] != value]
    if differing:
        raise InputError(uri, f"the multi-animal spec's {', '.join(differing)} differ from its config's project "
                              f"section")
    try:
        return MultiAnimalSpec(tuple(project.bodyparts), tuple(project.unique_bodyparts), tuple(project.individuals),
                               tuple(tuple(edge) for edge in graph), bool(project.identity))
    except ValueError as exc:
        raise InputError(uri, f"multi-animal spec: {exc}") from None


def _dataclass_from_payload(cls, raw, uri: str, where: str):
    """A (nested) parameter dataclass from plain data: only its own field names, each of its default's
    type (an int where a float is expected is taken as the float)."""
    if not isinstance(raw, dict):
        raise InputError(uri, f"{where} must be a mapping, got {type(raw).__name__}")
    default = cls()
    known = {f.name for f in fields(cls)}
    unknown = sorted(map(str, set(raw) - known))
    if unknown:
        raise InputError(uri, f"{where}: unknown parameter(s) {unknown}")
    values = {}
    for name, value in raw.items():
        wanted = getattr(default, name)
        if is_dataclass(wanted):
            values[name] = _dataclass_from_payload(type(wanted), value, uri, f"{where}.{name}")
        elif isinstance(wanted, bool) or isinstance(value, bool):
            if type(value) is not type(wanted):
                raise InputError(uri, f"{where}.{name} must be a {type(wanted).__name__}, got {value!r}")
            values[name] = value
        elif isinstance(wanted, float) and type(value) in (int, float) and value == value:
            values[name] = float(value)
        elif type(value) is type(wanted):
            values[name] = value
        else:
            raise InputError(uri, f"{where}.{name} must be a {type(wanted).__name__}, got {value!r}")
    try:
        return cls(**values)
    except (TypeError, ValueError) as exc:
        raise InputError(uri, f"{where}: {exc}") from None


def _family_from_payload(payload: dict, config: PoseclusterConfig,
                         uri: str) -> tuple[MultiAnimalSpec | None, MultiAnimalParams | None]:
    """The spec and parameters of a multi-animal file (None, None for a single-animal one). The family is
    the config's (multianimalproject); a recorded `family` must agree with it."""
    family = MULTI_ANIMAL if config.project.multianimal else SINGLE_ANIMAL
    recorded = payload.get(FAMILY_KEY, family)
    if recorded not in (SINGLE_ANIMAL, MULTI_ANIMAL):
        raise InputError(uri, f"unknown model family {str(recorded)[:40]!r} (expected {SINGLE_ANIMAL!r} or "
                              f"{MULTI_ANIMAL!r})")
    if recorded != family:
        raise InputError(uri, f"a {recorded} model whose config says multianimalproject: {config.project.multianimal}")
    if family == SINGLE_ANIMAL:
        if SPEC_KEY in payload:
            raise InputError(uri, f"a single-animal model carries a '{SPEC_KEY}' section")
        return None, None
    section = payload.get(SPEC_KEY)
    spec = spec_from_payload(section, config, uri)
    params = _dataclass_from_payload(MultiAnimalParams, section.get("params", {}), uri, "multi-animal parameters")
    if payload.get("bodyparts") != [*spec.bodyparts, *spec.unique_bodyparts]:
        raise InputError(uri, "bodyparts differ from the multi-animal spec's animal and unique body parts")
    return spec, params


@dataclass
class MultiAnimalArtifact:
    """A loaded multi-animal model: the network (eval mode, BatchNorm folded, fp32 on CPU), what it
    detects, and how to decode it (model.multianimal_decode.decode_animals(outputs, spec, stride,
    locref_stdev, params, factors))."""

    trained: TrainedModel
    model: MultiAnimalPoseModel
    spec: MultiAnimalSpec
    params: MultiAnimalParams

    @property
    def stride(self) -> float:
        return self.model.stride

    @property
    def locref_stdev(self) -> float:
        return self.trained.config.model.target.locref_stdev

    @property
    def global_scale(self) -> float:
        return self.trained.config.model.global_scale


def multianimal_from_trained(trained: TrainedModel) -> MultiAnimalArtifact:
    """The network of a multi-animal TrainedModel (from load_model or load_pinned); InputError naming the
    file for a single-animal model or weights that do not fit the recorded spec."""
    if trained.multianimal is None:
        raise InputError(trained.uri or "the model", "a single-animal model; this needs a multi-animal (maDLC) one")
    try:
        model = MultiAnimalPoseModel.for_inference(trained.config.model, trained.multianimal, trained.state_dict)
    except (RuntimeError, TypeError, ValueError, KeyError) as exc:
        first = str(exc).strip().splitlines()[0][:300]
        raise InputError(trained.uri or "the model", f"weights do not fit the recorded multi-animal spec ({first})") from None
    return MultiAnimalArtifact(trained, model, trained.multianimal, trained.multianimal_params or MultiAnimalParams())


def load_multianimal(uri: str) -> MultiAnimalArtifact:
    """A run folder, model.pt or checkpoint of a multi-animal model -> network, spec and decode parameters."""
    return multianimal_from_trained(load_model(uri))


def refuse_multianimal(trained: TrainedModel, what: str) -> None:
    """InputError naming the model when it is multi-animal and `what` (calibration, int8, export, an
    ensemble) exists only for single-animal models so far."""
    if trained.multianimal is not None:
        raise InputError(trained.uri or "the model", f"multi-animal models run in fp32 for now: {what} is "
                                                     f"available for single-animal models only")


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
               reduced: ReducedPrecision | None = None, family_fields: dict | None = None) -> str:
    """`family_fields`: multianimal_fields(spec, params) for a multi-animal model (never with `reduced`)."""
    uri = storage.join(run_uri, MODEL_FILE)
    payload = {"config": config.to_yaml(), "bodyparts": list(bodyparts), "model": state_dict}
    if reduced is not None:
        payload[REDUCED_KEY] = reduced.to_payload()
    payload.update(family_fields or {})
    storage.atomic_write_bytes(uri, to_bytes(payload))
    return uri


def save_reduced_precision(model_uri: str, reduced: ReducedPrecision) -> TrainedModel:
    """Rewrite a model file (whole, atomically) with this reduced-precision section; weights, config and
    body parts unchanged. Its sha256 changes: jobs pinned to the old bytes refuse the new file."""
    uri = resolve_model_uri(model_uri, allow_checkpoint=False)
    data = storage.read_bytes(uri)
    refuse_multianimal(model_from_bytes(data, uri), "calibration (bf16/int8)")
    payload = from_bytes(data, uri)
    payload[REDUCED_KEY] = reduced.to_payload()
    data = to_bytes(payload)
    storage.atomic_write_bytes(uri, data)
    return model_from_bytes(data, uri)
