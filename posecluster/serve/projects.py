"""Projects, labeling and refining: JSON over posecluster.api, frames as cached images.

`/api/projects` answers from ONE listing of what the caller may see: what it derives from each file
(a config's body parts, a table's labeled rows) is cached by that file's identity (ETag or mtime), so a
file is read again only when it changed; concurrent requests share one listing (coalesce.py)."""

from __future__ import annotations

import hashlib
import json
import mimetypes
import threading
from collections import OrderedDict

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from posecluster import storage
from posecluster.config import ProjectConfig
from posecluster.data.formats import dlc
from posecluster.data.images import image_size
from posecluster.errors import InputError
from posecluster.labeling.folder_table import IMAGE_SUFFIXES, TableConflict
from posecluster.serve.animals import AnimalFrames
from posecluster.serve.coalesce import Coalescer
from posecluster.serve.labels import SingleAnimalFrames, merge_frames, parse_body
from posecluster.serve.paths import PathRefused, Scope, checked_parts
from posecluster.serve.security import read_body
from posecluster.storage.listing import list_identities

CACHE_ENTRIES = 8192
SAVE_ATTEMPTS = 3  # a save that races another server process re-reads and merges again


class IdentityCache:
    """What was derived from a file, kept while the file's identity (size + ETag/mtime) is unchanged."""

    def __init__(self, entries: int = CACHE_ENTRIES):
        self._values: OrderedDict[str, object] = OrderedDict()
        self._entries = entries
        self._guard = threading.Lock()

    def get(self, key: str, build):
        with self._guard:
            if key in self._values:
                self._values.move_to_end(key)
                return self._values[key]
        value = build()
        with self._guard:
            self._values[key] = value
            while len(self._values) > self._entries:
                self._values.popitem(last=False)
        return value


def safe_scorer(config: ProjectConfig, shown: str) -> None:
    """The scorer names the CollectedData file: it must be a file name, never a path."""
    scorer = config.scorer
    if scorer in (".", "..") or any(c in scorer for c in "/\\") or any(ord(c) < 32 for c in scorer):
        raise InputError(shown, f"scorer {scorer!r} cannot name a CollectedData file")


def frames_of(project: ProjectConfig) -> SingleAnimalFrames | AnimalFrames:
    """How this project's folders are read, shown, checked and saved: the one place where a project's kind
    (single- or multi-animal) is decided."""
    return AnimalFrames(project) if project.multianimal else SingleAnimalFrames(project)


TRACKED_TABLE = "_el.h5"  # a multi-animal analysis's tracked table (with its _meta.json), as DLC and posecluster name it


def _is_image(name: str) -> bool:
    return name.lower().endswith(IMAGE_SUFFIXES)


