"""The GPU stage: one SegmentWorker actor per GPU (or CPU slot), holding the pinned model.

`run` is a Ray streaming generator: it yields a `VideoPlanned` (small videos, probed here from the bytes
the worker fetched once) and then one `SegmentDone` per segment as each is written, so the driver sees
progress, metrics and timings segment by segment while the worker goes on.
"""

from __future__ import annotations

import io
import time
from dataclasses import dataclass, field

import ray
import torch

from posecluster import metrics, storage
from posecluster.cluster.plan import VideoTask, segment_name, segments_folder
from posecluster.cluster.sharding import segment_bounds
from posecluster.data.video import probe
from posecluster.infer.ensemble import pinned_predictor
from posecluster.infer.segments import predict_segment, write_segment
from posecluster.model.artifact import PinnedModel
from posecluster.model.ensemble import PinnedEnsemble
from posecluster.storage.listing import list_identities
from posecluster.storage.retry import call as with_retries
from posecluster.storage.retry import open_retrying

# How long a worker rides out a storage outage inside one fetch or write before giving up the item
# (the driver then pauses dispatch until storage answers again).
WORKER_PATIENCE_S = 120.0


@dataclass(frozen=True)
class WorkerContext:
    out: str
    model_key: str
    segment_frames: int
    overwrite: bool


@dataclass
class VideoPlanned:
    frames: int
    bounds: list[tuple[int, int]]
    cached: tuple[str, ...]
    planned_at: float
    bytes_read: int


@dataclass
class SegmentDone:
    start: int
    stop: int
    cached: bool = False
    frames: int = 0
    missing: dict[int, str] = field(default_factory=dict)
    seconds: float = 0.0
    decode_wait_s: float = 0.0
    infer_s: float = 0.0
    write_s: float = 0.0
    bytes_read: int = 0
    metrics: list = field(default_factory=list)  # the Relay's records, replayed by the driver


@ray.remote(max_restarts=0)
class SegmentWorker:
    """Loads exactly the pinned model (refusing to start on a hash mismatch), then predicts work items.
    An ensemble's members are all loaded here and run on each decoded batch: every frame is decoded once."""

    def __init__(self, pinned: PinnedModel | PinnedEnsemble, infer_overrides: dict, threads: int):
        torch.set_num_threads(max(1, threads))
        self.relay = metrics.Relay(gauges=metrics.RayExporter())
        metrics.use(self.relay)
        self.pinned = pinned
        self.predictor = pinned_predictor(pinned, infer_overrides)  # ModelMismatchError: never starts

    def ready(self) -> str:
        return self.pinned.sha256

    def run(self, task: VideoTask, bounds: list[tuple[int, int]] | None, ctx: WorkerContext):
        """Predict `bounds` of a planned (large) video, or the whole of a small one (bounds None)."""
        folder = segments_folder(ctx.out, task.video_key, ctx.model_key)
        if bounds is None:
            data = with_retries(storage.read_bytes, task.uri, patience_s=WORKER_PATIENCE_S)
            source = lambda: io.BytesIO(data)  # noqa: E731  (probe and decode from memory: one GET)
            info = probe(task.uri, source=source)
            bounds = segment_bounds(info.frame_count, info.keyframes, ctx.segment_frames)
            cached: tuple[str, ...] = ()
            if not ctx.overwrite and task.maybe_cached:
                names = {i.uri.rsplit("/", 1)[-1].removesuffix(".npz") for i in with_retries(
                    list_identities, folder, (".npz",), patience_s=WORKER_PATIENCE_S)}
                cached = tuple(segment_name(a, b) for a, b in bounds if segment_name(a, b) in names)
            yield VideoPlanned(info.frame_count, bounds, cached, time.time(), len(data))
            readers: list = []
        else:
            info, cached, readers = task.info, task.cached, []

            def source():
                readers.append(open_retrying(task.uri, WORKER_PATIENCE_S))
                return readers[-1]

        for start, stop in bounds:
            name = segment_name(start, stop)
            if name in cached:
                yield SegmentDone(start, stop, cached=True)
                continue
            poses, result = predict_segment(self.predictor, info, start, stop, source=source)
            began = time.perf_counter()
            with_retries(write_segment, storage.join(folder, f"{name}.npz"), poses, result,
                         patience_s=WORKER_PATIENCE_S)
            write_s = time.perf_counter() - began
            self.relay.observe(metrics.WRITE_TIME, write_s)
            if self.predictor.device.type == "cuda":
                self.relay.set(metrics.ACCELERATOR_MEMORY, torch.cuda.memory_allocated(self.predictor.device))
            read = sum(r.bytes_read for r in readers)
            readers.clear()
            yield SegmentDone(start, stop, frames=result.frames, missing=result.missing, seconds=result.seconds,
                              decode_wait_s=result.decode_wait_s, infer_s=result.infer_s, write_s=write_s,
                              bytes_read=read, metrics=self.relay.drain())
