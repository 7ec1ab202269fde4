"""Archive jobs under what the caller may see, read from their manifests through the api (summaries, then
the per-video records a page at a time); a finished video's frame with its poses and its trajectory
plot; downloads of outputs.

Everything in a manifest is untrusted data (anyone who can write under the root can write one): each
field is coerced to the type the page expects here, a job that cannot be read is one broken row, and a
location it names is followed only when it lies in the caller's scope."""

from __future__ import annotations

import hashlib
import json
import logging
import math
import re
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from posecluster import api, storage
from posecluster.config import PoseclusterConfig
from posecluster.errors import InputError
from posecluster.serve.coalesce import SharedAnswers
from posecluster.serve.paths import PathRefused, Scope

log = logging.getLogger(__name__)

JOBS_SHOWN = 20  # newest jobs on the page; each costs one read of its small summary
# How old a shared /api/jobs answer may be before it is listed again: 200 Jobs pages polling at once cost
# one listing of the root per period. Up to JOBS_ANSWER_STALE_S the old answer is still given while that
# listing runs in the background (a running archive's counts are then a listing late, not a listing slow).
JOBS_ANSWER_TTL_S = 2.0
JOBS_ANSWER_STALE_S = 30.0
PAGE_MAX = 500  # per-video rows per request: a 100,000-video job is read page by page
STATUSES = ("done", "done-with-warnings", "skipped", "failed", "pending")
JOB_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
TEXT_MAX = 2000
DEFAULT_PCUTOFF = 0.6


def text(value, limit: int = TEXT_MAX) -> str:
    """A stored value shown as text: strings and numbers only, bounded."""
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        return ""
    return str(value)[:limit]