class Catalog:
    """The projects a caller may see, from one listing per request. When the listing's identities are
    those of the last answer for the same prefixes, that answer stands (nothing under them changed);
    otherwise every file is confined again and only files whose identity changed are read again."""

    def __init__(self, root: str):
        self.root = root
        self.cache = IdentityCache()
        self.coalescer = Coalescer()
        self._answers: dict[tuple[str, ...], tuple[str, bytes, str]] = {}

    def answer(self, scope: Scope) -> tuple[bytes, str]:
        """(JSON, ETag) of the caller's projects."""
        listing = [entry for prefix in scope.prefixes_to_list() for entry in list_identities(prefix)]
        signature = hashlib.sha256("\n".join(e.key() for e in listing).encode()).hexdigest()
        key = scope.caller.prefixes
        last = self._answers.get(key)
        if last is not None and last[0] == signature:
            return last[1], last[2]
        data, etag = self.build(scope, listing)
        if len(self._answers) > 1000:
            self._answers.clear()
        self._answers[key] = (signature, data, etag)
        return data, etag

    @staticmethod
    def _confined(scope: Scope, listing: list) -> tuple[list, list[str]]:
        """(identities the caller may read, URIs refused: links leading out, odd keys)."""
        allowed, refused = [], []
        for entry in listing:
            if scope.allows(entry.uri):
                allowed.append(entry)
            else:
                refused.append(entry.uri)
        return allowed, refused

    def _config(self, scope: Scope, entry) -> tuple[dict, ProjectConfig]:
        shown = scope.relative(entry.uri) or "config.yaml"

        def parse():
            raw = dlc.read_raw_project_config(scope.contain(entry.uri))
            config = ProjectConfig.from_dlc(raw, source=shown)
            safe_scorer(config, shown)
            return raw, config

        return self.cache.get("config|" + entry.key(), parse)

    def _folder_counts(self, project_uri: str, name: str, signature: str, frames) -> tuple[int, int]:
        def read():
            return frames.counts(frames.read(project_uri, f"labeled-data/{name}"))

        return self.cache.get(f"folder|{project_uri}|{name}|{signature}", read)

    def _folder_row(self, scope: Scope, project_uri: str, name: str, folder: dict, config_key: str, frames) -> dict:
        """A video folder's counts; a folder whose table (or anything else read) leads out is an error row."""
        row = {"name": name, "folder": f"labeled-data/{name}", "frames": folder["frames"], "labeled": 0,
               "proposed": 0, "error": ""}
        reads = [r for r in folder["refused"] if not _is_image(r)]
        if reads or (folder["refused"] and not folder["files"]):
            row["error"] = f"{(reads or folder['refused'])[0]}: leads outside the served root; not read"
            return row
        signature = hashlib.sha256("|".join(sorted(folder["files"]) + [config_key]).encode()).hexdigest()
        try:
            row["labeled"], row["proposed"] = self._folder_counts(scope.contain(project_uri), name, signature, frames)
        except (InputError, ValueError, OSError) as exc:
            row["error"] = scope.redact(str(exc))
        return row

    def build(self, scope: Scope, listing: list) -> tuple[bytes, str]:
        entries, refused = self._confined(scope, listing)
        by_uri = {e.uri: e for e in entries}
        # One pass over the listing: <project>/labeled-data/<folder>/<file> grouped by project and folder.
        folders_of: dict[str, dict[str, dict]] = {}
        for uri in list(by_uri) + refused:
            project_uri, sep, rest = uri.rpartition("/labeled-data/")
            if not sep or rest.count("/") != 1:
                continue
            name, file = rest.split("/")
            folder = folders_of.setdefault(project_uri, {}).setdefault(name, {"frames": 0, "files": [], "refused": []})
            if uri in by_uri:
                folder["frames"] += _is_image(file)
                folder["files"].append(by_uri[uri].key())
            else:
                folder["refused"].append(f"labeled-data/{name}/{file}")
        configs = sorted({u for u in list(by_uri) + refused
                          if storage.basename(u) == "config.yaml" and "/.posecluster/" not in u})
        projects = []
        for config_uri in configs:
            project_uri = storage.parent(config_uri)
            folders = folders_of.get(project_uri, {})
            if not folders:
                continue  # a run folder's resolved config.yaml, not a DeepLabCut project
            shown = scope.relative(project_uri)
            if config_uri not in by_uri:
                projects.append({"path": shown, "error": "config.yaml: a symbolic link leading outside the served "
                                                         "root (or an odd key); it is not read"})
                continue
            try:
                raw, config = self._config(scope, by_uri[config_uri])
            except (InputError, ValueError, OSError) as exc:
                projects.append({"path": shown, "error": scope.redact(str(exc))})
                continue
            frames = frames_of(config)
            rows = [self._folder_row(scope, project_uri, name, folder, by_uri[config_uri].key(), frames)
                    for name, folder in sorted(folders.items())]
            entry = {"path": shown, "task": str(raw.get("Task", "")), "scorer": config.scorer,
                     "iteration": config.iteration, "bodyparts": list(config.bodyparts), "folders": rows}
            if config.multianimal:
                inside = project_uri.rstrip("/") + "/"
                entry.update(multianimal=True, individuals=list(config.individuals),
                             unique_bodyparts=list(config.unique_bodyparts),
                             tracks=sorted(scope.relative(u) for u in by_uri if u.startswith(inside)
                                           and u.endswith(TRACKED_TABLE) and u[:-3] + "_meta.json" in by_uri))
            projects.append(entry)
        body = {"root": self.root if scope.caller.whole_root else "",
                "prefixes": list(scope.caller.prefixes), "projects": projects}
        data = json.dumps(body).encode()
        return data, '"' + hashlib.sha256(data).hexdigest()[:32] + '"'


