"""Scheduling an archive job: planning tasks, the worker actors, join tasks, and the manifest, in one loop.

Why this shape:
  - Planning runs as Ray tasks over batches of videos (plan.py): cheap CPU work with a request per
    video, best spread over the cluster; a few batches in flight keep the queue fed without flooding it.
  - The GPU stage is a bounded pool of long-lived actors (actors.py), each holding the pinned model, with
    two work items in flight per actor so a worker never idles between items. Each item is a Ray
    streaming generator, so results arrive segment by segment. We keep our own small queue instead of
    `ray.util.ActorPool` or Ray Data because the queue must (a) pause while storage is down, (b) retry an
    item a bounded number of times, per video, after a worker dies (a video that kills its worker must not
    loop forever, which `max_task_retries` would do), (c) take a worker that refuses the pinned model out
    of the pool for good, and (d) stream per-segment results; ActorPool has none of these, and Ray Data's
    streaming executor would own the queue and hide (a)-(c). Ray's own mechanisms still do the rest:
    actor placement by resources, object transfer, generator backpressure, task scheduling.
  - Joins and `_meta.json` writes are Ray tasks (join.py), so the loop only waits on results.
  - The manifest (manifest.py) gets one record per finished video and is flushed every few seconds.

Dead workers are replaced and their items retried (bounded by max_retries); bad input fails its video
alone; transient storage faults are ridden out inside each fetch/write (storage/retry.py), and an item
whose storage call ran out of patience goes back to the queue, uncounted, while dispatch pauses until
storage answers again.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections import deque
from dataclasses import dataclass
from typing import Callable

import ray
from tqdm.auto import tqdm

from posecluster import metrics, storage
from posecluster.analysis.ensemble_smoothing import check_smoother_installed
from posecluster.cluster.actors import SegmentDone, SegmentWorker, VideoPlanned, WorkerContext
from posecluster.cluster.join import JoinResult, JoinSpec, join_video, warm_up
from posecluster.cluster.manifest import SUMMARY_FAILURES, ManifestWriter, frame_ranges
from posecluster.cluster.plan import (
    DoneIndex,
    PlanContext,
    Planned,
    Request,
    VideoTask,
    plan_batch,
    segment_name,
    state_uri,
    video_key_of,
)
from posecluster.cluster.runtime import cluster_slots
from posecluster.errors import InputError
from posecluster.infer.ensemble import pin
from posecluster.infer.naming import collisions, output_base, relative_names
from posecluster.model.artifact import ModelMismatchError
from posecluster.model.ensemble import PinnedEnsemble
from posecluster.storage.listing import list_folders
from posecluster.storage.retry import call as with_retries
from posecluster.storage.retry import is_transient

log = logging.getLogger(__name__)
PLAN_BATCH = 32  # videos per planning task
PLANS_IN_FLIGHT = 2
ITEMS_PER_WORKER = 2


def _error_text(exc: BaseException) -> str:
    cause = getattr(exc, "cause", None) or exc
    return f"{type(cause).__name__}: {cause}"


@dataclass
class _Item:
    """A work item: a whole small video (bounds None) or some segments of a planned large one."""

    task: VideoTask
    bounds: list[tuple[int, int]] | None
    attempt: int = 1


class ArchiveRun:
    def __init__(self, listed: list[tuple[str, storage.ObjectIdentity | None]], options,
                 on_progress: Callable[["ArchiveRun"], None] | None = None):
        from posecluster.cluster.archive import JobReport, SegmentRecord, VideoRecord  # the user-facing records

        self._SegmentRecord, self._VideoRecord = SegmentRecord, VideoRecord
        self.options = options
        self.on_progress = on_progress
        self.pinned, self.scorer, self.bodyparts = pin(options.model)  # names and hashes, not the weights
        self.members = None
        if isinstance(self.pinned, PinnedEnsemble):
            check_smoother_installed()  # before any work: the joins would fail on every video
            self.members = [{"uri": m.uri, "sha256": m.sha256} for m in self.pinned.members]
        self.request = Request.of(self.pinned, options.infer_overrides, tuple(options.formats))
        self.job_id = time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]
        self.report = JobReport(job_id=self.job_id, out=options.out,
                                model={"uri": self.pinned.uri, "sha256": self.pinned.sha256,
                                       "identity": self.pinned.identity,
                                       **({"members": self.members} if self.members else {})})
        self.manifest = ManifestWriter(options.out, self.job_id)
        self.report.manifest_uri = self.manifest.summary_uri
        self.listed = listed
        self.bar = None
        self.generation: list[int] = []
        self._counts: dict[str, int] = {}
        self._failures: list[dict] = []
        self.actors: list = []
        self._records: dict[str, object] = {}
        self._tasks: dict[str, VideoTask] = {}
        self._work: deque[_Item] = deque()
        self._to_plan: deque[VideoTask] = deque()
        self._joins: deque[JoinSpec] = deque()
        self._inflight: dict = {}  # generator/ref -> ("work", slot, generation, item) | ("plan",) | ("join", uri)
        self._first_table: float | None = None
        self._last_planned: float | None = None
        self._storage_down = False
        self.bytes_read = 0

    # -- records --------------------------------------------------------------------------------
    def _final(self, record, status: str, error: str = "") -> None:
        if record.finished_at:
            return  # a video reaches one outcome (several failing segments report once)
        record.status, record.error = status, error
        record.finished_at = time.time()
        self._counts[status] = self._counts.get(status, 0) + 1
        if status == "failed" and len(self._failures) < SUMMARY_FAILURES:
            self._failures.append({"uri": record.uri, "error": error})
        metrics.current().inc(metrics.VIDEOS, status=status)
        entry = {"uri": record.uri, "status": status, "key": record.video_key, "frames": record.frames,
                 "t": round(record.finished_at - self.report.started, 3)}
        if record.planned_at:
            entry["planned"] = round(record.planned_at - self.report.started, 3)
        if record.first_segment_at:
            entry["first_segment"] = round(record.first_segment_at - self.report.started, 3)
        if status in ("done", "done-with-warnings"):
            entry["outputs"] = record.outputs
            entry["cuts"] = [record.segments[0].start, *[s.stop for s in record.segments]] if record.segments else []
            entry["computed"] = sum(s.status == "done" for s in record.segments)
            entry["attempts"] = max((s.attempts for s in record.segments), default=0)
        if record.missing_frames:
            entry["missing"] = frame_ranges(record.missing_frames)
        if error:
            entry["error"] = error
        self.manifest.add(entry)
        if self.bar is not None:
            self.bar.update(1)

    def summary(self) -> dict:
        """O(1): counts are kept as videos finish (the loop asks for this after every event)."""
        counts = {k: v for k, v in self._counts.items() if v}
        pending = len(self.report.videos) - sum(counts.values())
        if pending:
            counts["pending"] = pending
        seconds = time.time() - self.report.started
        return {
            "job_id": self.job_id, "out": self.options.out, "status": self.report.status,
            "model": self.report.model, "model_key": self.request.model_key,
            "formats": ["h5", *self.request.formats], "started": self.report.started, "seconds": round(seconds, 3),
            "videos_total": len(self.report.videos), "counts": counts,
            "frames_computed": self.report.frames_computed, "fps": round(self.report.frames_computed / seconds, 2) if seconds else 0,
            "segments_computed": self.report.segments_computed, "segments_cached": self.report.segments_cached,
            "workers": self.report.workers,
            "first_table_s": None if self._first_table is None else round(self._first_table - self.report.started, 3),
            "last_planned_s": None if self._last_planned is None else round(self._last_planned - self.report.started, 3),
            "failures": self._failures,
        }

    # -- planning ---------------------------------------------------------------------------------
    def _classify_listed(self) -> None:
        opts = self.options
        index = DoneIndex(opts.out) if opts.overwrite else DoneIndex(opts.out).load()
        # Videos with any cached segment, from one delimited listing (not one request per video).
        with_segments = set() if opts.overwrite else with_retries(list_folders, state_uri(opts.out, "segments"))
        names = relative_names([uri for uri, _ in self.listed])
        clashes = collisions({uri: output_base(uri, opts.out, self.scorer, names[uri]) for uri, _ in self.listed})
        for uri, identity in self.listed:
            record = self._VideoRecord(uri=uri)
            self.report.videos.append(record)
            self._records[uri] = record
            task = VideoTask(uri=uri, base=output_base(uri, opts.out, self.scorer, names[uri]))
            self._tasks[uri] = task
            if uri in clashes:  # never overwrite another video's table: this one fails, by name
                self._final(record, "failed", f"InputError: {uri}: would write the same pose table as "
                            f"{clashes[uri]} (same folder and file stem)")
                continue
            if identity is None:  # named one by one: a planning task looks it up
                self._to_plan.append(task)
                continue
            task.identity, task.size, task.video_key = vars(identity), identity.size, video_key_of(identity)
            task.maybe_cached = task.video_key in with_segments
            record.video_key = task.video_key
            self._route(Planned(task, *index.classify(task.video_key, self.request)) if not opts.overwrite
                        else Planned(task, "work"))

    def _route(self, planned: Planned) -> None:
        task = planned.task
        self._tasks[task.uri] = task  # a planning task's copy carries what it found (identity, probe)
        record = self._records[task.uri]
        record.video_key = task.video_key
        if planned.outcome == "skip":
            self._final(record, "skipped")
        elif planned.outcome == "failed":
            self._final(record, "failed", planned.error)
            log.warning("%s: %s", task.uri, planned.error)
        elif planned.outcome == "rejoin":
            self._joins.append(self._join_spec(task, rejoin_from=planned.marker))
        elif task.bounds is None and task.info is None:
            if task.size >= self.options.small_video_bytes:
                self._to_plan.append(task)  # large: probed by a planning task first
            else:
                self._work.append(_Item(task, None))
        else:
            self._video_planned(record, task.info.frame_count, task.bounds, task.cached, task.planned_at)
            todo = [b for b in task.bounds if segment_name(*b) not in task.cached]
            for bounds in todo:
                self._work.append(_Item(task, [bounds]))
            if not todo:
                self._maybe_join(task.uri)

    def _video_planned(self, record, frames, bounds, cached, planned_at) -> None:
        record.frames = frames
        record.planned_at = planned_at
        record.segments = [self._SegmentRecord(a, b, status="cached" if segment_name(a, b) in cached else "pending")
                           for a, b in bounds]
        self.report.segments_cached += len(cached)
        self._last_planned = max(self._last_planned or 0.0, planned_at)

    def _plan_context(self) -> PlanContext:
        opts = self.options
        return PlanContext(opts.out, self.request, opts.segment_frames, opts.small_video_bytes, opts.overwrite)

    # -- workers ----------------------------------------------------------------------------------
    def _new_actor(self):
        opts = self.options
        return SegmentWorker.options(num_cpus=opts.cpus_per_worker, num_gpus=opts.gpus_per_worker).remote(
            self.pinned, opts.infer_overrides, int(max(1, opts.cpus_per_worker)))

    def _worker_context(self) -> WorkerContext:
        opts = self.options
        return WorkerContext(opts.out, self.request.model_key, opts.segment_frames, opts.overwrite)

    def _dispatch(self) -> None:
        if self._storage_down:
            # Pause: nothing new starts until storage answers (tenacity backs off with jitter).
            with_retries(storage.exists, self.options.out, patience_s=24 * 3600)
            self._storage_down = False
            log.warning("storage is back; dispatch resumes")
        ctx = self._plan_context()
        while self._to_plan and sum(v[0] == "plan" for v in self._inflight.values()) < PLANS_IN_FLIGHT:
            batch = [self._to_plan.popleft() for _ in range(min(PLAN_BATCH, len(self._to_plan)))]
            self._inflight[plan_batch.remote(batch, ctx)] = ("plan",)
        load = [0] * len(self.actors)
        for kind, *rest in self._inflight.values():
            if kind == "work":
                load[rest[0]] += 1
        wctx = self._worker_context()
        for slot in range(len(self.actors)):
            while self.actors[slot] is not None and load[slot] < ITEMS_PER_WORKER and self._work:
                item = self._work.popleft()
                if self._records[item.task.uri].status == "failed":
                    continue
                generator = self.actors[slot].run.remote(item.task, item.bounds, wctx)
                self._inflight[generator] = ("work", slot, self.generation[slot], item)
                load[slot] += 1
        while self._joins and sum(v[0] == "join" for v in self._inflight.values()) < max(2, len(self.actors)):
            spec = self._joins.popleft()
            self._inflight[join_video.remote(spec)] = ("join", spec.video)

    def _join_spec(self, task: VideoTask, rejoin_from: str = "") -> JoinSpec:
        record = self._records[task.uri]
        return JoinSpec(out=self.options.out, video=task.uri, video_key=task.video_key, base=task.base,
                        request=self.request, scorer=self.scorer, bodyparts=self.bodyparts,
                        model={"uri": self.pinned.uri, "sha256": self.pinned.sha256}, job_id=self.job_id,
                        frames=record.frames, bounds=[(s.start, s.stop) for s in record.segments],
                        identity=task.identity, rejoin_from=rejoin_from, ensemble=self.members)

    def _maybe_join(self, uri: str) -> None:
        record = self._records[uri]
        if record.status == "pending" and record.segments and all(s.status in ("done", "cached") for s in record.segments):
            record.status = "joining"
            self._joins.append(self._join_spec(self._tasks[uri]))

    # -- the loop ---------------------------------------------------------------------------------
    def run(self):
        opts = self.options
        self.report.started = time.time()
        try:
            self._classify_listed()
            self.bar = tqdm(total=len(self.report.videos), unit="video", desc="infer", disable=not opts.progress)
            self.bar.update(sum(r.status != "pending" for r in self.report.videos))
            workers = opts.workers or cluster_slots(opts.cpus_per_worker, opts.gpus_per_worker)
            pending_videos = sum(r.status == "pending" for r in self.report.videos)
            workers = max(1, min(workers, pending_videos)) if (self._work or self._to_plan) else 0
            self.actors = [self._new_actor() for _ in range(workers)]
            if workers:  # task processes start (imports) while the actors load the model
                self._warming = [warm_up.remote() for _ in range(min(2, workers))]
            self.generation = [0] * workers
            self.report.workers = workers
            self.manifest.flush(self.summary(), force=True)  # `posecluster status` works from the start
            while True:
                self._dispatch()
                if not self._inflight:
                    if self._work and not any(a is not None for a in self.actors):
                        raise ModelMismatchError(f"{self.pinned.uri}: every worker refused the pinned model")
                    if not (self._work or self._to_plan or self._joins):
                        break
                    continue
                ready, _ = ray.wait(list(self._inflight), num_returns=1, timeout=self.manifest.interval_s)
                for ref in ready:
                    self._handle(ref)
                if self.manifest.due():
                    self.manifest.flush(self.summary())
            self.report.status = "finished"
            if not self.report.failed:
                metrics.current().set(metrics.LAST_SUCCESS, time.time())
        except BaseException:
            self.report.status = "interrupted"
            raise
        finally:
            for actor in self.actors:
                if actor is not None:
                    ray.kill(actor)
            if self.bar is not None:
                self.bar.close()
            self.report.seconds = time.time() - self.report.started
            self.report.first_table_s = self.summary()["first_table_s"]
            self.manifest.flush(self.summary(), force=True)
            self.report.manifest_bytes = self.manifest.bytes_written
            self.report.bytes_read = self.bytes_read
        return self.report

    def _handle(self, ref) -> None:
        kind, *rest = self._inflight[ref]
        if kind == "plan":
            del self._inflight[ref]
            for planned in ray.get(ref):
                self._route(planned)
        elif kind == "join":
            del self._inflight[ref]
            self._joined(rest[0], ref)
        else:
            self._work_event(ref, *rest)

    def _joined(self, uri: str, ref) -> None:
        record = self._records[uri]
        try:
            result: JoinResult = ray.get(ref)
        except Exception as exc:
            self._final(record, "failed", f"joining segments: {_error_text(exc)}")
            return
        record.outputs, record.missing_frames = result.outputs, result.missing
        if not record.segments:  # a rejoin: the bounds come from the earlier job's marker
            record.frames = result.frames
            record.segments = [self._SegmentRecord(a, b, status="cached") for a, b in result.bounds]
            self.report.segments_cached += len(result.bounds)
        self._first_table = self._first_table or result.finished_at
        self._final(record, "done-with-warnings" if result.missing or result.warnings else "done")

    def _work_event(self, generator, slot: int, generation: int, item: _Item) -> None:
        record = self._records[item.task.uri]
        try:
            event = ray.get(next(generator))
        except StopIteration:
            del self._inflight[generator]
            self._maybe_join(item.task.uri)
            return
        except ray.exceptions.RayActorError as exc:
            del self._inflight[generator]
            self._worker_died(slot, generation, exc)
            self._retry(item, record, exc)
            return
        except Exception as exc:
            del self._inflight[generator]
            cause = getattr(exc, "cause", None) or exc
            if isinstance(cause, InputError):
                self._final(record, "failed", _error_text(exc))  # bad input does not get better by retrying
                log.warning("%s: %s", item.task.uri, record.error)
            elif is_transient(cause):
                log.warning("%s: storage unavailable (%s); pausing dispatch", item.task.uri, type(cause).__name__)
                self._storage_down = True
                self._work.appendleft(item)  # not the item's fault: no attempt counted
            else:
                self._retry(item, record, exc)
            return
        if isinstance(event, VideoPlanned):
            if not record.segments:
                self._video_planned(record, event.frames, event.bounds, event.cached, event.planned_at)
            self.bytes_read += event.bytes_read
            return
        self._segment_done(record, item, event)

    def _segment_done(self, record, item: _Item, event: SegmentDone) -> None:
        segment = next(s for s in record.segments if s.start == event.start and s.stop == event.stop)
        exporter = metrics.current()
        if event.cached:
            if segment.status == "pending":
                segment.status = "cached"
                self.report.segments_cached += 1
        else:
            metrics.replay(event.metrics, exporter)
            exporter.inc(metrics.SEGMENTS, status="done")
            exporter.set(metrics.FPS, event.frames / event.seconds if event.seconds else 0.0)
            segment.status, segment.seconds, segment.attempts = "done", event.seconds, item.attempt
            record.first_segment_at = record.first_segment_at or time.time()
            segment.fps = event.frames / event.seconds if event.seconds else 0.0
            segment.missing_frames = len(event.missing)
            record.compute_seconds += event.seconds
            self.report.segments_computed += 1
            self.report.frames_computed += event.frames
            self.report.busy_seconds += event.seconds + event.write_s
            began = time.time() - event.seconds - event.write_s - self.report.started
            self.report.first_segment_started = min(self.report.first_segment_started or began, began)
            self.bytes_read += event.bytes_read
        if self.on_progress is not None:
            self.on_progress(self)

    def _worker_died(self, slot: int, generation: int, exc: BaseException) -> None:
        if generation != self.generation[slot] or self.actors[slot] is None:
            return  # already handled: one replacement per death
        self.generation[slot] += 1
        if "ModelMismatchError" in str(exc):
            log.error("worker %d refused to start: %s", slot, str(exc).splitlines()[-1])
            self.actors[slot] = None  # never replaced: the pinned file changed, the others keep it
            self.report.refused_workers += 1
            return
        log.warning("worker %d died (%s); replacing it", slot, type(exc).__name__)
        self.actors[slot] = self._new_actor()

    def _retry(self, item: _Item, record, exc: BaseException) -> None:
        error = _error_text(exc)
        if "ModelMismatchError" in error:  # the worker never started: not the item's fault
            self._work.appendleft(item)
            return
        retry = item.attempt <= self.options.max_retries
        metrics.current().inc(metrics.SEGMENTS, status="retried" if retry else "failed")
        if retry:
            log.warning("%s failed (%s); retrying", item.task.uri, error)
            self._work.appendleft(_Item(item.task, item.bounds, item.attempt + 1))
            return
        self._final(record, "failed", error)
        log.error("%s failed: %s", item.task.uri, error)
