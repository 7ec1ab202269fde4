"""Listings with details: one paginated LIST gives every object's identity (size + ETag/mtime), so a
planner never needs a HEAD per object."""

from __future__ import annotations

import os

from posecluster.storage import ObjectIdentity, _check, _is_local, _listed, _unstrip, filesystem, identity_from_info


def _find(fs, path: str) -> dict:
    """fs.find(path, detail=True) in one LIST request where possible: given a server-side prefix, s3fs
    does not follow an empty listing with a HEAD of the folder itself."""
    parent, _, name = path.rstrip("/").rpartition("/")
    protocols = {fs.protocol} if isinstance(fs.protocol, str) else set(fs.protocol)
    if _is_local(fs) or not parent or not protocols & {"s3", "s3a"}:
        return fs.find(path, detail=True)
    return fs.find(parent, prefix=f"{name}/", detail=True)


def _find_local(path: str, wanted: tuple[str, ...]) -> dict:
    """fs.find(path, detail=True) for a local folder, statting only the files whose paths end with one of
    `wanted` (all when empty): the web app looks for a few summary.json files among tens of thousands of
    frames and tables, and fsspec's find stats every one of them (about 10x the time of the walk)."""
    if os.path.isfile(path):
        names = [path]
    else:  # links to folders followed, as fsspec's walk does (the scope check sees where they lead), each
        names, seen = [], set()  # real folder once: a link back up the tree is no endless walk
        for folder, folders, files in os.walk(path, followlinks=True):
            stat = os.stat(folder)
            if (stat.st_dev, stat.st_ino) in seen:
                folders[:] = []
                continue
            seen.add((stat.st_dev, stat.st_ino))
            names += [f"{folder}/{name}" for name in files]
    found = {}
    for name in names:
        if wanted and not name.lower().endswith(wanted):
            continue
        try:
            stat = os.stat(name)
        except FileNotFoundError:  # removed since the walk, or a dangling link
            continue
        found[name] = {"name": name, "size": stat.st_size, "type": "file", "mtime": stat.st_mtime}
    return found


def list_identities(prefix: str, suffixes: tuple[str, ...] = ()) -> list[ObjectIdentity]:
    """Identities of the files under `prefix` (recursive) whose names end with one of `suffixes`, sorted
    by URI; an absent prefix is an empty list (an output folder that no job wrote yet)."""
    _check(prefix, "list")
    fs, path = filesystem(prefix)
    wanted = tuple(s.lower() for s in suffixes)
    try:
        found = _find_local(path.rstrip("/") or "/", wanted) if _is_local(fs) else _find(fs, path)
    except FileNotFoundError:
        return []
    out = [
        identity_from_info(_unstrip(prefix, fs, name), info)
        for name, info in found.items()
        if info.get("type", "file") != "directory" and (not wanted or name.lower().endswith(wanted))
    ]
    _listed(prefix, [o.uri for o in out])
    return sorted(out, key=lambda o: o.uri)


def list_folders(prefix: str) -> set[str]:
    """Names of the folders directly under `prefix` (one delimited LIST per 1,000); none if absent."""
    _check(prefix, "list")
    fs, path = filesystem(prefix)
    try:
        entries = fs.ls(path, detail=True)
    except FileNotFoundError:
        return set()
    names = {entry["name"].rstrip("/").rsplit("/", 1)[-1] for entry in entries if entry.get("type") == "directory"}
    _listed(prefix, [f"{prefix.rstrip('/')}/{name}" for name in names])
    return names


def list_named(base: str) -> list[ObjectIdentity]:
    """Identities of the objects in `base`'s folder whose names start with `base`'s own name (a video's
    outputs: `<base>.h5`, `<base>.csv`, `<base>_meta.json`, ...): one LIST request with a server-side
    prefix on object stores, never a listing of the whole folder."""
    _check(base, "list")
    folder, _, name = base.rstrip("/").rpartition("/")
    fs, path = filesystem(folder)
    protocols = {fs.protocol} if isinstance(fs.protocol, str) else set(fs.protocol)
    try:
        if not _is_local(fs) and protocols & {"s3", "s3a"}:
            found = fs.find(path, prefix=name, detail=True, maxdepth=1)
        else:
            found = {entry["name"]: entry for entry in fs.ls(path, detail=True)}
    except FileNotFoundError:
        return []
    named = sorted((identity_from_info(_unstrip(folder, fs, p), info) for p, info in found.items()
                    if info.get("type", "file") != "directory" and p.rsplit("/", 1)[-1].startswith(name)),
                   key=lambda o: o.uri)
    _listed(folder, [o.uri for o in named])
    return named
