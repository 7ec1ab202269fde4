"""Archive jobs under the root, read from their manifests through the api (summaries, then the per-video
records a page at a time); a finished video's frame with its poses and
its trajectory plot; downloads of outputs."""

from __future__ import annotations

import hashlib
import json
import re

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from posecluster import api, storage
from posecluster.config import PoseclusterConfig
from posecluster.errors import InputError
from posecluster.serve.paths import PathRefused, relative_to, require_under, resolve

JOBS_SHOWN = 20  # newest jobs on the page; each costs one read of its small summary
PAGE_MAX = 500  # per-video rows per request: a 100,000-video job is read page by page
STATUSES = ("done", "done-with-warnings", "skipped", "failed", "pending")
JOB_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


def read_jobs(root: str) -> tuple[list[dict], int]:
    """The newest archive jobs under `root` as the page shows them (summaries only, no per-video rows),
    and how many older ones are not shown. One listing finds them; an unreadable summary is shown as
    such and never hides the other jobs.

    The ONE place in the app that knows what a job's summary holds (posecluster.cluster.manifest writes
    it: `<out>/.posecluster/jobs/<job>/summary.json` with `counts`, plus JSON-lines records)."""
    found = api.find_jobs(root)
    jobs = []
    for out, job_id in found[:JOBS_SHOWN]:
        try:
            summary = api.job_status(out, job_id, failures=0)
        except (ValueError, OSError) as exc:
            summary = {"job_id": job_id, "status": "unreadable", "error": f"{out}: job {job_id}: {exc}"}
        jobs.append(job_summary(root, out, summary))
    return jobs, max(0, len(found) - JOBS_SHOWN)


def job_summary(root: str, out: str, summary: dict) -> dict:
    counts = {status: int((summary.get("counts") or {}).get(status, 0)) for status in STATUSES}
    model = summary.get("model") or {}
    return {
        "job_id": summary.get("job_id"), "status": summary.get("status"), "error": summary.get("error", ""),
        "out": out, "out_path": "" if out == root else relative_to(root, out),
        "model": model.get("uri", "") if isinstance(model, dict) else str(model),
        "started": summary.get("started"), "seconds": float(summary.get("seconds") or 0),
        "workers": summary.get("workers", 0), "fps": float(summary.get("fps") or 0),
        "frames_computed": summary.get("frames_computed", 0),
        "segments_computed": summary.get("segments_computed", 0), "segments_cached": summary.get("segments_cached", 0),
        "first_table_s": summary.get("first_table_s"),
        "videos_total": int(summary.get("videos_total") or 0), "counts": counts,
        "videos_finished": sum(n for status, n in counts.items() if status != "pending"),
        **{f"videos_{status.replace('-', '_')}": n for status, n in counts.items()},
    }


def missing_count(ranges: str) -> int:
    """"3-5,9" (the records' compact missing frames) -> 4."""
    total = 0
    for run in filter(None, ranges.split(",")):
        first, _, last = run.partition("-")
        total += int(last or first) - int(first) + 1
    return total


def video_row(root: str, record: dict) -> dict:
    outputs = {fmt: {"uri": uri, "path": relative_to(root, uri)} for fmt, uri in (record.get("outputs") or {}).items()}
    cuts = record.get("cuts") or []
    return {"video": record.get("uri", ""), "status": record.get("status", ""), "frames": record.get("frames", 0),
            "error": record.get("error", ""), "outputs": outputs, "missing": record.get("missing", ""),
            "missing_frames": missing_count(record.get("missing", "")),
            "segments": max(0, len(cuts) - 1), "segments_computed": record.get("computed", 0)}


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
                # Only a model under the root is read; elsewhere DLC's default p-cutoff applies.
                config = PoseclusterConfig.load(require_under(self.root, storage.join(storage.parent(uri), "config.yaml"),
                                                              "the model's config"))
                self._pcutoffs[uri] = float(config.project.pcutoff)
            except (OSError, ValueError):  # PathRefused is a ValueError
                self._pcutoffs[uri] = 0.6
        return self._pcutoffs[uri]

    def routes(self) -> list[Route]:
        return [
            Route("/api/jobs", self.jobs),
            Route("/api/jobs/videos", self.videos),
            Route("/api/jobs/frame", self.frame),
            Route("/api/jobs/plot", self.plot),
            Route("/api/file", self.file),
        ]

    def jobs(self, request: Request):
        jobs, older = read_jobs(self.root)
        return JSONResponse({"jobs": jobs, "older": older})

    def videos(self, request: Request):
        """?out=<path under the root, empty for the root>&job=<id>[&status=][&offset=][&limit=]: one page
        of a job's per-video rows, with the count of its status (from the summary) for paging."""
        params = request.query_params
        out = self.root if not params.get("out") else resolve(self.root, params["out"])
        job = params.get("job", "")
        if not JOB_ID.fullmatch(job):
            raise PathRefused(f"{job!r}: not a job id")
        status = params.get("status") or None
        if status is not None and status not in STATUSES:
            raise ValueError(f"status must be one of {', '.join(STATUSES)}")
        try:
            offset, limit = int(params.get("offset", "0")), int(params.get("limit", "50"))
        except ValueError:
            raise ValueError("offset and limit must be integers") from None
        if offset < 0 or not 0 < limit <= PAGE_MAX:
            raise ValueError(f"offset must be >= 0 and limit between 1 and {PAGE_MAX}")
        summary = job_summary(self.root, out, api.job_status(out, job, failures=0))
        total = summary["counts"][status] if status else summary["videos_finished"]
        records = [] if status == "pending" else api.job_videos(out, job, status, offset, limit)
        return JSONResponse({"job_id": job, "status": status or "", "offset": offset, "limit": limit, "total": total,
                             "videos": [video_row(self.root, r) for r in records]})

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
        video = require_under(self.root, meta.get("video", ""), f"the video that {storage.basename(table)}'s _meta.json names")
        pcutoff = self._pcutoff(request, meta)
        return self._cached(request, f"{storage.identity(table).key()}|{index}|{pcutoff}",
                            lambda: api.pose_frame_image(table, video, index, pcutoff), "image/png")

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
