"""An ensemble of trained models: a folder with `ensemble.json` naming its members, each an ordinary run
folder (`member-<k>/`). Written by `posecluster train --ensemble K`; read by analysis."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from posecluster import storage
from posecluster.errors import InputError
from posecluster.model.artifact import PinnedModel, TrainedModel, pin_model
from posecluster.storage.scope import check as check_scope

ENSEMBLE_FILE = "ensemble.json"


def member_uri(ensemble_uri: str, k: int) -> str:
    return storage.join(ensemble_uri, f"member-{k}")


def is_ensemble(uri: str) -> bool:
    return not uri.endswith(".pt") and storage.exists(storage.join(uri, ENSEMBLE_FILE))


def write_manifest(ensemble_uri: str, members: list[dict]) -> str:
    """members: one record per member (its folder relative to the ensemble, seed, shuffle, ...)."""
    uri = storage.join(ensemble_uri, ENSEMBLE_FILE)
    storage.atomic_write_bytes(uri, json.dumps({"members": members}, indent=1).encode())
    return uri


def member_uris(ensemble_uri: str) -> list[str]:
    """The members' run folders, in manifest order."""
    uri = storage.join(ensemble_uri, ENSEMBLE_FILE)
    try:
        raw = json.loads(storage.read_bytes(uri))
        folders = [m["folder"] for m in raw["members"]]
    except (KeyError, TypeError, json.JSONDecodeError) as exc:
        raise InputError(uri, f"not a posecluster ensemble manifest ({exc})") from None
    if not folders:
        raise InputError(uri, "an ensemble needs at least one member")
    members = [storage.join(ensemble_uri, str(folder)) for folder in folders]
    for member in members:  # `../../other-lab/run` is a member outside the job's scope: refused, naming the file
        check_scope(member, "read", named_by=uri)
    return members


def ensemble_sha256(member_sha256s: list[str]) -> str:
    """An ensemble's hash: changes when any member's bytes change (or the members' order does)."""
    return hashlib.sha256("".join(member_sha256s).encode()).hexdigest()


@dataclass(frozen=True)
class PinnedEnsemble:
    """Every member's model file and the hash of its bytes: what every worker of a job must load."""

    uri: str
    members: tuple[PinnedModel, ...]

    @property
    def sha256(self) -> str:
        return ensemble_sha256([m.sha256 for m in self.members])

    @property
    def identity(self) -> str:
        return self.sha256[:16]


def pin_ensemble(uri: str) -> tuple[PinnedEnsemble, list[TrainedModel]]:
    """Resolve and hash every member once (refusing a member still training)."""
    pinned, models = zip(*(pin_model(member) for member in member_uris(uri)))
    return PinnedEnsemble(uri, tuple(pinned)), list(models)
