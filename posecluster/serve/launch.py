"""Work started from the browser: frame extraction, training (one model or an ensemble), evaluation, an
archive run, outlier extraction and merge, each a `posecluster` command submitted as a Ray job through
Ray's Job Submission API (api.job_submission).

What a job runs is built here from validated fields only: every location is a path the caller may see
(paths.py), every number is bounded, every choice is one of a list; the command is an argument list
(quoted argument by argument), never a string from the browser. Every command starts with `--confine` and
the caller's prefixes: the job itself refuses any location outside them, including those found inside
files (a `.txt` list, model.pt, ensemble.json), so this module's checks are the first door, not the only
one. A job carries its kind, its location
and who started it as metadata: the caller sees, follows and stops only jobs whose location lies in
their scope (the jobs of their lab)."""

from __future__ import annotations

import re
import secrets
import time
from dataclasses import dataclass

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from posecluster import api, storage
from posecluster.serve.jobs import job_summary
from posecluster.serve.labels import BadBody, parse_json
from posecluster.serve.paths import PathRefused, Scope, checked_parts
from posecluster.serve.security import read_body

COMMAND = "posecluster"
FINISHED = ("SUCCEEDED", "FAILED", "STOPPED")
JOBS_SHOWN = 50
SUBMISSION_ID = re.compile(r"posecluster-[a-z-]+-\d{8}-\d{6}-[0-9a-f]{6}")
# tqdm's "n/total [" (a command's own progress bar in its log): the last one is where the job is.
PROGRESS = re.compile(r"(\d+)/(\d+) \[")
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
BACKBONES = ("resnet18", "resnet34", "resnet50", "resnet101")
OUTLIER_ALGORITHMS = ("jump", "uncertain", "fitting", "ensemble")


class Fields:
    """The JSON fields of one request, each read once through a checked accessor."""

    def __init__(self, scope: Scope, body: dict):
        self.scope, self.body = scope, body

    def path(self, key: str, required: bool = True) -> tuple[str, str] | None:
        """(confined URI, relative path) of a location field."""
        value = self.body.get(key)
        if value in (None, "") and not required:
            return None
        if not isinstance(value, str):
            raise ValueError(f"{key}: a path relative to the served root is required")
        relative = "/".join(checked_parts(value))
        return self.scope.resolve(relative), relative

    def integer(self, key: str, low: int, high: int, default: int | None = None) -> int | None:
        value = self.body.get(key, default)
        if value is None or value == "":
            return default
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise ValueError(f"{key}: an integer between {low} and {high} is required")
        try:
            number = int(str(value), 10)
        except ValueError:
            raise ValueError(f"{key}: an integer between {low} and {high} is required, got {str(value)[:40]!r}") from None
        if not low <= number <= high:
            raise ValueError(f"{key}: {number} is not between {low} and {high}")
        return number

    def number(self, key: str, low: float, high: float) -> float | None:
        value = self.body.get(key)
        if value is None or value == "":
            return None
        try:
            number = float(value) if not isinstance(value, bool) else float("nan")
        except (TypeError, ValueError, OverflowError):
            number = float("nan")
        if not low <= number <= high:
            raise ValueError(f"{key}: a number between {low} and {high} is required")
        return number

    def choice(self, key: str, choices: tuple[str, ...], default: str | None = None) -> str | None:
        value = self.body.get(key, default)
        if value in (None, "") and default is None:
            return None
        if not isinstance(value, str) or value not in choices:
            raise ValueError(f"{key}: one of {', '.join(choices)} is required")
        return value

    def flag(self, key: str) -> bool:
        value = self.body.get(key, False)
        if not isinstance(value, bool):
            raise ValueError(f"{key}: true or false")
        return value


@dataclass(frozen=True)
class Launch:
    kind: str
    argv: list[str]
    location: str  # relative path the job writes to: whose job it is
    out: str  # relative path of the job's outputs (what progress is read from), "" when none


def _extract(f: Fields) -> Launch:
    project, videos = f.path("project"), f.path("videos")
    argv = ["extract-frames", videos[0], "--project", project[0],
            "--method", f.choice("method", ("kmeans", "uniform"), "kmeans"), "--n", str(f.integer("n", 1, 500, 20))]
    return Launch("extract-frames", argv, project[1], project[1])


