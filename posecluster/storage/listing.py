"""Listings with details: one paginated LIST gives every object's identity (size + ETag/mtime), so a
planner never needs a HEAD per object."""

from __future__ import annotations

from posecluster.storage import ObjectIdentity, _unstrip, filesystem, identity_from_info


def list_identities(prefix: str, suffixes: tuple[str, ...] = ()) -> list[ObjectIdentity]:
    """Identities of the files under `prefix` (recursive) whose names end with one of `suffixes`, sorted
    by URI; an absent prefix is an empty list (an output folder that no job wrote yet)."""
    fs, path = filesystem(prefix)
    try:
        found = fs.find(path, detail=True)
    except FileNotFoundError:
        return []
    wanted = tuple(s.lower() for s in suffixes)
    out = [
        identity_from_info(_unstrip(prefix, fs, name), info)
        for name, info in found.items()
        if info.get("type", "file") != "directory" and (not wanted or name.lower().endswith(wanted))
    ]
    return sorted(out, key=lambda o: o.uri)
