"""Decode on CPU threads while the model runs: a bounded queue between a decoding thread and inference.

Memory is bounded by `queue_batches` batches of frames whatever the video length; PyAV releases the GIL
while decoding and converting, so decoding overlaps the forward pass.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import asdict
from typing import IO, Callable, Iterator, TypeVar

import numpy as np
import torch

from posecluster import metrics, storage
from posecluster.data.video import DecodeReport, VideoInfo, read_frames
from posecluster.errors import InputError
from posecluster.infer.predictor import Predictor
from posecluster.infer.results import RangeResult
from posecluster.infer.segments import SegmentResult, video_facts
from posecluster.infer.verify import FallBack, VideoCheck, wants_check
from posecluster.storage.scope import in_context

_DONE = object()
OPEN_END = 1 << 62  # the stop of a read whose length is learnt as it goes (one pass, spans)
log = logging.getLogger(__name__)


def consecutive_runs(indices: np.ndarray) -> list[tuple[int, int]]:
    """[(start offset, end offset)) of runs of consecutive frame indices."""
    if len(indices) == 0:
        return []
    breaks = np.flatnonzero(np.diff(indices) != 1) + 1
    edges = [0, *breaks.tolist(), len(indices)]
    return list(zip(edges[:-1], edges[1:]))


Frames = Callable[[DecodeReport, int], Iterator[tuple[int, np.ndarray]]]  # (report, threads) -> (index, frame)


def _produce(frames_of: Frames, batch_size, threads, report, out: queue.Queue, stop_event) -> None:
    try:
        indices, frames = [], []
        for index, frame in frames_of(report, threads):
            if stop_event.is_set():
                return
            if frames and frame.shape != frames[0].shape:  # a batch never mixes frame sizes
                out.put((np.asarray(indices), np.stack(frames)))
                indices, frames = [], []
            indices.append(index)
            frames.append(frame)
            if len(frames) == batch_size:
                out.put((np.asarray(indices), np.stack(frames)))
                indices, frames = [], []
        if frames:
            out.put((np.asarray(indices), np.stack(frames)))
        out.put(_DONE)
    except BaseException as exc:  # handed to the consumer, which re-raises it in its own thread
        out.put(exc)


def predict_range(
    predictor: Predictor,
    info: VideoInfo,
    start: int,
    stop: int,
    sink: Callable[[int, np.ndarray], None],
    on_batch: Callable[[int], None] | None = None,
    source: Callable[[], IO] | None = None,
    fallen: dict | None = None,
) -> RangeResult:
    """Predict frames [start, stop) of a video; `sink(first_frame, poses)` gets consecutive runs in order."""
    return predict_frames(predictor, info.uri, lambda report, threads: read_frames(
        info, start, stop, report, threads=threads, source=source), start, stop, sink, on_batch, fallen)


T = TypeVar("T")


def with_fallback(attempt: Callable[[dict | None], T]) -> T:
    """attempt(None): predict a range (auto's reduced path checked on it, infer.verify); where its sample
    left the tolerance after poses were handed on (FallBack), attempt(record): the whole range again in
    fp32, the first attempt's findings recorded. The attempt starts its outputs afresh each time."""
    try:
        return attempt(None)
    except FallBack as fell:
        return attempt(fell.record)


def predict_frames(predictor: Predictor, uri: str, frames_of: Frames, start: int, stop: int,
                   sink: Callable[[int, np.ndarray], None], on_batch: Callable[[int], None] | None = None,
                   fallen: dict | None = None, check: VideoCheck | None = None) -> RangeResult:
    """Predict the frames `frames_of(report, threads)` yields (ascending indices in [start, stop): a range,
    a span, a whole video in one pass) on a decoding thread while the model runs. auto's reduced path is
    checked as it goes (infer.verify: raises FallBack); `fallen`: this is the fp32 rerun of a range whose
    check failed."""
    cfg = predictor.infer
    if check is None and wants_check(predictor):  # `check`: the caller's own (a one-pass read's windows see it)
        check = VideoCheck(predictor, start, fallen, frames=None if stop >= OPEN_END else stop - start)
    report = DecodeReport()
    batches: queue.Queue = queue.Queue(maxsize=cfg.queue_batches)
    stop_event = threading.Event()
    producer = threading.Thread(
        target=in_context(_produce),  # reads under the job's scope (storage/scope.py)
        args=(frames_of, predictor.batch_size, cfg.decode_threads, report, batches, stop_event),
        name="posecluster-decode",
        daemon=True,
    )
    result = RangeResult(precision=predictor.precision)
    rechecked_before = predictor.rechecked_frames
    expected_after = start - 1  # the last frame handed to the sink
    exporter = metrics.current()
    began = time.perf_counter()
    producer.start()
    try:
        while True:
            exporter.set(metrics.QUEUE_DEPTH, batches.qsize())
            waited = time.perf_counter()
            item = batches.get()
            wait = time.perf_counter() - waited
            result.decode_wait_s += wait
            if item is _DONE:
                break
            if isinstance(item, BaseException):
                raise item
            indices, frames = item
            out_of_order = np.flatnonzero(np.diff(np.concatenate([[expected_after], indices])) <= 0)
            if len(out_of_order) or indices[-1] >= stop:
                bad = int(indices[out_of_order[0]]) if len(out_of_order) else int(indices[-1])
                raise InputError(uri, f"the reader produced frames out of order or twice, or outside "
                                 f"[{start}, {stop}); refusing to write rows for them", frame=bad)
            expected_after = int(indices[-1])
            computed = time.perf_counter()
            poses = _predict(predictor, check, uri, indices, frames)
            spent = time.perf_counter() - computed
            result.infer_s += spent
            exporter.observe(metrics.DECODE_WAIT, wait)
            exporter.observe(metrics.INFER_TIME, spent)
            exporter.inc(metrics.FRAMES, len(indices))
            for a, b in consecutive_runs(indices):
                sink(int(indices[a]), poses[a:b])
            result.frames += len(indices)
            if on_batch is not None:
                on_batch(len(indices))
    finally:
        stop_event.set()
        while producer.is_alive():  # unblock a producer waiting on a full queue
            try:
                batches.get_nowait()
            except queue.Empty:
                producer.join(timeout=0.05)
    result.seconds = time.perf_counter() - began
    result.missing = dict(report.missing)
    result.errors = list(report.errors)
    result.sizes = [list(size) for size in report.sizes]
    result.jumps = [list(jump) for jump in report.jumps]
    result.covered = report.frame_count
    result.rechecked = predictor.rechecked_frames - rechecked_before
    if check is not None:
        result.check = check.record()
        result.precision = predictor.precision if check.handed_on else "fp32"
        record = result.check
        mean, flips = record["sample_mean_px"], record["sample_flip_share"]
        log.info("%s from frame %d: auto's %s checked on this video: %d sample frames, mean %s px, %s p-cutoff "
                 "flips; %s; %s", storage.redact_uri(uri), start, record["candidate"], record["sample_frames"],
                 "-" if mean is None else f"{mean:.3f}", "-" if flips is None else f"{100 * flips:.2f}%",
                 record["speed"] or "speed not measured",
                 f"fp32 ({record['why']})" if record["final_path"] == "fp32" else f"kept {record['candidate']}")
    return result


def _predict(predictor: Predictor, check: VideoCheck | None, uri: str, indices: np.ndarray, frames: np.ndarray) -> np.ndarray:
    """The model's poses for a batch; frames it cannot take (a size its layers cannot shrink) are the
    video's fault: an InputError naming the frame, never retried."""
    try:
        return check.predict(indices, frames) if check is not None else predictor.predict(frames)
    except torch.cuda.OutOfMemoryError:
        raise
    except (RuntimeError, ValueError) as exc:
        height, width = frames.shape[1:3]
        raise InputError(uri, f"frames of {width}x{height} pixels cannot be processed by the model ({exc})",
                         frame=int(indices[0])) from None


def predict_segment(predictor: Predictor, info: VideoInfo, start: int, stop: int,
                    on_batch=None, source=None) -> tuple[np.ndarray, SegmentResult]:
    """Poses (stop-start, K, 3) with NaN rows for frames that could not be decoded."""
    # (frames, parts, 3); an ensemble's (frames, members, parts, 3): its join smooths the members.
    poses = np.full((stop - start, *predictor.output_shape), np.nan, dtype=np.float32)

    def sink(first: int, chunk: np.ndarray) -> None:
        poses[first - start : first - start + len(chunk)] = chunk

    def attempt(fallen: dict | None) -> RangeResult:
        poses[:] = np.nan  # a rerun in fp32 starts afresh
        return predict_range(predictor, info, start, stop, sink, on_batch=on_batch, source=source, fallen=fallen)

    ranged = with_fallback(attempt)
    return poses, SegmentResult(video_uri=storage.redact_uri(info.uri), start=start, stop=stop, video=video_facts(info), **asdict(ranged))