def _train(f: Fields) -> Launch:
    project, out = f.path("project"), f.path("out")
    argv = ["train", project[0], "--out", out[0]]
    for key, option, low, high in (("epochs", "--epochs", 1, 100000), ("batch_size", "--batch-size", 1, 512)):
        value = f.integer(key, low, high)
        if value is not None:
            argv += [option, str(value)]
    if (backbone := f.choice("backbone", BACKBONES)) is not None:
        argv += ["--backbone", backbone]
    if (weights := f.choice("weights", ("imagenet", "none"))) is not None:
        argv += ["--weights", weights]
    if (ensemble := f.integer("ensemble", 1, 16, 1)) > 1:
        argv += ["--ensemble", str(ensemble)]
    if (scale := f.number("global_scale", 0.05, 2.0)) is not None:
        argv += ["--set", f"model.global_scale={scale!r}"]
    if (crop := f.integer("crop", 16, 4096)) is not None:
        argv += ["--set", f"augment.crop_size=[{crop},{crop}]"]
    if f.flag("evaluate") and ensemble == 1:
        argv.append("--evaluate")
    return Launch("train", argv, out[1], out[1])


def _evaluate(f: Fields) -> Launch:
    run, project = f.path("run"), f.path("project", required=False)
    argv = ["evaluate", run[0]] + (["--project", project[0]] if project else [])
    return Launch("evaluate", argv, run[1], run[1])


def _infer(f: Fields) -> Launch:
    videos, model, out = f.path("videos"), f.path("model"), f.path("out")
    argv = ["infer", videos[0], "--model", model[0], "--out", out[0], "--quiet",
            "--segment-frames", str(f.integer("segment_frames", 10, 10**7, 1000))]
    if (workers := f.integer("workers", 1, 4096)) is not None:
        argv += ["--workers", str(workers)]
    if (gpus := f.number("gpus_per_worker", 0, 16)) is not None:
        argv += ["--gpus-per-worker", repr(gpus)]
    for fmt in ("csv", "parquet"):
        if f.flag(fmt):
            argv += ["--format", fmt]
    return Launch("infer", argv, out[1], out[1])


def _outliers(f: Fields) -> Launch:
    poses, project = f.path("poses"), f.path("project")
    argv = ["outliers", poses[0], "--project", project[0], "--n", str(f.integer("n", 1, 500, 20))]
    algorithms = f.body.get("algorithms") or []
    if not isinstance(algorithms, list) or any(not isinstance(a, str) or a not in OUTLIER_ALGORITHMS for a in algorithms):
        raise ValueError(f"algorithms: a list drawn from {', '.join(OUTLIER_ALGORITHMS)}")
    for algorithm in dict.fromkeys(algorithms):
        argv += ["--algorithm", algorithm]
    return Launch("outliers", argv, project[1], project[1])


def _merge(f: Fields) -> Launch:
    project = f.path("project")
    return Launch("merge", ["merge", project[0]], project[1], project[1])


KINDS = {"extract-frames": _extract, "train": _train, "evaluate": _evaluate, "infer": _infer,
         "outliers": _outliers, "merge": _merge}


def build_launch(scope: Scope, body: dict) -> Launch:
    """The job a request body asks for, or BadBody/ValueError/PathRefused (all a 400) naming the field."""
    if not isinstance(body, dict):
        raise BadBody('expected a JSON object such as {"kind": "train", "project": "...", ...}')
    kind = body.get("kind")
    if not isinstance(kind, str) or kind not in KINDS:  # a list or object here is a 400, not a TypeError
        raise ValueError(f"kind: one of {', '.join(KINDS)} is required")
    launch = KINDS[kind](Fields(scope, body))
    return Launch(launch.kind, [COMMAND, *confinement(scope), *launch.argv], launch.location, launch.out)


def confinement(scope: Scope) -> list[str]:
    """`--confine PREFIX` for each of the caller's prefixes (the whole root for the token): the job checks
    every read, list and write it makes against them (storage/scope.py), wherever its files point."""
    return [argument for prefix in scope.prefixes_to_list() for argument in ("--confine", prefix)]


def log_progress(log: str) -> dict | None:
    """The last tqdm "n/total" in a job's log, as {done, total}."""
    found = PROGRESS.findall(log[-8192:])
    if not found:
        return None
    done, total = (int(v) for v in found[-1])
    return {"done": done, "total": total, "unit": "steps"} if total else None


def readable_log(text: str, lines: int = 300) -> str:
    """A log as a person reads it: progress bars' carriage-return updates collapsed, colours removed."""
    out = []
    for line in ANSI.sub("", text).split("\n"):
        out.append(line.rsplit("\r", 1)[-1] if "\r" in line.rstrip("\r") else line.rstrip("\r"))
    return "\n".join(out[-lines:])