def count(value) -> int:
    """A stored count: a non-negative finite number, else 0."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        return 0
    return int(min(value, 1e15))


def number(value) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


OUTSIDE = "(outside your folders)"


def shown_location(scope: Scope, value) -> str:
    """A location a manifest names, as the caller may see it: its path under the root when it lies in the
    caller's folders; otherwise nothing of it for a lab (another lab's or the server's path), and the
    location itself only for whole-root callers, who may see every path anyway."""
    uri = text(value)
    if not uri:
        return ""
    relative = scope.relative(uri)
    if relative and scope.allows(uri):
        return relative
    return uri if scope.caller.whole_root and relative is None else OUTSIDE


def job_summary(scope: Scope, out: str, job_id: str, summary: dict) -> dict:
    """The page's view of a summary: the job's id from where it is stored (not from its content)."""
    if not isinstance(summary, dict):
        raise ValueError("the summary is not a JSON object")
    raw_counts = summary.get("counts") if isinstance(summary.get("counts"), dict) else {}
    counts = {status: count(raw_counts.get(status)) for status in STATUSES}
    model = summary.get("model")
    return {
        "job_id": text(job_id), "status": text(summary.get("status"), 40), "error": "",
        "out_path": scope.relative(out) or "",
        "model": shown_location(scope, model.get("uri") if isinstance(model, dict) else model),
        "started": number(summary.get("started")), "seconds": number(summary.get("seconds")) or 0.0,
        "workers": count(summary.get("workers")), "fps": number(summary.get("fps")) or 0.0,
        "frames_computed": count(summary.get("frames_computed")),
        "segments_computed": count(summary.get("segments_computed")),
        "segments_cached": count(summary.get("segments_cached")),
        "first_table_s": number(summary.get("first_table_s")),
        "videos_total": count(summary.get("videos_total")), "counts": counts,
        "videos_finished": sum(n for status, n in counts.items() if status != "pending"),
        **{f"videos_{status.replace('-', '_')}": n for status, n in counts.items()},
    }


def broken_job(scope: Scope, out: str, job_id: str, exc: Exception) -> dict:
    return {"job_id": text(job_id), "status": "unreadable", "out_path": scope.relative(out) or "",
            "error": scope.redact(f"{scope.relative(out) or '.'}: job {job_id}: {type(exc).__name__}: {exc}")[:TEXT_MAX]}


def read_jobs(scope: Scope) -> tuple[list[dict], int]:
    """The newest archive jobs the caller may see, and how many older ones are not shown. One listing per
    prefix finds them; a job whose summary cannot be read is shown as such and never hides the others."""
    found = []
    for prefix in scope.prefixes_to_list():
        found += [(out, job) for out, job in api.find_jobs(prefix) if scope.allows(out)]
    found.sort(key=lambda job: job[1], reverse=True)  # ids start with their start time
    jobs = []
    for out, job_id in found[:JOBS_SHOWN]:
        try:
            jobs.append(job_summary(scope, out, job_id, api.job_status(out, job_id, failures=0)))
        except Exception as exc:  # noqa: BLE001 -- any malformed file is this job's problem alone
            log.warning("job %s under %s is unreadable: %s", job_id, out, exc)
            jobs.append(broken_job(scope, out, job_id, exc))
    return jobs, max(0, len(found) - JOBS_SHOWN)


def missing_count(ranges: str) -> int:
    """"3-5,9" (the records' compact missing frames) -> 4; unreadable ranges count 0."""
    total = 0
    for run in filter(None, ranges.split(",")):
        first, _, last = run.partition("-")
        try:
            total += max(0, int(last or first) - int(first) + 1)
        except ValueError:
            return 0
    return total


def video_row(scope: Scope, record) -> dict:
    if not isinstance(record, dict):
        return {"video": "", "status": "unreadable", "frames": 0, "error": "a record that is not a JSON object",
                "outputs": {}, "missing": "", "missing_frames": 0, "segments": 0, "segments_computed": 0}
    outputs = {}
    raw_outputs = record.get("outputs") if isinstance(record.get("outputs"), dict) else {}
    for fmt, uri in list(raw_outputs.items())[:10]:
        uri = text(uri)
        outputs[text(fmt, 20)] = {"path": scope.relative(uri) if uri and scope.allows(uri) else None}
    cuts = record.get("cuts") if isinstance(record.get("cuts"), list) else []
    missing = text(record.get("missing"), 500)
    return {"video": shown_location(scope, record.get("uri")), "status": text(record.get("status"), 40),
            "frames": count(record.get("frames")), "error": scope.redact(text(record.get("error"))), "outputs": outputs, "missing": missing,
            "missing_frames": missing_count(missing), "segments": max(0, len(cuts) - 1),
            "segments_computed": count(record.get("computed"))}


def confined_table(scope: Scope, path: str | None) -> tuple[str, dict]:
    """(confined URI, its _meta.json as a dict) of the pose table the browser names by `path`."""
    table = scope.resolve(path)
    if not table.endswith(".h5"):
        raise PathRefused("table must be a pose table (.h5) under the root")
    meta_uri = scope.contain(api.sibling(table, "_meta.json"), shown=f"{path[:-3]}_meta.json")
    try:
        meta = json.loads(storage.read_bytes(meta_uri))
    except (ValueError, UnicodeDecodeError) as exc:
        raise InputError(f"{path[:-3]}_meta.json", f"not valid JSON: {exc}") from None
    if not isinstance(meta, dict):
        raise InputError(f"{path[:-3]}_meta.json", "not a JSON object")
    return table, meta


def _attachment(name: str) -> str:
    """A Content-Disposition that no file name can break out of (RFC 6266 with an ASCII fallback)."""
    fallback = re.sub(r"[^A-Za-z0-9._-]", "_", name) or "download"
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe='')}"


