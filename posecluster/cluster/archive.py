"""Archive runs: every video of an archive -> one DeepLabCut pose table, sharded over Ray actors.

Storage layout under the output URI:
  <relative dir>/<video stem><scorer>.h5 (+ .csv/.parquet)   the pose tables, DLC naming
  <relative dir>/<video stem><scorer>_meta.json              written last: marks the video done
  .posecluster/probes/<video key>.npz                        timestamps and keyframes, by video identity
  .posecluster/segments/<video key>/<model id>/<range>.npz   segment results, by video and model identity
  .posecluster/jobs/<job id>/plan.json, manifest.json        what each job planned, did, and why it failed
  posecluster-manifest.json                                  the latest job's manifest

A rerun skips finished videos and finished segments; a changed video or model changes the keys and is
recomputed; --overwrite recomputes everything. A dead actor is replaced and its segments retried (bounded);
an unreadable video fails alone, with the decoder's message, while the rest complete.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections import deque
from dataclasses import asdict, dataclass, field
from typing import Callable

import ray
from tqdm.auto import tqdm

from posecluster import metrics, storage
from posecluster.cluster.actors import SegmentWorker, probe_video
from posecluster.cluster.runtime import cluster_slots, connect
from posecluster.cluster.sharding import (
    Segment,
    load_probe,
    plan_to_json,
    plan_video,
    relative_names,
    short_hash,
)
from posecluster.data.video import VIDEO_SUFFIXES, find_videos
from posecluster.errors import InputError
from posecluster.infer.segments import join_segments
from posecluster.infer.ensemble import describe_model, join_ensemble_segments
from posecluster.model.ensemble import is_ensemble

log = logging.getLogger(__name__)
STATE = ".posecluster"


@dataclass
class ArchiveOptions:
    model: str
    out: str
    formats: tuple[str, ...] = ()
    workers: int | None = None  # default: as many as the cluster holds
    cpus_per_worker: float = 1.0
    gpus_per_worker: float = 0.0
    # Overrides of the model's own `infer` section (batch_size, decode_threads, mixed_precision, ...).
    infer_overrides: dict = field(default_factory=dict)
    segment_frames: int = 1000
    overwrite: bool = False
    max_retries: int = 2
    progress: bool = True


@dataclass
class SegmentRecord:
    start: int
    stop: int
    status: str = "pending"  # pending, done, cached, failed
    attempts: int = 0
    seconds: float = 0.0
    fps: float = 0.0
    missing_frames: int = 0
    error: str = ""


@dataclass
class VideoRecord:
    uri: str
    status: str = "pending"  # pending, done, skipped (done before), failed
    video_key: str = ""
    frames: int = 0
    outputs: dict[str, str] = field(default_factory=dict)
    missing_frames: dict[int, str] = field(default_factory=dict)
    error: str = ""
    compute_seconds: float = 0.0
    segments: list[SegmentRecord] = field(default_factory=list)


@dataclass
class JobReport:
    job_id: str
    out: str
    model: dict
    manifest_uri: str = ""
    status: str = "running"  # running, finished, interrupted
    started: float = 0.0
    seconds: float = 0.0
    segments_computed: int = 0
    segments_cached: int = 0
    frames_computed: int = 0
    workers: int = 0
    videos: list[VideoRecord] = field(default_factory=list)

    @property
    def failed(self) -> list[VideoRecord]:
        return [v for v in self.videos if v.status == "failed"]

    @property
    def fps(self) -> float:
        return self.frames_computed / self.seconds if self.seconds else 0.0


def _state(out: str, *parts: str) -> str:
    return storage.join(out, STATE, *parts)


def _error_text(exc: BaseException) -> str:
    cause = getattr(exc, "cause", None) or exc
    return f"{type(cause).__name__}: {cause}"


class ArchiveRun:
    def __init__(self, videos: list[str], options: ArchiveOptions,
                 on_progress: Callable[["ArchiveRun"], None] | None = None):
        self.videos = videos
        self.options = options
        self.on_progress = on_progress
        self.trained = describe_model(options.model)  # a run, or an ensemble folder
        self._join = join_ensemble_segments if is_ensemble(options.model) else join_segments
        self.model_id = self.trained.identity
        self.scorer = self.trained.scorer
        self.job_id = time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]
        self.report = JobReport(job_id=self.job_id, out=options.out,
                                model={"uri": self.trained.uri, "identity": self.model_id})
        self.report.manifest_uri = _state(options.out, "jobs", self.job_id, "manifest.json")
        self.actors: list = []
        self._records: dict[str, VideoRecord] = {}
        self._segments: dict[str, list[Segment]] = {}
        self._infos: dict[str, object] = {}
        self._bases: dict[str, str] = {}
        self._identities: dict[str, storage.ObjectIdentity] = {}  # as planned: the outputs' key
        self._last_manifest = 0.0

    # -- planning ---------------------------------------------------------------------------------
    def _output_base(self, video: str, relative: str) -> str:
        folder = relative.rsplit("/", 1)[0] if "/" in relative else ""
        name = f"{storage.stem(video)}{self.scorer}"
        return storage.join(self.options.out, folder, name) if folder else storage.join(self.options.out, name)

    def _already_done(self, record: VideoRecord) -> bool:
        meta_uri = f"{self._bases[record.uri]}_meta.json"
        if self.options.overwrite or not storage.exists(meta_uri):
            return False
        meta = json.loads(storage.read_bytes(meta_uri))
        return meta.get("video_key") == record.video_key and meta.get("model", {}).get("identity") == self.model_id

    def _plan(self) -> list[Segment]:
        names = relative_names(self.videos)
        to_probe = {}
        for video in self.videos:
            record = VideoRecord(uri=video)
            self.report.videos.append(record)
            self._records[video] = record
            self._bases[video] = self._output_base(video, names[video])
            try:
                self._identities[video] = storage.identity(video)
                record.video_key = short_hash(self._identities[video].key())
            except (FileNotFoundError, OSError) as exc:
                record.status, record.error = "failed", _error_text(exc)
                continue
            if self._already_done(record):
                record.status = "skipped"
                continue
            probe_uri = _state(self.options.out, "probes", f"{record.video_key}.npz")
            if storage.exists(probe_uri) and not self.options.overwrite:
                self._infos[video] = load_probe(probe_uri, video)
            else:
                to_probe[video] = probe_video.remote(video, probe_uri)
        for video, ref in to_probe.items():
            try:
                self._infos[video] = ray.get(ref)
            except Exception as exc:  # a corrupt or non-video object fails alone
                record = self._records[video]
                record.status, record.error = "failed", _error_text(exc)
                log.warning("%s: %s", video, record.error)
        planned: list[Segment] = []
        for video, info in self._infos.items():
            record = self._records[video]
            segments = plan_video(video, record.video_key, info, self.options.segment_frames)
            self._segments[video] = segments
            record.frames = info.frame_count
            record.segments = [SegmentRecord(s.start, s.stop) for s in segments]
            planned += segments
        storage.atomic_write_bytes(
            _state(self.options.out, "jobs", self.job_id, "plan.json"),
            plan_to_json(planned, {"job_id": self.job_id, "model": self.report.model,
                                   "segment_frames": self.options.segment_frames}),
        )
        return planned

    def _segment_uri(self, segment: Segment) -> str:
        return _state(self.options.out, "segments", segment.video_key, self.model_id, f"{segment.name}.npz")

    def _probe_uri(self, segment: Segment) -> str:
        return _state(self.options.out, "probes", f"{segment.video_key}.npz")

    def _segment_record(self, segment: Segment) -> SegmentRecord:
        record = self._records[segment.video_uri]
        return record.segments[self._segments[segment.video_uri].index(segment)]

    # -- running ----------------------------------------------------------------------------------
    def run(self) -> JobReport:
        opts = self.options
        self.report.started = time.time()
        try:
            planned = self._plan()
            todo = deque()
            for segment in planned:
                if not opts.overwrite and storage.exists(self._segment_uri(segment)):
                    self._segment_record(segment).status = "cached"
                    self.report.segments_cached += 1
                else:
                    todo.append(segment)
            for video in list(self._segments):
                self._finalize_if_complete(video)
            if todo:
                self._run_segments(todo)
            self.report.status = "finished"
            exporter = metrics.current()
            for video in self.report.videos:
                exporter.inc(metrics.VIDEOS, status=video.status)
            if not self.report.failed:
                exporter.set(metrics.LAST_SUCCESS, time.time())
        except BaseException:
            self.report.status = "interrupted"
            raise
        finally:
            for actor in self.actors:
                ray.kill(actor)
            self.report.seconds = time.time() - self.report.started
            self._write_manifest(force=True)
        return self.report

    def _new_actor(self):
        opts = self.options
        return SegmentWorker.options(num_cpus=opts.cpus_per_worker, num_gpus=opts.gpus_per_worker).remote(
            opts.model, opts.infer_overrides, int(max(1, opts.cpus_per_worker))
        )

    def _run_segments(self, todo: deque) -> None:
        opts = self.options
        workers = opts.workers or cluster_slots(opts.cpus_per_worker, opts.gpus_per_worker)
        workers = max(1, min(workers, len(todo)))
        self.actors = [self._new_actor() for _ in range(workers)]
        self.report.workers = workers
        generation = [0] * workers
        inflight: dict = {}
        total = sum(s.frames for s in todo)
        bar = tqdm(total=total, unit="frame", desc="infer", disable=not opts.progress)

        def submit(slot: int) -> None:
            while todo:
                segment = todo.popleft()
                if self._records[segment.video_uri].status == "failed":
                    continue  # its video already failed: do not spend time on the rest
                self._segment_record(segment).attempts += 1
                ref = self.actors[slot].run.remote(segment, self._probe_uri(segment), self._segment_uri(segment))
                inflight[ref] = (slot, generation[slot], segment)
                return

        for slot in range(workers):  # two in flight per actor: no idle gap between segments
            submit(slot)
            submit(slot)
        started = time.perf_counter()
        while inflight:
            done, _ = ray.wait(list(inflight), num_returns=1)
            ref = done[0]
            slot, gen, segment = inflight.pop(ref)
            record = self._segment_record(segment)
            try:
                result = ray.get(ref)
            except ray.exceptions.RayActorError as exc:
                if gen == generation[slot]:  # first news of this actor's death: replace it once
                    log.warning("worker %d died (%s); replacing it", slot, type(exc).__name__)
                    generation[slot] += 1
                    self.actors[slot] = self._new_actor()
                    submit(slot)
                self._retry_or_fail(segment, record, exc, todo)
                submit(slot)
                continue
            except Exception as exc:
                if isinstance(getattr(exc, "cause", None) or exc, InputError):
                    record.attempts = opts.max_retries + 1  # bad input does not get better by retrying
                self._retry_or_fail(segment, record, exc, todo)
                submit(slot)
                continue
            metrics.current().inc(metrics.SEGMENTS, status="done")
            record.status, record.seconds, record.fps = "done", result.seconds, result.fps
            record.missing_frames = len(result.missing)
            video = self._records[segment.video_uri]
            video.compute_seconds += result.seconds
            self.report.segments_computed += 1
            self.report.frames_computed += segment.frames
            bar.update(segment.frames)
            bar.set_postfix(fps=f"{self.report.frames_computed / (time.perf_counter() - started):.1f}")
            self._finalize_if_complete(segment.video_uri)
            submit(slot)
            self._write_manifest()
            if self.on_progress is not None:
                self.on_progress(self)
        bar.close()

    def _retry_or_fail(self, segment: Segment, record: SegmentRecord, exc: BaseException, todo: deque) -> None:
        record.error = _error_text(exc)
        retry = record.attempts <= self.options.max_retries
        metrics.current().inc(metrics.SEGMENTS, status="retried" if retry else "failed")
        if retry:
            log.warning("%s [%s] failed (%s); retrying", segment.video_uri, segment.name, record.error)
            record.status = "pending"
            todo.appendleft(segment)
            return
        record.status = "failed"
        video = self._records[segment.video_uri]
        video.status = "failed"
        video.error = f"frames {segment.start}-{segment.stop - 1}: {record.error}"
        log.error("%s failed: %s", segment.video_uri, video.error)

    def _finalize_if_complete(self, video: str) -> None:
        record = self._records[video]
        if record.status != "pending" or any(s.status not in ("done", "cached") for s in record.segments):
            return
        segments = self._segments[video]
        try:
            outputs, missing = self._join(
                [self._segment_uri(s) for s in segments], self.scorer, self.trained.bodyparts,
                self._infos[video].frame_count, self._bases[video], self.options.formats,
            )
        except Exception as exc:
            record.status, record.error = "failed", f"joining segments: {_error_text(exc)}"
            return
        record.outputs, record.missing_frames, record.status = outputs, missing, "done"
        meta = {
            "video": video, "video_key": record.video_key, "video_identity": asdict(self._identities[video]),
            "model": self.report.model, "scorer": self.scorer, "bodyparts": self.trained.bodyparts,
            "frames": record.frames, "missing_frames": missing, "outputs": outputs, "job_id": self.job_id,
            "segments": [asdict(s) for s in record.segments],
        }
        storage.atomic_write_bytes(f"{self._bases[video]}_meta.json", json.dumps(meta, indent=1).encode())

    def _write_manifest(self, force: bool = False) -> None:
        now = time.time()
        if not force and now - self._last_manifest < 10:
            return
        self._last_manifest = now
        body = json.dumps(asdict(self.report), indent=1, default=str).encode()
        storage.atomic_write_bytes(self.report.manifest_uri, body)
        storage.atomic_write_bytes(storage.join(self.options.out, "posecluster-manifest.json"), body)


def run_archive(inputs: list[str], options: ArchiveOptions,
                on_progress: Callable[[ArchiveRun], None] | None = None) -> JobReport:
    """Connect to Ray (RAY_ADDRESS, or a local instance) and run the archive job over `inputs`
    (video URIs, prefixes/folders, or .txt lists of URIs)."""
    videos = find_videos(inputs)
    if not videos:
        raise FileNotFoundError(f"no videos ({', '.join(VIDEO_SUFFIXES)}) found in {inputs}")
    connect()
    if isinstance(metrics.current(), metrics.NullExporter):  # inside `ray job submit`: the node's endpoint
        metrics.use(metrics.RayExporter())
    return ArchiveRun(videos, options, on_progress).run()