class LaunchRoutes:
    def __init__(self, root: str, jobs=None, on_submit=lambda: None):
        """`jobs`: the cluster's api.job_submission(...) client; None when the app runs without Ray.
        `on_submit`: called after a job was submitted (shared answers about jobs are then out of date)."""
        self.root, self.jobs, self.on_submit = root, jobs, on_submit
        self._settled: dict[str, dict | None] = {}  # a finished job's progress never changes: read once

    def routes(self) -> list[Route]:
        return [
            Route("/api/runs", self.list, methods=["GET"]),
            Route("/api/runs", self.submit, methods=["POST"]),
            Route("/api/runs/logs", self.logs, methods=["GET"]),
            Route("/api/runs/stop", self.stop, methods=["POST"]),
        ]

    def _ray(self, method: str, *args):
        """A call of Ray's Job Submission API; a cluster that is missing or does not answer is a 503."""
        if self.jobs is None:
            raise ClusterUnavailable("no Ray cluster is configured: start the app with --ray-address (or --local-ray)")
        try:
            return getattr(self.jobs, method)(*args)
        except Exception as exc:  # noqa: BLE001 -- connection refused, timeouts, the SDK's RuntimeErrors
            raise ClusterUnavailable(f"the Ray cluster does not answer ({type(exc).__name__}); try again shortly") from exc

    def _owned(self, scope: Scope, job) -> bool:
        meta = job.metadata
        if meta.get("posecluster") != "1":
            return False
        try:
            return scope.allows(storage.join(self.root, *checked_parts(meta.get("location", ""))))
        except PathRefused:
            return False

    def _job(self, scope: Scope, submission_id: str):
        if not SUBMISSION_ID.fullmatch(submission_id or ""):
            raise PathRefused(f"{(submission_id or '')[:80]!r}: not a job id of this app")
        for job in self._ray("jobs"):
            if job.submission_id == submission_id and self._owned(scope, job):
                return job
        raise FileNotFoundError(f"{submission_id}: no such job among yours")

    def _progress(self, scope: Scope, job) -> dict | None:
        """Videos finished (an archive run's manifest), else the job's own progress bar in its log."""
        if job.submission_id in self._settled:
            return self._settled[job.submission_id]
        progress, meta = None, job.metadata
        if meta.get("kind") == "infer" and meta.get("out"):
            try:
                out = scope.resolve(meta["out"])
                status = api.job_status(out, failures=0)
                summary = job_summary(scope, out, str(status.get("job_id", "")), status)
                if (summary["started"] or 0) >= (job.start_time or 0) - 5:
                    progress = {"done": summary["videos_finished"], "total": summary["videos_total"], "unit": "videos"}
            except (ValueError, OSError):
                pass  # no manifest yet
        if progress is None and job.status in ("RUNNING", *FINISHED):
            progress = log_progress(self._ray("logs", job.submission_id))
        if job.status in FINISHED:
            if len(self._settled) > 10_000:
                self._settled.clear()
            self._settled[job.submission_id] = progress
        return progress

    def _row(self, scope: Scope, job) -> dict:
        meta = job.metadata
        return {"id": job.submission_id, "kind": meta.get("kind", ""), "status": job.status,
                "message": scope.redact(job.message)[:2000], "user": meta.get("user", ""),
                "location": meta.get("location", ""), "started": job.start_time, "ended": job.end_time,
                "progress": self._progress(scope, job), "finished": job.status in FINISHED}

    def list(self, request: Request):
        scope: Scope = request.state.scope
        if self.jobs is None:
            return JSONResponse({"enabled": False, "jobs": [],
                                 "reason": "no Ray cluster: start the app with --ray-address or --local-ray"})
        jobs = [job for job in self._ray("jobs") if self._owned(scope, job)]
        jobs.sort(key=lambda job: job.start_time or 0, reverse=True)
        return JSONResponse({"enabled": True, "jobs": [self._row(scope, job) for job in jobs[:JOBS_SHOWN]]})

    async def submit(self, request: Request):
        scope: Scope = request.state.scope
        body = parse_json_object(await read_body(request))
        launch = build_launch(scope, body)
        submission_id = f"posecluster-{launch.kind}-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(3)}"
        metadata = {"posecluster": "1", "kind": launch.kind, "location": launch.location, "out": launch.out,
                    "user": scope.caller.name[:200]}
        await run_in_threadpool(self._ray, "submit", launch.argv, submission_id, metadata)
        self.on_submit()
        return JSONResponse({"id": submission_id, "kind": launch.kind, "location": launch.location}, status_code=201)

    def logs(self, request: Request):
        scope: Scope = request.state.scope
        job = self._job(scope, request.query_params.get("id", ""))
        return JSONResponse({"id": job.submission_id, "status": job.status,
                             "log": scope.redact(readable_log(self._ray("logs", job.submission_id)))})

    def stop(self, request: Request):
        scope: Scope = request.state.scope
        job = self._job(scope, request.query_params.get("id", ""))
        stopped = self._ray("stop", job.submission_id) if job.status not in FINISHED else False
        return JSONResponse({"id": job.submission_id, "stopped": stopped})


class ClusterUnavailable(RuntimeError):
    pass


def parse_json_object(raw: bytes) -> dict:
    """A small JSON object from the browser (the same hardened parser as a save's body)."""
    body = parse_json(raw)
    if not isinstance(body, dict):
        raise BadBody('expected a JSON object such as {"kind": "train", "project": "...", ...}')
    return body
