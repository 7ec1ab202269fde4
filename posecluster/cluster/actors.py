"""The GPU stage: one SegmentWorker actor per GPU (or CPU slot), holding the pinned model.

`run` is a Ray streaming generator: it yields a `VideoPlanned` (small videos, probed here from the bytes
the worker fetched once) and then one `SegmentDone` per segment as each is written, so the driver sees
progress, metrics and timings segment by segment while the worker goes on.

Every read is pinned to the identity the driver planned (storage.pinned): a video that changes during the
job fails with "changed during the job" instead of mixing two versions. A planned video's probe is fetched
from Ray's object store once per worker and kept for its next segments, as are the blocks of its header.
"""

from __future__ import annotations

import io
import time
from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np
import ray
import torch

from posecluster import metrics, storage
from posecluster.cluster.plan import VideoTask, segment_name, segments_folder
from posecluster.cluster.sharding import segment_bounds
from posecluster.data.video import VideoInfo, probe
from posecluster.infer.ensemble import pinned_predictor
from posecluster.infer.segments import predict_segment, write_segment
from posecluster.model.artifact import PinnedModel
from posecluster.model.ensemble import PinnedEnsemble
from posecluster.storage.listing import list_identities
from posecluster.storage.pinned import HeaderCache, open_pinned, read_pinned
from posecluster.storage.retry import call as with_retries

PROBES_KEPT = 8  # planned videos whose probe a worker keeps (segments of a video tend to come together)


@dataclass(frozen=True)
class WorkerContext:
    out: str
    cache_key: str  # model + result-changing settings: where segment results are kept
    segment_frames: int
    overwrite: bool
    patience_s: float  # how long one storage call rides out a fault before the item goes back


@dataclass
class Started:
    """The first event of every item: from here on a death of this worker is this item's doing."""


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


def byte_window(info: VideoInfo, start: int, stop: int) -> tuple[int, int] | None:
    """The bytes frames [start, stop) live in: from the keyframe the segment starts at to the keyframe
    that starts the next one (the object's end for the last); None when the probe does not know."""
    keys = np.asarray(info.keyframes)
    positions = np.asarray(info.seek_pos)
    if len(positions) != len(keys):
        return None
    first = int(np.searchsorted(keys, start, side="right")) - 1
    after = int(np.searchsorted(keys, stop, side="left"))
    low = int(positions[max(first, 0)])
    high = int(positions[after]) if after < len(keys) else -1
    if first <= 0 or low < 0:
        return None  # the segment starts at the top: its reads are the header's too
    return low, (high if high > low else 1 << 62)


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
        self.probes: OrderedDict[str, VideoInfo] = OrderedDict()
        self.headers = HeaderCache()

    def ready(self) -> str:
        return self.pinned.sha256

    def _probe_of(self, task: VideoTask) -> VideoInfo:
        info = self.probes.pop(task.video_key, None)
        if info is None:
            info = ray.get(task.info_ref[0])
        self.probes[task.video_key] = info
        while len(self.probes) > PROBES_KEPT:
            self.probes.popitem(last=False)
        return info

    def run(self, task: VideoTask, bounds: list[tuple[int, int]] | None, ctx: WorkerContext):
        """Predict `bounds` of a planned (large) video, or the whole of a small one (bounds None)."""
        yield Started()
        folder = segments_folder(ctx.out, task.video_key, ctx.cache_key)
        readers: list = []
        if bounds is None:
            data = read_pinned(task.identity, patience_s=ctx.patience_s)
            source = lambda start, stop: io.BytesIO(data)  # noqa: E731  (probe and decode from memory: one GET)
            info = probe(task.uri, source=lambda: io.BytesIO(data))
            bounds = segment_bounds(info.frame_count, info.keyframes, ctx.segment_frames)
            cached: tuple[str, ...] = ()
            if not ctx.overwrite and task.maybe_cached:
                names = {i.uri.rsplit("/", 1)[-1].removesuffix(".npz") for i in with_retries(
                    list_identities, folder, (".npz",), patience_s=ctx.patience_s)}
                cached = tuple(segment_name(a, b) for a, b in bounds if segment_name(a, b) in names)
            yield VideoPlanned(info.frame_count, bounds, cached, time.time(), len(data))
        else:
            info, cached = self._probe_of(task), ()

            def source(start: int, stop: int):
                readers.append(open_pinned(task.identity, window=byte_window(info, start, stop),
                                           patience_s=ctx.patience_s, headers=self.headers))
                return readers[-1]

        for start, stop in bounds:
            name = segment_name(start, stop)
            if name in cached:
                yield SegmentDone(start, stop, cached=True)
                continue
            poses, result = predict_segment(self.predictor, info, start, stop,
                                            source=lambda start=start, stop=stop: source(start, stop))
            began = time.perf_counter()
            with_retries(write_segment, storage.join(folder, f"{name}.npz"), poses, result, patience_s=ctx.patience_s)
            write_s = time.perf_counter() - began
            self.relay.observe(metrics.WRITE_TIME, write_s)
            if self.predictor.device.type == "cuda":
                self.relay.set(metrics.ACCELERATOR_MEMORY, torch.cuda.memory_allocated(self.predictor.device))
            read = sum(r.bytes_read for r in readers)
            readers.clear()
            yield SegmentDone(start, stop, frames=result.frames, missing=result.missing, seconds=result.seconds,
                              decode_wait_s=result.decode_wait_s, infer_s=result.infer_s, write_s=write_s,
                              bytes_read=read, metrics=self.relay.drain())
