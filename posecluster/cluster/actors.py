"""The GPU stage: one SegmentWorker actor per GPU (or CPU slot), holding the pinned model.

`run` is a Ray streaming generator: it yields a `VideoPlanned` (small videos, probed here from the bytes
the worker fetched once) and then one `SegmentDone` per segment as each is written, so the driver sees
progress, metrics and timings segment by segment while the worker goes on.

Work items come in the kinds the reader's plan allows: a small video whole (fetched once, probed from
memory), frame ranges of a "frames" plan, groups of spans of a "spans" plan (Matroska cues), or a whole
"sequential" video in one pass that writes a segment every `segment_frames` frames as it goes.

Every read is pinned to the identity the driver planned (storage.pinned): a video that changes during the
job fails with "changed during the job" instead of mixing two versions. A planned video's plan (with the
index bytes FFmpeg read to open it) is fetched from Ray's object store once per worker and kept for its
next pieces, so no piece reads the container's index again.
"""

from __future__ import annotations

import io
import queue
import time
from collections import OrderedDict
from dataclasses import dataclass, field, replace

import numpy as np
import ray
import torch

from posecluster import metrics, storage
from posecluster.cluster.plan import VideoTask, piece_name, segment_name, segments_folder
from posecluster.cluster.runtime import remote
from posecluster.cluster.sharding import segment_bounds
from posecluster.data.video import VideoInfo, VideoReader, probe
from posecluster.infer.ensemble import pinned_predictor
from posecluster.infer.pieces import piece_kind
from posecluster.infer.segments import video_facts
from posecluster.model.artifact import PinnedModel
from posecluster.model.ensemble import PinnedEnsemble
from posecluster.storage.listing import list_identities
from posecluster.storage.pinned import ReadAhead, open_pinned, read_pinned
from posecluster.storage.retry import call as with_retries
from posecluster.storage.scope import start_thread

READ_BLOCK = 8 << 20  # a pass from the top (or a range whose end is the object's): blocks of this size
READ_BLOCK_MAX = 64 << 20  # a segment's byte range in one request, up to this
PLANS_KEPT = 4  # planned videos whose plan a worker keeps (a long video's plan carries its index: MBs)


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
    """The pieces of a video known only on a worker: a small video's cuts (before its segments), or a
    one-pass video's windows and facts (after them)."""

    frames: int
    bounds: list[tuple[int, int]]
    cached: tuple[str, ...]
    planned_at: float
    bytes_read: int
    facts: dict = field(default_factory=dict)  # a one-pass video's facts (sizes, clock jumps, numbering)


@dataclass
class SegmentDone:
    start: int  # frames, or spans for a "spans" piece
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


class Borrowed(io.RawIOBase):
    """A file object lent to one reader after another: closing it leaves the file (and what it holds) open."""

    def __init__(self, file):
        super().__init__()
        self.file = file

    def read(self, size: int = -1) -> bytes:
        return self.file.read(size)

    def readinto(self, buffer) -> int:
        return self.file.readinto(buffer)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return self.file.seek(offset, whence)

    def tell(self) -> int:
        return self.file.tell()

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True


class ByteMeter:
    """Bytes the readers of one work item fetched, handed out as they accrue (a one-pass reader stays
    open across many segments)."""

    def __init__(self):
        self.readers: list = []
        self._taken = 0

    def take(self) -> int:
        total = sum(reader.bytes_read for reader in self.readers)
        taken, self._taken = total - self._taken, total
        return taken


def byte_window(info: VideoInfo, first_key: int, next_key: int | None) -> tuple[int, int] | None:
    """The bytes from the keyframe (or span) numbered `first_key` in the plan's seek facts to the one
    numbered `next_key` (None: the object's end); None when the plan does not know them. The container's
    header and index come from the plan (it keeps what FFmpeg read to open the video), not from here."""
    positions = np.asarray(info.seek_pos)
    if not 0 <= first_key < len(positions) or (first_key and positions[first_key] < 0):
        return None
    low = int(positions[first_key]) if first_key else 0
    high = int(positions[next_key]) if next_key is not None and next_key < len(positions) else -1
    return low, (high if high > low else 1 << 62)


