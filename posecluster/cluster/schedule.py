"""Scheduling an archive job: planning tasks, the worker pool, join tasks and the manifest, in one loop.

Why this shape:
  - Planning runs as Ray tasks (plan.py): one per large video, so each plan reaches the queue as soon as it
    exists, as many at once as the cluster has CPUs; videos named one by one are looked up in batches.
  - The GPU stage is a pool of long-lived actors (pool.py, actors.py), each holding the pinned model, with
    two work items in flight per actor so a worker never idles between items. Each item is a Ray
    streaming generator, so results arrive segment by segment.
  - Joins and `_meta.json` writes are Ray tasks (join.py), so the loop only waits on results.
  - The manifest (manifest.py) gets one record per finished video and is flushed every few seconds.

Faults, and what they cost:
  - Storage away (connection refused, timeouts, 5xx): each storage call rides it out for the job's
    storage patience, then its item (a plan, a segment, a join, a manifest flush) goes back to the queue
    uncounted and the whole job pauses, checking storage with backoff, for up to the outage limit
    (default an hour); then it stops cleanly and a rerun resumes. Transient vs permanent travels as data
    (StorageError.transient), so it survives Ray's pickling.
  - A dead worker (process crash, lost node) is replaced; the item it was running is retried (counted
    against that item unless the node was lost: bounded by max_retries, so a video that kills its worker
    cannot loop), the items queued behind it go back without penalty.
  - Bad input (not a video, frames that cannot be processed) and a video that changed during the job fail
    that video alone, at once. A fault in the loop's handling of one video fails that video, never the job.
"""

from __future__ import annotations

import logging
import time
import traceback
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import Callable

import ray
from tqdm.auto import tqdm

from posecluster import metrics, storage
from posecluster.analysis.ensemble_smoothing import check_smoother_installed
from posecluster.cluster.actors import SegmentDone, SegmentWorker, Started, VideoPlanned, WorkerContext
from posecluster.cluster.join import JoinResult, JoinSpec, SegmentCacheMissing, join_video, warm_up
from posecluster.cluster.manifest import SUMMARY_FAILURES, ManifestWriter
from posecluster.cluster.pause import CapacityWait, JobStopped, StoragePause
from posecluster.cluster.plan import (
    Decision,
    DoneIndex,
    Identified,
    PlanContext,
    Planned,
    Request,
    VideoTask,
    error_text,
    identify,
    uri_key,
    output_folders,
    plan_large,
    piece_name,
    state_uri,
    video_key_of,
)
from posecluster.cluster.pool import WorkerPool, died_with_node
from posecluster.cluster.records import JobReport, SegmentRecord, VideoRecord
from posecluster.cluster.runtime import cluster_slots
from posecluster.data.video import SpansUnsound
from posecluster.errors import InputError
from posecluster.infer.ensemble import pin
from posecluster.infer.naming import collisions, long_name_problem, output_base, tracked_base
from posecluster.model.ensemble import PinnedEnsemble
from posecluster.model.multianimal_artifact import PinnedAnimals
from posecluster.storage import ObjectChangedError
from posecluster.storage.listing import list_folders, list_identities
from posecluster.storage.retry import call as with_retries
from posecluster.storage.retry import is_transient

log = logging.getLogger(__name__)
IDENTIFY_BATCH = 32  # videos named one by one, looked up per task
ITEMS_PER_WORKER = 2
FREE_REQUEUES = 8  # an item sent back this often without being charged is charged from then on


@dataclass
class _Item:
    """A work item: a small video whole ("small"), a piece of a planned one (frames or spans), or a
    whole video in one pass ("sequential")."""

    task: VideoTask
    kind: str
    pieces: list[tuple[int, int]] | None
    attempt: int = 1
    requeued: int = 0  # times sent back without being charged
    started: bool = False  # its worker began it (a death from then on is charged to it)


@dataclass
class _Layout:
    """How a video is being read (its plan's kind) and whether its list of pieces is final (a one-pass
    video's is known only at the end of its pass)."""

    kind: str = "small"
    complete: bool = False
    facts: dict = field(default_factory=dict)  # a one-pass video's facts, from its worker