class JobRoutes:
    def __init__(self, root: str):
        self.root = root
        self._pcutoffs: dict[str, float] = {}
        # Per caller scope (a lab's prefixes): the rendered /api/jobs answer; invalidated when a job is submitted.
        self.answers = SharedAnswers(ttl=JOBS_ANSWER_TTL_S, stale_for=JOBS_ANSWER_STALE_S)

    def _pcutoff(self, scope: Scope, request: Request, meta: dict) -> float:
        """?pcutoff=, else the p-cutoff of the model's project (DLC's default for what is drawn), read
        from the resolved config.yaml beside the model when the caller may read it, else 0.6."""
        if "pcutoff" in request.query_params:
            try:
                value = float(request.query_params["pcutoff"])
            except ValueError:
                value = float("nan")
            if not 0 <= value <= 1:
                raise ValueError("pcutoff must be a number between 0 and 1")
            return value
        model = meta.get("model")
        uri = text(model.get("uri")) if isinstance(model, dict) else text(model)
        try:
            config = scope.contain(storage.join(storage.parent(uri), "config.yaml")) if uri else None
        except PathRefused:
            config = None
        if config is None:
            return DEFAULT_PCUTOFF
        if config not in self._pcutoffs:
            try:
                self._pcutoffs[config] = float(PoseclusterConfig.load(config).project.pcutoff)
            except (OSError, ValueError):
                self._pcutoffs[config] = DEFAULT_PCUTOFF
        return self._pcutoffs[config]

    def routes(self) -> list[Route]:
        return [
            Route("/api/jobs", self.jobs),
            Route("/api/jobs/videos", self.videos),
            Route("/api/jobs/frame", self.frame),
            Route("/api/jobs/plot", self.plot),
            Route("/api/file", self.file),
        ]

    async def jobs(self, request: Request):
        scope: Scope = request.state.scope

        def render() -> bytes:
            jobs, older = read_jobs(scope)
            return json.dumps({"jobs": jobs, "older": older}, ensure_ascii=False, allow_nan=False,
                              separators=(",", ":")).encode()

        data, stale = await self.answers.get_marked(json.dumps(scope.caller.prefixes), render)
        if stale:  # an older answer while a fresh listing runs: the page asks again soon (app.js)
            data = b'{"refreshing":true,' + data[1:]
        return Response(data, media_type="application/json")

    def videos(self, request: Request):
        """?out=<path under the root, empty for the root>&job=<id>[&status=][&offset=][&limit=]: one page
        of a job's per-video rows, with the count of its status (from the summary) for paging."""
        scope: Scope = request.state.scope
        params = request.query_params
        out = scope.contain(self.root, shown=".") if not params.get("out") else scope.resolve(params["out"])
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
        try:
            summary = job_summary(scope, out, job, api.job_status(out, job, failures=0))
            records = [] if status == "pending" else api.job_videos(out, job, status, offset, limit)
        except (ValueError, TypeError, AttributeError, KeyError) as exc:  # malformed manifest files
            raise InputError(f"{params.get('out') or '.'}: job {job}", f"its manifest is unreadable: {exc}") from None
        total = summary["counts"][status] if status else summary["videos_finished"]
        return JSONResponse({"job_id": job, "status": status or "", "offset": offset, "limit": limit, "total": total,
                             "videos": [video_row(scope, r) for r in records]})

    def _table(self, scope: Scope, request: Request) -> tuple[str, dict]:
        return confined_table(scope, request.query_params.get("table"))

    def _cached(self, request: Request, key: str, build, media: str) -> Response:
        etag = '"' + hashlib.sha256(key.encode()).hexdigest()[:32] + '"'
        headers = {"ETag": etag, "Cache-Control": "private, max-age=300"}
        if request.headers.get("if-none-match") == etag:
            return Response(status_code=304, headers=headers)
        return Response(build(), media_type=media, headers=headers)

    def frame(self, request: Request):
        scope: Scope = request.state.scope
        table, meta = self._table(scope, request)
        try:
            index = int(request.query_params.get("frame", "0"))
        except ValueError:
            raise InputError(scope.relative(table), "frame must be an integer") from None
        video = scope.contain(text(meta.get("video")), shown=f"the video that {storage.basename(table)}'s _meta.json names")
        pcutoff = self._pcutoff(scope, request, meta)
        return self._cached(request, f"{storage.identity(table).key()}|{index}|{pcutoff}",
                            lambda: api.pose_frame_image(table, video, index, pcutoff), "image/png")

    def plot(self, request: Request):
        scope: Scope = request.state.scope
        table, meta = self._table(scope, request)
        pcutoff = self._pcutoff(scope, request, meta)
        title = storage.stem(text(meta.get("video")) or table)
        return self._cached(request, f"{storage.identity(table).key()}|trajectory|{pcutoff}",
                            lambda: api.trajectory_image(table, pcutoff, title), "image/png")

    def file(self, request: Request):
        uri = request.state.scope.resolve(request.query_params.get("path"))
        handle = storage.open_uri(uri, "rb")

        def chunks():
            with handle:
                while chunk := handle.read(1 << 20):
                    yield chunk

        return StreamingResponse(chunks(), media_type="application/octet-stream",
                                 headers={"Content-Disposition": _attachment(storage.basename(uri))})
