"""The trained multi-animal model as a file: what inference loads from a maDLC run's `model.pt`.

The file is the single-animal artifact's (model.artifact: config, body parts, weights, one sha256 that
pins it) with one more section, `multianimal`: the PAF graph the heads were trained on (index pairs over
the animal body parts), the one thing the project's config does not say, and the decoding parameters.
Individuals, animal and unique body parts and `identity` come from the config's project section, so a
model can never disagree with the names its tables carry. artifact.model_from_bytes reads and checks it;
artifact.load_multianimal gives the ready network with its spec and parameters.

This is the seam inference loads through (`load_any`, `pin_any`, `load_pinned_any`): each reads the
bytes once and returns the family's model, so a caller asks which kind it got exactly once.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from posecluster import storage
from posecluster.config import PoseclusterConfig, TrackingConfig
from posecluster.model.artifact import (
    SPEC_KEY, ModelMismatchError, PinnedModel, TrainedModel, dlc_scorer, model_from_bytes, multianimal_fields,
    resolve_model_uri, save_model,
)
from posecluster.model.multianimal_model import MultiAnimalParams, MultiAnimalSpec

MULTIANIMAL_KEY = SPEC_KEY


@dataclass
class MultiAnimalTrained:
    """What multi-animal inference needs (the counterpart of TrainedModel)."""

    config: PoseclusterConfig
    spec: MultiAnimalSpec
    state_dict: dict
    identity: str
    uri: str = ""
    sha256: str = ""
    params: MultiAnimalParams = field(default_factory=MultiAnimalParams)

    @property
    def scorer(self) -> str:
        return dlc_scorer(self.config)

    @property
    def bodyparts(self) -> list[str]:
        return list(self.spec.bodyparts)


@dataclass(frozen=True)
class PinnedAnimals(PinnedModel):
    """A pinned multi-animal model file, with the names its tracked tables carry and its own tracking
    settings (infer.tracking; for the job's driver and joins, which never load the weights)."""

    individuals: tuple[str, ...] = ()
    unique_bodyparts: tuple[str, ...] = ()
    tracking: TrackingConfig = field(default_factory=TrackingConfig, hash=False)


def spec_of(config: PoseclusterConfig, graph) -> MultiAnimalSpec:
    project = config.project
    if not project.multianimal:
        raise ValueError("not a multi-animal project (multianimalproject: false)")
    return MultiAnimalSpec(bodyparts=tuple(project.bodyparts), unique_bodyparts=tuple(project.unique_bodyparts),
                           individuals=tuple(project.individuals),
                           graph=tuple((int(a), int(b)) for a, b in graph), identity=bool(project.identity))


def save_multianimal_model(run_uri: str, config: PoseclusterConfig, graph, state_dict: dict,
                           params: MultiAnimalParams | None = None) -> str:
    """`<run>/model.pt` for a multi-animal model (atomic); `graph` as MultiAnimalSpec.graph. The layout is
    artifact.save_model's with multianimal_fields (what training writes)."""
    spec = spec_of(config, graph)  # refuses a single-animal config or a graph that does not fit
    return save_model(run_uri, config, [*spec.bodyparts, *spec.unique_bodyparts], state_dict, None,
                      multianimal_fields(spec, params or MultiAnimalParams()))


def _from_bytes(data: bytes, uri: str) -> TrainedModel | MultiAnimalTrained:
    """artifact.model_from_bytes checks the family, the spec and the parameters (the file is untrusted)."""
    trained = model_from_bytes(data, uri)
    if trained.multianimal is None:
        return trained
    return MultiAnimalTrained(config=trained.config, spec=trained.multianimal, state_dict=trained.state_dict,
                              identity=trained.identity, uri=uri, sha256=trained.sha256,
                              params=trained.multianimal_params or MultiAnimalParams())


def load_any(uri: str) -> TrainedModel | MultiAnimalTrained:
    uri = resolve_model_uri(uri)
    return _from_bytes(storage.read_bytes(uri), uri)


def pin_any(uri: str) -> tuple[PinnedModel, TrainedModel | MultiAnimalTrained]:
    """As artifact.pin_model; a multi-animal file is pinned as PinnedAnimals."""
    resolved = resolve_model_uri(uri, allow_checkpoint=False)
    model = _from_bytes(storage.read_bytes(resolved), resolved)
    if isinstance(model, MultiAnimalTrained):
        return PinnedAnimals(resolved, model.sha256, tuple(model.spec.individuals),
                             tuple(model.spec.unique_bodyparts), model.config.infer.tracking), model
    return PinnedModel(resolved, model.sha256), model


def load_pinned_any(pinned: PinnedModel) -> TrainedModel | MultiAnimalTrained:
    """Exactly the pinned bytes (ModelMismatchError otherwise), as the family's model."""
    data = storage.read_bytes(pinned.uri)
    digest = hashlib.sha256(data).hexdigest()
    if digest != pinned.sha256:
        raise ModelMismatchError(f"{pinned.uri}: changed since the job started (sha256 {digest[:16]}..., "
                                 f"pinned {pinned.sha256[:16]}...); start a new job to use the new model")
    return _from_bytes(data, pinned.uri)