def frames_window(info: VideoInfo, start: int, stop: int) -> tuple[int, int] | None:
    keys = np.asarray(info.keyframes)
    first = int(np.searchsorted(keys, start, side="right")) - 1
    after = int(np.searchsorted(keys, stop, side="left"))
    return byte_window(info, max(first, 0), after if after < len(keys) else None)


@remote(max_restarts=0)
class SegmentWorker:
    """Loads exactly the pinned model (refusing to start on a hash mismatch), then predicts work items.
    An ensemble's members are all loaded here and run on each decoded batch: every frame is decoded once."""

    def __init__(self, pinned: PinnedModel | PinnedEnsemble, infer_overrides: dict, threads: int):
        torch.set_num_threads(max(1, threads))
        self.relay = metrics.Relay(gauges=metrics.RayExporter())
        metrics.use(self.relay)
        self.pinned = pinned
        self.predictor = pinned_predictor(pinned, infer_overrides)  # ModelMismatchError: never starts
        self.pieces = piece_kind(self.predictor)  # how this model's pieces are predicted and stored
        self.plans: OrderedDict[str, VideoInfo] = OrderedDict()

    def ready(self) -> str:
        return self.pinned.sha256

    def _plan_of(self, task: VideoTask) -> VideoInfo:
        info = self.plans.pop(task.video_key, None)
        if info is None:
            info = ray.get(task.info_ref[0])
        self.plans[task.video_key] = info
        while len(self.plans) > PLANS_KEPT:
            self.plans.popitem(last=False)
        return info

    def _cached(self, folder: str, ctx: WorkerContext, task: VideoTask) -> set[str]:
        if ctx.overwrite or not task.maybe_cached:
            return set()
        return {i.uri.rsplit("/", 1)[-1].removesuffix(".npz") for i in with_retries(
            list_identities, folder, (".npz",), patience_s=ctx.patience_s)}

    def _write(self, folder: str, name: str, poses, result, ctx: WorkerContext, meter: ByteMeter) -> SegmentDone:
        began = time.perf_counter()
        with_retries(self.pieces.write, storage.join(folder, f"{name}.npz"), poses, result, patience_s=ctx.patience_s)
        write_s = time.perf_counter() - began
        self.relay.observe(metrics.WRITE_TIME, write_s)
        if self.predictor.device.type == "cuda":
            self.relay.set(metrics.ACCELERATOR_MEMORY, torch.cuda.memory_allocated(self.predictor.device))
        return SegmentDone(result.start, result.stop, frames=result.frames, missing=result.missing,
                           seconds=result.seconds, decode_wait_s=result.decode_wait_s, infer_s=result.infer_s,
                           write_s=write_s, bytes_read=meter.take(), metrics=self.relay.drain())

    def run(self, task: VideoTask, kind: str, pieces: list[tuple[int, int]] | None, ctx: WorkerContext):
        """Predict a work item (see the module doc): `kind` is "small", "frames", "spans" or "sequential";
        `pieces` the frame ranges or span groups to predict (None for "small" and "sequential")."""
        yield Started()
        folder = segments_folder(ctx.out, task.video_key, ctx.cache_key)
        if kind == "small":
            yield from self._small(task, folder, ctx)
        elif kind == "sequential":
            yield from self._sequential(task, folder, ctx)
        else:
            yield from self._planned(task, kind, pieces, folder, ctx)

    def _small(self, task: VideoTask, folder: str, ctx: WorkerContext):
        data = read_pinned(task.identity, patience_s=ctx.patience_s)
        info = probe(task.uri, source=lambda: io.BytesIO(data))  # probe and decode from memory: one GET
        bounds = segment_bounds(info.frame_count, info.keyframes, ctx.segment_frames)
        names = self._cached(folder, ctx, task)
        cached = tuple(segment_name(a, b) for a, b in bounds if segment_name(a, b) in names)
        yield VideoPlanned(info.frame_count, bounds, cached, time.time(), len(data))
        for start, stop in bounds:
            if segment_name(start, stop) in cached:
                yield SegmentDone(start, stop, cached=True)
                continue
            piece, result = self.pieces.predict(self.predictor, info, start, stop, source=lambda: io.BytesIO(data))
            yield self._write(folder, segment_name(start, stop), piece, result, ctx, ByteMeter())

    def _source(self, task: VideoTask, ctx: WorkerContext, meter: ByteMeter, window=None):
        """Pinned reads of the video: a known byte range in one request (up to READ_BLOCK_MAX, with a
        little more for the decoder to see where the range ends), a pass from the top in READ_BLOCKs."""
        ahead = ReadAhead(block=READ_BLOCK)
        if window is not None and window[1] < task.size:
            low, high = window
            high = min(high + min(max((high - low) // 32, 64 << 10), 1 << 20), task.size)
            ahead = ReadAhead(block=min(max(high - low, 64 << 10), READ_BLOCK_MAX), window=(low, high))

        def source():
            meter.readers.append(open_pinned(task.identity, ahead, patience_s=ctx.patience_s))
            return meter.readers[-1]

        return source

    def _planned(self, task: VideoTask, kind: str, pieces: list[tuple[int, int]], folder: str, ctx: WorkerContext):
        info = self._plan_of(task)
        meter = ByteMeter()
        for first, end in pieces:
            if kind == "frames":
                source = self._source(task, ctx, meter, frames_window(info, first, end))
                poses, result = self.pieces.predict(self.predictor, info, first, end, source=source)
            else:  # SpansUnsound: the driver reads the video in one pass instead
                # The group's bytes in one request, shared by its spans (each opens the video anew).
                shared = self._source(task, ctx, meter, byte_window(info, first, end))()
                poses, result = self.pieces.predict_spans(
                    self.predictor, VideoReader(task.uri, lambda: Borrowed(shared), info), first, end)
                shared.close()
            done = self._write(folder, piece_name(kind, first, end), poses, result, ctx, meter)
            yield replace(done, start=first, stop=end)

    def _sequential(self, task: VideoTask, folder: str, ctx: WorkerContext):
        """One pass over the whole video on a thread; each window's segment is reported as it is written."""
        info, meter = self._plan_of(task), ByteMeter()
        window = ctx.segment_frames
        names = self._cached(folder, ctx, task)
        # Only whole windows of this job's length, on its grid: the last (shorter) one is always redone,
        # and a window of another --segment-frames is not this job's.
        skip = {int(name[:9]) // window for name in names if name[:9].isdigit()
                and name == segment_name(int(name[:9]), int(name[:9]) + window) and int(name[:9]) % window == 0}
        events: queue.Queue = queue.Queue()

        def write(poses, result) -> None:
            events.put(self._write(folder, segment_name(result.start, result.stop), poses, result, ctx, meter))

        def run() -> None:
            try:
                facts, _ = self.pieces.predict_pass(
                    self.predictor, VideoReader(task.uri, self._source(task, ctx, meter), info), window, skip, write)
                events.put(facts)
            except BaseException as exc:  # handed to the generator, which raises it in the actor's thread
                events.put(exc)

        start_thread(run, "posecluster-pass")  # under the job's scope, as the actor's own reads
        while True:
            event = events.get()
            if isinstance(event, BaseException):
                raise event
            if isinstance(event, VideoInfo):
                bounds = [(a, min(a + window, event.frame_count)) for a in range(0, event.frame_count, window)]
                cached = tuple(segment_name(a, b) for a, b in bounds if a // window in skip)
                for start, stop in bounds:
                    if start // window in skip:
                        yield SegmentDone(start, stop, cached=True)
                yield VideoPlanned(event.frame_count, bounds, cached, time.time(), meter.take(), facts=video_facts(event))
                return
            yield event