class ArchiveRun:
    def __init__(self, inputs: list[str], listed: list[tuple[str, storage.ObjectIdentity | None]], options,
                 on_progress: Callable[["ArchiveRun"], None] | None = None):
        self.inputs = inputs
        self.options = options
        self.patience = options.patience
        self.on_progress = on_progress
        self.pinned, self.scorer, self.bodyparts = pin(options.model)  # names and hashes, not the weights
        self.members = None
        if isinstance(self.pinned, PinnedEnsemble):
            check_smoother_installed()  # before any work: the joins would fail on every video
            self.members = [{"uri": storage.redact_uri(m.uri), "sha256": m.sha256} for m in self.pinned.members]
        # The kind of device the job's workers compute on is part of what makes their results ("auto"
        # resolves to it: a GPU job and a CPU job of one model never pass for each other).
        device = options.infer_overrides.get("device", "auto")
        if device == "auto":
            device = "cuda" if options.gpus_per_worker > 0 else "cpu"
        # A multi-animal model: its tables are tracked (`_el`), its joins stitch individuals, and its
        # results depend on the tracking settings too.
        self.animals = None
        if isinstance(self.pinned, PinnedAnimals):
            if "parquet" in options.formats:
                raise ValueError("multi-animal pose tables are .h5 or .csv (DeepLabCut's); parquet is not offered")
            self.animals = {"individuals": list(self.pinned.individuals),
                            "unique_bodyparts": list(self.pinned.unique_bodyparts),
                            # As the workers' predictors: the model's settings, then the job's overrides.
                            "tracking": self.pinned.tracking.with_overrides(
                                options.infer_overrides.get("tracking", {}), "the job's infer.tracking"
                            ).model_dump(mode="json")}
        self.request = Request.of(self.pinned, {**options.infer_overrides, "device": device}, tuple(options.formats),
                                  {"tracking": self.animals["tracking"]} if self.animals else None)
        self.job_id = time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]
        self.report = JobReport(job_id=self.job_id, out=options.out,
                                model={"uri": storage.redact_uri(self.pinned.uri), "sha256": self.pinned.sha256,
                                       "identity": self.pinned.identity,
                                       **({"members": self.members} if self.members else {})})
        self.manifest = ManifestWriter(options.out, self.job_id)
        self.report.manifest_uri = self.manifest.summary_uri
        self.listed = listed
        self.index = DoneIndex(options.out, len(self.members or ()))
        self.bar = None
        self.pool: WorkerPool | None = None
        self._counts: dict[str, int] = {}
        self._recomputed: dict[str, int] = {}  # reason -> videos (a handful of fixed reasons)
        self._failures: list[dict] = []
        self._records: dict[str, VideoRecord] = {}
        self._layouts: dict[str, _Layout] = {}
        self._rerouted: dict[str, int] = {}  # videos computed again because their cached segments were gone
        self._tasks: dict[str, VideoTask] = {}
        self._work: deque[_Item] = deque()
        self._to_identify: deque[VideoTask] = deque()
        self._to_plan: deque[VideoTask] = deque()
        self._joins: deque[JoinSpec] = deque()
        self._inflight: dict = {}  # ref -> (kind, ...): identify, plan, work, join, ready
        self._first_table: float | None = None
        self._last_planned: float | None = None
        # A listing raises when storage is away (s3fs's exists() answers False instead, at a bucket's root).
        self.pause = StoragePause(lambda: list_identities(self.manifest.folder), options.patience.outage_s)
        self.capacity = CapacityWait(options.patience.capacity_s)
        self.bytes_read = 0

    # -- records --------------------------------------------------------------------------------
    def _final(self, record: VideoRecord, status: str, error: str = "") -> None:
        if record.finished_at:
            return  # a video reaches one outcome (several failing segments report once)
        record.status, record.error = status, storage.redact_uri(error)
        record.finished_at = time.time()
        self._counts[status] = self._counts.get(status, 0) + 1
        if status == "failed" and len(self._failures) < SUMMARY_FAILURES:
            self._failures.append({"uri": storage.redact_uri(record.uri), "error": record.error})
        metrics.current().inc(metrics.VIDEOS, status=status)
        if record.recomputed and status != "skipped":
            self._recomputed[record.recomputed] = self._recomputed.get(record.recomputed, 0) + 1
        entry = record.manifest_entry(self.report.started)
        self.manifest.add(entry)
        # The driver holds O(videos in flight): a finished video keeps its counts, not its segments.
        record.segments_total = len(record.segments)
        record.segments_computed = sum(s.status == "done" for s in record.segments)
        record.segments = [] if len(record.segments) > 64 else record.segments
        self._tasks.pop(record.uri, None)
        self._layouts.pop(record.uri, None)
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
            "job_id": self.job_id, "out": storage.redact_uri(self.options.out), "status": self.report.status,
            "stop_reason": self.report.stop_reason,
            "model": self.report.model, "model_key": self.request.model_key, "settings_key": self.request.settings_key,
            "formats": ["h5", *self.request.formats], "started": self.report.started, "seconds": round(seconds, 3),
            "videos_total": len(self.report.videos), "counts": counts, "recomputed": dict(self._recomputed),
            "frames_computed": self.report.frames_computed, "fps": round(self.report.frames_computed / seconds, 2) if seconds else 0,
            "segments_computed": self.report.segments_computed, "segments_cached": self.report.segments_cached,
            "workers": self.report.workers, "workers_lost": self.pool.lost if self.pool else 0,
            "storage_paused_s": round(self.pause.seconds(), 1),
            "first_table_s": None if self._first_table is None else round(self._first_table - self.report.started, 3),
            "last_planned_s": None if self._last_planned is None else round(self._last_planned - self.report.started, 3),
            "failures": self._failures,
        }

    # -- planning ---------------------------------------------------------------------------------
    def _classify_listed(self) -> None:
        opts = self.options
        if not opts.overwrite:
            self.index.load(self.patience.outage_s, {uri_key(uri) for uri, _ in self.listed})
            for folder in output_folders(self.inputs, opts.out):
                self.index.add_outputs(with_retries(list_identities, folder, patience_s=self.patience.outage_s))
        # Videos with any cached segment, from one delimited listing (not one request per video).
        with_segments = set() if opts.overwrite else with_retries(
            list_folders, state_uri(opts.out, "segments"), patience_s=self.patience.outage_s)
        bases = {uri: output_base(uri, opts.out, self.scorer) for uri, _ in self.listed}
        too_long = {uri: long_name_problem(uri, base) for uri, base in bases.items()}  # before any tracked suffix
        if self.animals:
            bases = {uri: tracked_base(base) for uri, base in bases.items()}
        clashes = collisions(bases)
        for uri, identity in self.listed:
            record = VideoRecord(uri=uri)
            self.report.videos.append(record)
            self._records[uri] = record
            task = VideoTask(uri=uri, base=bases[uri], identity=identity)
            self._tasks[uri] = task
            if uri in clashes:  # never overwrite another video's table: this one fails, by name
                self._final(record, "failed", f"InputError: {storage.redact_uri(uri)}: would write the same pose table as "
                            f"{storage.redact_uri(clashes[uri])} (same folder and file stem)")
                continue
            if too_long[uri]:  # its table would fit, but not what filter/label-video derive from it
                self._final(record, "failed", f"InputError: {storage.redact_uri(uri)}: {too_long[uri]}")
                continue
            if identity is None:  # named one by one: a planning task looks it up
                self._to_identify.append(task)
                continue
            task.video_key = record.video_key = video_key_of(identity)
            task.maybe_cached = task.video_key in with_segments
            self._route(task)

    def _decide(self, task: VideoTask) -> Decision:
        if self.options.overwrite:
            return Decision("work", reason="--overwrite")
        return self.index.classify(task, self.request)

    def _route(self, task: VideoTask, decision: Decision | None = None) -> None:
        decision = decision or self._decide(task)
        record = self._records[task.uri]
        record.video_key = task.video_key
        task.recomputed = record.recomputed = decision.reason
        if decision.outcome == "skip":
            self._final(record, "skipped")
        elif decision.outcome == "rejoin":
            self._joins.append(self._join_spec(task, rejoin_from=decision.marker))
        elif task.size >= self.options.small_video_bytes:
            self._to_plan.append(task)  # large: probed by a planning task first
        else:
            self._layouts[task.uri] = _Layout("small")
            self._work.append(_Item(task, "small", None))

    def _identified(self, found: list[Identified]) -> None:
        for item in found:
            record = self._records[item.task.uri]
            if item.error:
                if item.transient:
                    self._to_identify.append(item.task)
                    self.pause.down(item.error)
                else:
                    self._final(record, "failed", item.error)
                continue
            self._tasks[item.task.uri] = item.task
            self.index.add_outputs(item.outputs)
            self.index.add_markers(uri_key(item.task.uri), item.markers)
            self._route(item.task)

    def _planned(self, planned: Planned, info_ref) -> None:
        task = planned.task
        record = self._records[task.uri]
        self.bytes_read += planned.bytes_read
        self.report.planning_bytes += planned.bytes_read
        if planned.error:
            if planned.transient:
                self._to_plan.append(task)
                self.pause.down(planned.error)
            else:
                self._final(record, "failed", planned.error)
                log.warning("%s: %s", storage.redact_uri(task.uri), planned.error)
            return
        task.info_ref = [info_ref]
        self._tasks[task.uri] = task
        self._layouts[task.uri] = _Layout(planned.kind, complete=planned.kind != "sequential")
        if planned.kind == "sequential":  # pieces known only as the pass goes
            record.planned_at = planned.planned_at
            self._work.append(_Item(task, "sequential", None))
            return
        self._video_planned(record, planned.frames, planned.pieces, planned.cached, planned.planned_at, planned.kind)
        todo = [b for b in planned.pieces if piece_name(planned.kind, *b) not in planned.cached]
        for piece in todo:
            self._work.append(_Item(task, planned.kind, [piece]))
        if not todo:
            self._maybe_join(task.uri)

    def _video_planned(self, record: VideoRecord, frames, bounds, cached, planned_at, kind: str = "frames") -> None:
        if not bounds:
            raise InputError(record.uri, "no frame could be decoded")
        record.frames = frames
        record.planned_at = planned_at
        record.segments = [SegmentRecord(a, b, status="cached" if piece_name(kind, a, b) in cached else "pending")
                           for a, b in bounds]
        self.report.segments_cached += len(cached)
        self._last_planned = max(self._last_planned or 0.0, planned_at)

    def _plan_context(self) -> PlanContext:
        opts = self.options
        return PlanContext(opts.out, self.request, opts.segment_frames, opts.overwrite, self.patience.storage_call_s)

    # -- workers ----------------------------------------------------------------------------------
    def _new_actor(self):
        opts = self.options
        return SegmentWorker.options(num_cpus=opts.cpus_per_worker, num_gpus=opts.gpus_per_worker).remote(
            self.pinned, opts.infer_overrides, int(max(1, opts.cpus_per_worker)))

    def _worker_context(self) -> WorkerContext:
        opts = self.options
        return WorkerContext(opts.out, self.request.cache_key, opts.segment_frames, opts.overwrite,
                             self.patience.storage_call_s)

    def _watch_ready(self, watch: tuple | None) -> None:
        if watch is not None:
            ref, slot, generation = watch
            self._inflight[ref] = ("ready", slot, generation)

    def _count(self, kind: str) -> int:
        return sum(v[0] == kind for v in self._inflight.values())

    def _grow_pool(self) -> None:
        """As many workers as there are items to run (queued or running, plans to come counting one each),
        up to the job's number: one long video's pieces get the whole cluster."""
        wanted = len(self._work) + self._count("work") + len(self._to_plan) + self._count("plan") + len(self._to_identify)
        target = min(self._max_workers, wanted)
        if target > len(self.pool.slots):
            for watch in self.pool.grow(target):
                self._watch_ready(watch)
            self.report.workers = len(self.pool.slots)

    def _dispatch(self) -> None:
        if self.pause.paused:
            return  # nothing new starts until storage answers
        self._grow_pool()
        while self._to_identify and self._count("identify") < 2:
            batch = [self._to_identify.popleft() for _ in range(min(IDENTIFY_BATCH, len(self._to_identify)))]
            self._inflight[identify.remote(batch, self.options.out, self.patience.storage_call_s)] = ("identify", batch)
        ctx = self._plan_context()
        while self._to_plan and self._count("plan") < self._planners:
            task = self._to_plan.popleft()
            plan_ref, info_ref = plan_large.remote(task, ctx)
            self._inflight[plan_ref] = ("plan", info_ref, task)
        wctx = self._worker_context()
        for slot in self.pool.free(ITEMS_PER_WORKER) if self.pool else ():
            while self._work and self.pool.load(slot) < ITEMS_PER_WORKER:
                item = self._next_item(busy=self.pool.load(slot) > 0)
                if item is None:
                    break
                generator, generation = self.pool.dispatch(
                    slot, lambda actor, item=item: actor.run.remote(item.task, item.kind, item.pieces, wctx), item,
                    weight=ITEMS_PER_WORKER if item.kind == "sequential" else 1)
                self._inflight[generator] = ("work", slot, generation, item)
        while self._joins and self._count("join") < max(2, len(self.pool.slots) if self.pool else 2):
            spec = self._joins.popleft()
            self._inflight[join_video.remote(spec)] = ("join", spec)

    def _next_item(self, busy: bool) -> _Item | None:
        """The next item for a worker; a one-pass item (hours for a long video) only to an idle worker, so
        nothing waits behind it while other workers are free: a busy worker takes the next other item."""
        while self._work and self._records[self._work[0].task.uri].finished_at:
            self._work.popleft()  # a video decided meanwhile (failed elsewhere)
        for position, item in enumerate(self._work):
            if position >= 64:
                break
            if not (busy and item.kind == "sequential") and not self._records[item.task.uri].finished_at:
                del self._work[position]
                return item
        return None

    def _join_spec(self, task: VideoTask, rejoin_from: str = "") -> JoinSpec:
        record = self._records[task.uri]
        layout = self._layouts.get(task.uri, _Layout())
        identity = vars(task.identity) if task.identity else None
        return JoinSpec(out=self.options.out, video=task.uri, video_key=task.video_key, base=task.base,
                        request=self.request, scorer=self.scorer, bodyparts=self.bodyparts,
                        model={"uri": storage.redact_uri(self.pinned.uri), "sha256": self.pinned.sha256},
                        job_id=self.job_id, frames=None if layout.kind == "spans" else record.frames,
                        segments=[piece_name(layout.kind, s.start, s.stop) for s in record.segments],
                        identity=identity, rejoin_from=rejoin_from, ensemble=self.members, animals=self.animals,
                        facts=layout.facts,
                        recomputed=task.recomputed, patience_s=self.patience.storage_call_s)

    def _maybe_join(self, uri: str) -> None:
        record = self._records[uri]
        if not self._layouts.get(uri, _Layout(complete=True)).complete:
            return
        if record.status == "pending" and record.segments and all(s.status in ("done", "cached") for s in record.segments):
            record.status = "joining"
            self._joins.append(self._join_spec(self._tasks[uri]))

    # -- the loop ---------------------------------------------------------------------------------
    def run(self) -> JobReport:
        opts = self.options
        self.report.started = time.time()
        try:
            self._classify_listed()
            self.bar = tqdm(total=len(self.report.videos), unit="video", desc="infer", disable=not opts.progress)
            self.bar.update(sum(r.status != "pending" for r in self.report.videos))
            self._max_workers = max(1, opts.workers or cluster_slots(opts.cpus_per_worker, opts.gpus_per_worker))
            self._planners = max(2, int(ray.cluster_resources().get("CPU", 2)))
            # Workers start when there is something to compute (a job that only skips or rejoins needs none).
            self.pool = WorkerPool(self._new_actor)
            self._warming = [warm_up.remote() for _ in range(2)]  # task processes import while actors load
            self._flush(force=True)  # `posecluster status` works from the start
            while True:
                self.pause.check()
                waiting = bool(self._work) and self.pool.ready == 0 and not self.pause.paused
                self.capacity.check(waiting, len(self.pool.slots), self.pool.alive, storage.redact_uri(self.pinned.uri))
                self._dispatch()
                busy = any(v[0] != "ready" for v in self._inflight.values())
                if not busy and not (self._work or self._to_plan or self._to_identify or self._joins):
                    break
                ready, _ = ray.wait(list(self._inflight), num_returns=1, timeout=1.0) if self._inflight else ([], [])
                if not self._inflight:
                    time.sleep(0.2)
                for ref in ready:
                    self._handle(ref)
                if self.manifest.due() and not self.pause.paused:
                    self._flush()
            for record in self.report.videos:  # never "finished" with a video left without an outcome
                if not record.finished_at:
                    log.error("%s: no outcome when the job ended (status %s)", storage.redact_uri(record.uri), record.status)
                    self._final(record, "failed", "the job ended without an outcome for this video (a bug: please report it)")
            self.report.status = "finished"
            if not self.report.failed:
                metrics.current().set(metrics.LAST_SUCCESS, time.time())
        except JobStopped as exc:
            self.report.status, self.report.stop_reason = "interrupted", str(exc)
            log.error("%s", exc)
        except BaseException:
            self.report.status = "interrupted"
            raise
        finally:
            if self.pool is not None:
                self.pool.shutdown()
                self.report.workers_lost, self.report.refused_workers = self.pool.lost, self.pool.refused
            if self.bar is not None:
                self.bar.close()
            self.report.seconds = time.time() - self.report.started
            self.report.storage_paused_s = self.pause.seconds()
            self.report.first_table_s = self.summary()["first_table_s"]
            # A finished job waits for storage to take its last records; a stopped one tries once.
            self._final_flush(wait=self.report.status == "finished")
            self.report.manifest_bytes = self.manifest.bytes_written
            self.report.bytes_read = self.bytes_read
        return self.report

    def _flush(self, force: bool = False) -> None:
        if not self.manifest.flush(self.summary(), force=force, patience_s=self.patience.storage_call_s if force else 0):
            self.pause.down("the manifest could not be written")

    def _final_flush(self, wait: bool) -> None:
        """The job's last records are written even when storage is away at the end: wait for it (up to the
        outage limit) rather than drop them."""
        deadline = time.time() + (self.patience.outage_s if wait else 0)
        while not self.manifest.flush(self.summary(), force=True, patience_s=self.patience.storage_call_s):
            if time.time() >= deadline:
                log.error("storage still unavailable: %d records of job %s were not written (its outputs and done "
                          "records are; a rerun finds them)", self.manifest.pending, self.job_id)
                return
            time.sleep(min(30.0, max(1.0, self.patience.storage_call_s)))

    def _handle(self, ref) -> None:
        kind, *rest = self._inflight[ref]
        tasks: list[VideoTask] = []
        try:
            if kind == "ready":
                del self._inflight[ref]
                self._became_ready(ref, *rest)
            elif kind == "identify":
                del self._inflight[ref]
                tasks = rest[0]
                self._identified(ray.get(ref))
            elif kind == "plan":
                del self._inflight[ref]
                tasks = [rest[1]]
                self._planned(ray.get(ref), rest[0])
            elif kind == "join":
                del self._inflight[ref]
                tasks = [self._tasks.get(rest[0].video) or VideoTask(rest[0].video)]
                self._joined(rest[0], ref)
            else:
                tasks = [rest[2].task]
                self._work_event(ref, *rest)
        except Exception as exc:
            # A fault in handling one video's event (or a planning task that crashed) fails that video;
            # the job goes on.
            if not tasks:
                raise
            if self._inflight.pop(ref, None) is not None and kind == "work":
                self.pool.finished(rest[0], rest[2])  # the worker's slot is free again
                try:
                    ray.cancel(ref)
                except Exception:  # already finished
                    pass
            log.error("%s", traceback.format_exc())
            for task in tasks:
                self._final(self._records[task.uri], "failed", f"while scheduling: {error_text(exc)}")

    def _became_ready(self, ref, slot: int, generation: int) -> None:
        try:
            ray.get(ref)
            error = None
        except ray.exceptions.RayError as exc:
            error = exc
        self._watch_ready(self.pool.on_ready(slot, generation, error))

    def _joined(self, spec: JoinSpec, ref) -> None:
        record = self._records[spec.video]
        try:
            result: JoinResult = ray.get(ref)
        except Exception as exc:
            cause = getattr(exc, "cause", None) or exc
            if isinstance(cause, SegmentCacheMissing):
                self._rerouted[spec.video] = self._rerouted.get(spec.video, 0) + 1
                if self._rerouted[spec.video] > 1:  # computed again in this job and still missing
                    self._final(record, "failed", f"joining segments: {error_text(exc)} (after computing them again)")
                    return
                reason = "; ".join(r for r in (spec.recomputed, "segment cache missing") if r)
                task = self._tasks[spec.video]
                record.status, record.segments = "pending", []
                self._route(task, Decision("work", reason=reason))
            elif is_transient(exc):
                self._joins.append(spec)
                self.pause.down(error_text(exc))
            else:
                self._final(record, "failed", f"joining segments: {error_text(exc)}")
            return
        record.outputs, record.frames = result.outputs, result.frames
        record.missing, record.missing_count = result.missing, result.missing_count
        if result.tracking:
            record.tracking = result.tracking
            for spec, key in ((metrics.TRACKLETS, "tracklets"), (metrics.INDIVIDUALS_FOUND, "individuals_found"),
                              (metrics.IDENTITY_JOINS, "identity_joins")):
                if result.tracking.get(key):  # counters take positive increments only (Ray's)
                    metrics.current().inc(spec, result.tracking[key])
        if not record.segments:  # a rejoin: the pieces come from the earlier job's record
            record.segments = [SegmentRecord(a, b, status="cached") for a, b in result.bounds]
            self.report.segments_cached += len(result.bounds)
        elif len(record.segments) == len(result.bounds):  # spans become the frames they held
            for segment, (start, stop) in zip(record.segments, result.bounds):
                segment.start, segment.stop = start, stop
        self._first_table = self._first_table or result.finished_at
        self._final(record, "done-with-warnings" if result.missing or result.warnings else "done")

    def _work_event(self, generator, slot: int, generation: int, item: _Item) -> None:
        record = self._records[item.task.uri]
        try:
            event = ray.get(next(generator))
        except StopIteration:
            del self._inflight[generator]
            self.pool.finished(slot, item)
            self._maybe_join(item.task.uri)
            return
        except ray.exceptions.RayActorError as exc:
            del self._inflight[generator]
            running = item.started  # else it was queued behind the item that was running
            self.pool.finished(slot, item)
            self._watch_ready(self.pool.replace(slot, generation, exc))
            if self._stale(item) or record.finished_at:
                return
            if running and not died_with_node(exc):
                self._retry(item, record, exc)
            else:
                self._requeue(item, record, exc, "its worker was lost with its node" if running else
                              "queued behind a worker that died")
            return
        except Exception as exc:
            del self._inflight[generator]
            self.pool.finished(slot, item)
            cause = getattr(exc, "cause", None) or exc
            if self._stale(item) or record.finished_at:
                return  # a piece of a plan given up since (spans read in one pass instead), or a decided video
            if isinstance(cause, SpansUnsound):
                self._read_in_one_pass(item.task, error_text(exc))
            elif isinstance(cause, (InputError, ObjectChangedError)):
                self._final(record, "failed", error_text(exc))  # does not get better by retrying
                log.warning("%s: %s", storage.redact_uri(item.task.uri), record.error)
            elif is_transient(exc):
                self._work.appendleft(item)  # not the item's fault: no attempt counted
                self.pause.down(error_text(exc))
            else:
                self._retry(item, record, exc)
            return
        if isinstance(event, Started):
            item.started = True
            return
        if self._stale(item) or record.finished_at:
            return  # a plan the video no longer follows, or a video already decided (failed elsewhere)
        if isinstance(event, VideoPlanned):
            self.bytes_read += event.bytes_read
            layout = self._layouts[item.task.uri]
            if item.kind == "sequential":  # the end of the pass: every window is known now
                if not event.bounds:
                    raise InputError(item.task.uri, "no frame could be decoded")
                layout.facts, layout.complete = event.facts, True
                record.frames = event.frames
                done = {(s.start, s.stop): s for s in record.segments}
                record.segments = [done.get(tuple(b)) or SegmentRecord(*b, status="cached") for b in event.bounds]
            elif not record.segments:
                self._video_planned(record, event.frames, event.bounds, event.cached, event.planned_at)
                layout.complete = True
            elif [(s.start, s.stop) for s in record.segments] != [tuple(b) for b in event.bounds]:
                raise InputError(item.task.uri, "was cut differently on a second attempt; it changed during the job")
            return
        if item.kind == "sequential" and not any((s.start, s.stop) == (event.start, event.stop) for s in record.segments):
            record.segments.append(SegmentRecord(event.start, event.stop))
        self._segment_done(record, item, event)

    def _stale(self, item: _Item) -> bool:
        """An item of a plan the video no longer follows."""
        layout = self._layouts.get(item.task.uri)
        return layout is not None and layout.kind != item.kind

    def _read_in_one_pass(self, task: VideoTask, why: str) -> None:
        """Spans that cannot be read on their own (an open GOP at a cue): the whole video in one pass."""
        log.warning("%s: %s; reading it in one pass", storage.redact_uri(task.uri), why)
        self._layouts[task.uri] = _Layout("sequential")
        record = self._records[task.uri]
        record.segments, record.frames = [], -1
        self._work = deque(item for item in self._work if item.task.uri != task.uri)
        self._work.append(_Item(task, "sequential", None))

    def _segment_done(self, record: VideoRecord, item: _Item, event: SegmentDone) -> None:
        segment = next((s for s in record.segments if (s.start, s.stop) == (event.start, event.stop)), None)
        if segment is None:
            raise InputError(item.task.uri, f"a worker returned frames {event.start}-{event.stop}, which are not "
                             "a segment of its plan")
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

    def _requeue(self, item: _Item, record: VideoRecord, exc: BaseException, why: str) -> None:
        """Back to the front of the queue, uncharged (bounded: an item requeued too often is charged)."""
        if item.requeued >= FREE_REQUEUES:
            self._retry(item, record, exc)
            return
        log.warning("%s: %s; sent back without penalty", storage.redact_uri(item.task.uri), why)
        item.task.maybe_cached = True  # what it wrote before it was interrupted is reused
        self._work.appendleft(_Item(item.task, item.kind, item.pieces, item.attempt, item.requeued + 1))

    def _retry(self, item: _Item, record: VideoRecord, exc: BaseException) -> None:
        error = error_text(exc)
        retry = item.attempt <= self.options.max_retries
        metrics.current().inc(metrics.SEGMENTS, status="retried" if retry else "failed")
        if retry:
            log.warning("%s failed (%s); retrying", storage.redact_uri(item.task.uri), error)
            item.task.maybe_cached = True
            self._work.appendleft(_Item(item.task, item.kind, item.pieces, item.attempt + 1, item.requeued))
            return
        self._final(record, "failed", error)
        log.error("%s failed: %s", storage.redact_uri(item.task.uri), error)