class ProjectRoutes:
    def __init__(self, root: str):
        self.root = root
        self.catalog = Catalog(root)
        self.sizes = IdentityCache()
        self._locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()

    def _lock(self, key: str) -> threading.Lock:
        with self._locks_guard:
            return self._locks.setdefault(key, threading.Lock())

    def routes(self) -> list[Route]:
        return [
            Route("/api/projects", self.projects),
            Route("/api/labels", self.labels, methods=["GET"]),
            Route("/api/labels", self.save, methods=["PUT"]),
            Route("/api/image", self.image),
        ]

    async def projects(self, request: Request):
        scope: Scope = request.state.scope
        key = "|".join(scope.caller.prefixes)
        data, etag = await self.catalog.coalescer.shared(key, lambda: self.catalog.answer(scope))
        headers = {"ETag": etag, "Cache-Control": "private, no-cache"}
        if request.headers.get("if-none-match") == etag:
            return Response(status_code=304, headers=headers)
        return Response(data, media_type="application/json", headers=headers)

    def _folder(self, scope: Scope, request: Request) -> tuple[str, str, dict]:
        """(confined project URI, 'labeled-data/<name>', {image: identity} of the frames it may serve),
        after every file the labels are read from was confined."""
        params = request.query_params
        project = scope.resolve(params.get("project"))
        shown = params.get("project")
        folder = params.get("folder", "")
        parts = checked_parts(folder)
        if len(parts) == 2 and parts[0] == "labeled-data":
            parts = parts[1:]
        if len(parts) != 1:
            raise PathRefused(f"{folder!r}: a video folder under labeled-data/ is required")
        name = parts[0]
        config = storage.join(project, "config.yaml")
        if not storage.exists(scope.contain(config, shown=f"{shown}/config.yaml")):
            raise FileNotFoundError(f"{shown}: no config.yaml (not a DeepLabCut project)")
        folder_uri = storage.join(project, "labeled-data", name)
        if scope.contain(folder_uri, shown=f"{shown}/labeled-data/{name}") != folder_uri:
            raise PathRefused(f"{shown}/labeled-data/{name}: a symbolic link; labels are read and saved only in "
                              "real folders")
        images = {}
        entries = list_identities(folder_uri)
        if not entries:
            raise FileNotFoundError(f"{shown}: no folder labeled-data/{name} (extract frames into it first)")
        for entry in entries:
            rest = entry.uri[len(folder_uri) + 1:]
            if "/" in rest:
                continue
            if _is_image(rest):
                if scope.allows(entry.uri):
                    images[f"labeled-data/{name}/{rest}"] = entry
            else:  # tables, machine labels, proposals: read by the api below, so confined first
                scope.contain(entry.uri, shown=f"{shown}/labeled-data/{name}/{rest}")
        project_config = dlc.read_project_config(config)
        safe_scorer(project_config, f"{shown}/config.yaml")
        return project, f"labeled-data/{name}", images, frames_of(project_config)

    def _folder_json(self, scope: Scope, project: str, folder: str, images: dict, frames) -> dict:
        table = frames.read(project, folder)
        shown = [image for image in table.images if image in images]
        return {
            "project": scope.relative(project), "folder": folder, "scorer": table.project.scorer,
            "iteration": table.project.iteration, "pcutoff": table.project.pcutoff, "version": table.version,
            "images": shown, **frames.page(table, shown, images),
        }

    def labels(self, request: Request):
        scope: Scope = request.state.scope
        project, folder, images, frames = self._folder(scope, request)
        return JSONResponse(self._folder_json(scope, project, folder, images, frames))

    async def save(self, request: Request):
        scope: Scope = request.state.scope
        body = parse_body(await read_body(request))
        return await run_in_threadpool(self._save, scope, request, body)

    def _save(self, scope: Scope, request: Request, body: dict) -> JSONResponse:
        project, folder, images, frames = self._folder(scope, request)
        mine, base = {}, {}
        for image, points in body["labels"].items():
            if image not in images:
                raise InputError(image, f"is not a frame of {folder} (only its image files can be labeled)")
            size = self.sizes.get("size|" + images[image].key(), lambda: image_size(storage.join(project, image)))
            mine[image] = frames.checked(image, points, size)
            if image in body.get("base", {}):
                base[image] = frames.checked(image, body["base"][image], None)
        with self._lock(project + "|" + folder):  # one save of a folder at a time in this server
            for attempt in range(SAVE_ATTEMPTS):
                table = frames.read(project, folder)
                accepted, conflicts = merge_frames(table.keypoints(), mine, base, table.version == body["version"])
                version = table.version
                try:
                    if accepted:
                        version = frames.save(project, folder, accepted, table.version)
                    break
                except TableConflict:  # another server process saved between our read and write
                    if attempt == SAVE_ATTEMPTS - 1:
                        raise
            current = self._folder_json(scope, project, folder, images, frames)
        conflicts = [{"image": c["image"], "yours": frames.wire(c["yours"]), "theirs": frames.wire(c["theirs"])}
                     for c in conflicts]
        answer = {"version": current["version"], "saved": len(accepted), "labels": current["labels"],
                  "conflicts": conflicts}
        if conflicts:
            answer["error"] = (f"{len(conflicts)} frame(s) were saved by someone else since you loaded them and you "
                               "changed them too; nothing of those frames was written. Choose yours or theirs.")
            answer["current_version"] = current["version"]
            return JSONResponse(answer, status_code=409)
        return JSONResponse(answer)

    def image(self, request: Request):
        scope: Scope = request.state.scope
        path = request.query_params.get("path")
        uri = scope.resolve(path)
        if not _is_image(uri):
            raise PathRefused(f"{path!r}: only images are served here")
        ident = storage.identity(uri)
        etag = '"' + hashlib.sha256(ident.key().encode()).hexdigest()[:32] + '"'
        headers = {"ETag": etag, "Cache-Control": "private, max-age=300"}
        if request.headers.get("if-none-match") == etag:
            return Response(status_code=304, headers=headers)
        media = mimetypes.guess_type(uri)[0] or "application/octet-stream"
        return Response(storage.read_bytes(uri), media_type=media, headers=headers)
