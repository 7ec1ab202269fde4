"""Archive jobs under the root, read from their manifests; a finished video's frame with its poses and
its trajectory plot; downloads of outputs."""

from __future__ import annotations

import hashlib
import json

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from posecluster import api, storage
from posecluster.config import PoseclusterConfig
from posecluster.errors import InputError
from posecluster.serve.paths import PathRefused, relative_to, resolve

MANIFEST = "posecluster-manifest.json"


def read_job_manifests(files: list[str]) -> list[dict]:
    """Every archive job's manifest among `files`, newest first, as JobReport dicts.

    The ONE place that knows the manifest layout (today `<out>/.posecluster/jobs/<job>/manifest.json` and
    `<out>/posecluster-manifest.json` for the latest job): re-point it when the format changes."""
    jobs: dict[str, dict] = {}
    candidates = [f for f in files if f.endswith("/manifest.json") and "/.posecluster/jobs/" in f]
    candidates += [f for f in files if storage.basename(f) == MANIFEST]
    for uri in candidates:
        try:
            manifest = json.loads(storage.read_bytes(uri))
        except (ValueError, OSError) as exc:
            jobs[uri] = {"job_id": uri, "status": "unreadable", "error": f"{uri}: {exc}", "videos": []}
            continue
        jobs.setdefault(str(manifest.get("job_id", uri)), {**manifest, "manifest_uri": uri})
    return sorted(jobs.values(), key=lambda j: j.get("started") or 0, reverse=True)


def job_summary(root: str, manifest: dict) -> dict:
    videos = manifest.get("videos", [])
    segments = [s for v in videos for s in v.get("segments", [])]
    seconds = float(manifest.get("seconds") or 0)
    counts = {status: sum(v.get("status") == status for v in videos) for status in ("done", "skipped", "failed", "pending")}
    rows = []
    for video in videos:
        outputs = {fmt: {"uri": uri, "path": relative_to(root, uri)} for fmt, uri in (video.get("outputs") or {}).items()}
        rows.append({"video": video.get("uri", ""), "status": video.get("status", ""), "frames": video.get("frames", 0),
                     "error": video.get("error", ""), "outputs": outputs,
                     "missing_frames": len(video.get("missing_frames") or {}),
                     "segments": len(video.get("segments", [])),
                     "segments_done": sum(s.get("status") in ("done", "cached") for s in video.get("segments", []))})
    return {
        "job_id": manifest.get("job_id"), "status": manifest.get("status"), "error": manifest.get("error", ""),
        "out": manifest.get("out"), "model": (manifest.get("model") or {}).get("uri", ""),
        "manifest": relative_to(root, manifest.get("manifest_uri", "")), "started": manifest.get("started"),
        "seconds": seconds, "workers": manifest.get("workers", 0),
        "fps": manifest.get("frames_computed", 0) / seconds if seconds else 0.0,
        "videos_total": len(videos), **{f"videos_{k}": n for k, n in counts.items()},
        "segments_total": len(segments),
        "segments_done": sum(s.get("status") in ("done", "cached") for s in segments),
        "videos": rows,
    }


class JobRoutes:
    def __init__(self, root: str):
        self.root = root
        self._pcutoffs: dict[str, float] = {}

    def _pcutoff(self, request: Request, meta: dict) -> float:
        """?pcutoff=, else the p-cutoff of the model's project (DLC's default for what is drawn), read
        from the resolved config.yaml beside the model, else 0.6."""
        if "pcutoff" in request.query_params:
            return float(request.query_params["pcutoff"])
        model = meta.get("model") or {}
        uri = model.get("uri", "") if isinstance(model, dict) else str(model)
        if uri not in self._pcutoffs:
            try:
                config = PoseclusterConfig.load(storage.join(storage.parent(uri), "config.yaml"))
                self._pcutoffs[uri] = float(config.project.pcutoff)
            except (OSError, ValueError):
                self._pcutoffs[uri] = 0.6
        return self._pcutoffs[uri]

    def routes(self) -> list[Route]:
        return [
            Route("/api/jobs", self.jobs),
            Route("/api/jobs/frame", self.frame),
            Route("/api/jobs/plot", self.plot),
            Route("/api/file", self.file),
        ]

    def jobs(self, request: Request):
        manifests = read_job_manifests(storage.list_files(self.root))
        return JSONResponse({"jobs": [job_summary(self.root, m) for m in manifests]})

    def _table(self, request: Request) -> tuple[str, dict]:
        table = resolve(self.root, request.query_params.get("table"))
        if not table.endswith(".h5"):
            raise PathRefused("table must be a pose table (.h5) under the root")
        meta = json.loads(storage.read_bytes(api.sibling(table, "_meta.json")))
        return table, meta

    def _cached(self, request: Request, key: str, build, media: str) -> Response:
        etag = '"' + hashlib.sha256(key.encode()).hexdigest()[:32] + '"'
        headers = {"ETag": etag, "Cache-Control": "private, max-age=300"}
        if request.headers.get("if-none-match") == etag:
            return Response(status_code=304, headers=headers)
        return Response(build(), media_type=media, headers=headers)

    def frame(self, request: Request):
        table, meta = self._table(request)
        try:
            index = int(request.query_params.get("frame", "0"))
        except ValueError:
            raise InputError(table, "frame must be an integer") from None
        pcutoff = self._pcutoff(request, meta)
        return self._cached(request, f"{storage.identity(table).key()}|{index}|{pcutoff}",
                            lambda: api.pose_frame_image(table, meta["video"], index, pcutoff), "image/png")

    def plot(self, request: Request):
        table, meta = self._table(request)
        pcutoff = self._pcutoff(request, meta)
        title = storage.stem(meta.get("video", table))
        return self._cached(request, f"{storage.identity(table).key()}|trajectory|{pcutoff}",
                            lambda: api.trajectory_image(table, pcutoff, title), "image/png")

    def file(self, request: Request):
        uri = resolve(self.root, request.query_params.get("path"))
        handle = storage.open_uri(uri, "rb")

        def chunks():
            with handle:
                while chunk := handle.read(1 << 20):
                    yield chunk

        name = storage.basename(uri).replace('"', "")
        return StreamingResponse(chunks(), media_type="application/octet-stream",
                                 headers={"Content-Disposition": f'attachment; filename="{name}"'})
