"""Projects, labeling and refining: JSON over posecluster.api, frames as cached images."""

from __future__ import annotations

import hashlib
import json
import mimetypes
import threading

import numpy as np
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from posecluster import api, storage
from posecluster.data.formats import dlc
from posecluster.errors import InputError
from posecluster.labeling.folder_table import IMAGE_SUFFIXES
from posecluster.serve.paths import PathRefused, relative_to, resolve


def find_projects(root: str, files: list[str]) -> list[dict]:
    """DeepLabCut projects under `root`: a config.yaml with labeled-data/<video>/ beside it."""
    projects = []
    configs = [f for f in files if storage.basename(f) == "config.yaml" and "/.posecluster/" not in f]
    for config_uri in configs:
        project_uri = storage.parent(config_uri)
        labeled = project_uri + "/labeled-data/"
        folders: dict[str, dict] = {}
        for f in files:
            rest = f[len(labeled):] if f.startswith(labeled) else None
            if rest and rest.count("/") == 1:
                entry = folders.setdefault(rest.split("/")[0], {"frames": 0, "proposals": False})
                name = rest.split("/")[1]
                entry["frames"] += name.lower().endswith(IMAGE_SUFFIXES)
                entry["proposals"] |= name.startswith("outliers-iter")
        if not folders:
            continue  # a run folder's resolved config.yaml, not a DeepLabCut project
        try:
            raw = dlc.read_raw_project_config(config_uri)
            config = dlc.read_project_config(config_uri)
        except (InputError, ValueError) as exc:
            projects.append({"path": relative_to(root, project_uri), "error": str(exc)})
            continue
        rows = []
        for name, entry in sorted(folders.items()):
            folder = f"labeled-data/{name}"
            labeled_rows, error = 0, ""
            try:
                table = api.folder_table(project_uri, folder)
                labeled_rows = int((~np.isnan(table.labels.keypoints).all(axis=(1, 2))).sum())
                proposed = len(table.proposed)
            except (InputError, ValueError, OSError) as exc:
                error, proposed = str(exc), 0
            rows.append({"name": name, "folder": folder, "frames": entry["frames"], "labeled": labeled_rows,
                         "proposed": proposed, "error": error})
        projects.append({"path": relative_to(root, project_uri), "task": raw.get("Task", ""),
                         "scorer": config.scorer, "iteration": config.iteration,
                         "bodyparts": list(config.bodyparts), "folders": rows})
    return projects


MAX_SAVE_BYTES = 8 << 20


class ProjectRoutes:
    def __init__(self, root: str):
        self.root = root
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

    def projects(self, request: Request):
        files = storage.list_files(self.root)
        return JSONResponse({"root": self.root, "projects": find_projects(self.root, files)})

    def _project_and_folder(self, request: Request) -> tuple[str, str]:
        project = resolve(self.root, request.query_params.get("project"))
        folder = request.query_params.get("folder", "")
        resolve(project, folder)  # same rules for the folder
        if not storage.exists(storage.join(project, "config.yaml")):
            raise FileNotFoundError(f"{relative_to(self.root, project)}: no config.yaml (not a DeepLabCut project)")
        return project, f"labeled-data/{folder}" if "/" not in folder else folder

    def labels(self, request: Request):
        project, folder = self._project_and_folder(request)
        table = api.folder_table(project, folder)
        return JSONResponse({
            "project": relative_to(self.root, project), "folder": folder, "scorer": table.project.scorer,
            "bodyparts": list(table.project.bodyparts), "iteration": table.project.iteration,
            "pcutoff": table.project.pcutoff, "version": table.version,
            "images": table.images, "labels": table.keypoints(),
            "machine": table.machine, "proposed": table.proposed,
        })

    async def save(self, request: Request):
        project, folder = self._project_and_folder(request)
        raw = await request.body()
        if len(raw) > MAX_SAVE_BYTES:  # a folder's labels are kilobytes; refuse before parsing
            return JSONResponse({"error": f"request body of {len(raw)} bytes exceeds {MAX_SAVE_BYTES}"}, status_code=413)
        try:
            body = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            return JSONResponse({"error": f"request body is not valid JSON: {exc}"}, status_code=400)
        if not isinstance(body, dict) or not isinstance(body.get("labels"), dict) or not isinstance(body.get("version"), str):
            return JSONResponse({"error": 'expected {"version": "<as loaded>", "labels": {"<image>": '
                                          '[[x, y] or null per body part]}}'}, status_code=400)
        def write():
            with self._lock(project + "|" + folder):  # one save of a folder at a time in this server
                return api.save_labels(project, folder, body["labels"], body["version"])

        version = await run_in_threadpool(write)
        return JSONResponse({"version": version, "saved": len(body["labels"])})

    def image(self, request: Request):
        uri = resolve(self.root, request.query_params.get("path"))
        if not uri.lower().endswith(IMAGE_SUFFIXES):
            raise PathRefused(f"{request.query_params.get('path')!r}: only images are served here")
        ident = storage.identity(uri)
        etag = '"' + hashlib.sha256(ident.key().encode()).hexdigest()[:32] + '"'
        headers = {"ETag": etag, "Cache-Control": "private, max-age=300"}
        if request.headers.get("if-none-match") == etag:
            return Response(status_code=304, headers=headers)
        media = mimetypes.guess_type(uri)[0] or "application/octet-stream"
        return Response(storage.read_bytes(uri), media_type=media, headers=headers)
