"""An ensemble of trained models: a folder with `ensemble.json` naming its members, each an ordinary run
folder (`member-<k>/`). Written by `posecluster train --ensemble K`; read by analysis."""

from __future__ import annotations

import json

from posecluster import storage
from posecluster.errors import InputError

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
    return [storage.join(ensemble_uri, folder) for folder in folders]
