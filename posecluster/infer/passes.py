"""Predicting the videos whose frames cannot be cut into ranges in advance, per the reader's plan:

- spans (a Matroska file's cues list keyframes, not frames): `predict_spans` predicts spans k0..k1 as one
  piece numbered from its own first frame; the join places it after the pieces before it;
- one pass (no index: MPEG-TS/PS, Matroska without cues, raw streams): `predict_pass` decodes the whole
  video once, numbering frames as it goes, and hands over a window of `window` frames at a time (frames
  k*window .. (k+1)*window), so memory stays flat in video length and a pass that is interrupted and run
  again skips the inference of the windows it already wrote (their frames are still decoded: numbering
  needs every frame from the top).

Runs without Ray; posecluster.cluster places these calls on workers.
"""

from __future__ import annotations

import time
from dataclasses import asdict
from typing import Callable

import numpy as np

from posecluster import storage
from posecluster.data.video import DecodeReport, VideoReader
from posecluster.infer.pipeline import OPEN_END, predict_frames, with_fallback
from posecluster.infer.predictor import Predictor
from posecluster.infer.results import RangeResult
from posecluster.infer.segments import SegmentResult, video_facts
from posecluster.infer.verify import VideoCheck, wants_check


def read_spans(reader: VideoReader, k0: int, k1: int, report: DecodeReport, threads: int, offset: int = 0):
    """(index, frame) of spans [k0, k1), numbered on from `offset`; what each span's decode found goes into
    `report` at those numbers, and report.frame_count ends as the number after the last frame."""
    for k in range(k0, k1):
        span = DecodeReport()
        for index, frame in reader.read_span(k, span, threads=threads):
            yield offset + index, frame
        report.missing.update({offset + i: why for i, why in span.missing.items()})
        report.errors += span.errors
        report.sizes += [(offset + first, *size) for first, *size in span.sizes]
        report.jumps += [(offset + first, *rest) for first, *rest in span.jumps]
        offset += span.frame_count
    report.frame_count = offset


def predict_spans(predictor: Predictor, reader: VideoReader, k0: int, k1: int) -> tuple[np.ndarray, SegmentResult]:
    """Poses of spans [k0, k1) of a "spans" plan as one relative piece (frames counted from its first).
    SpansUnsound (from the reader) means this video must be read in one pass instead."""
    chunks: list[tuple[int, np.ndarray]] = []

    def frames_of(report: DecodeReport, threads: int):
        yield from read_spans(reader, k0, k1, report, threads)

    def attempt(fallen: dict | None) -> RangeResult:
        chunks.clear()  # a rerun in fp32 starts afresh
        return predict_frames(predictor, reader.uri, frames_of, 0, OPEN_END,
                              lambda first, poses: chunks.append((first, poses)), fallen=fallen)

    result = with_fallback(attempt)
    count = max(result.covered, 0)
    poses = np.full((count, *predictor.output_shape), np.nan, dtype=np.float32)
    for first, chunk in chunks:
        poses[first : first + len(chunk)] = chunk
    plan = reader.plan()
    return poses, SegmentResult(video_uri=storage.redact_uri(reader.uri), start=0, stop=count, relative=True,
                                video=video_facts(plan), **asdict(result))


WindowWriter = Callable[[np.ndarray, SegmentResult], None]


class _Windows:
    """Rows of a one-pass read gathered window by window; each full window is handed to `write`."""

    def __init__(self, predictor: Predictor, uri: str, window: int, skip: set[int], write: WindowWriter,
                 check: VideoCheck | None = None):
        self.predictor, self.uri, self.window, self.skip, self.write = predictor, uri, window, skip, write
        self.check = check
        self.report = DecodeReport()  # the pass's report, once it started (sizes and decoder errors so far)
        self.start = 0
        self.poses = self._empty()
        self.delivered = np.zeros(window, dtype=bool)
        self.since = time.perf_counter()  # when the window began: a window's time is its share of the pass

    def _empty(self) -> np.ndarray:
        return np.full((self.window, *self.predictor.output_shape), np.nan, dtype=np.float32)

    def __call__(self, first: int, chunk: np.ndarray) -> None:
        for offset in range(len(chunk)):
            index = first + offset
            while index >= self.start + self.window:
                self._flush(self.start + self.window)
            self.poses[index - self.start] = chunk[offset]
            self.delivered[index - self.start] = True

    def _flush(self, stop: int) -> None:
        start, count = self.start, stop - self.start
        if start // self.window not in self.skip:
            why = self.report.errors[-1] if self.report.errors else "frame not produced by the decoder"
            missing = {start + int(i): why for i in np.flatnonzero(~self.delivered[:count])}
            sizes = [list(size) for size in self.report.sizes if start <= size[0] < stop]
            earlier = [list(size) for size in self.report.sizes if size[0] < start]
            if earlier and (not sizes or sizes[0][0] > start):
                sizes.insert(0, [start, *earlier[-1][1:]])  # the size in effect when the window begins
            # The pass's check so far (its fp32 rerun rewrites every window: infer.verify).
            check = {**self.check.record(), "window": True} if self.check is not None else {}
            result = SegmentResult(video_uri=storage.redact_uri(self.uri), start=start, stop=stop,
                                   frames=int(self.delivered[:count].sum()), missing=missing, sizes=sizes,
                                   seconds=time.perf_counter() - self.since, check=check,
                                   precision=self.check.path if self.check is not None else self.predictor.precision)
            self.write(self.poses[:count].copy(), result)
        self.since = time.perf_counter()
        self.start = stop
        self.poses = self._empty()
        self.delivered[:] = False

    def finish(self, total: int) -> None:
        while self.start < total:
            self._flush(min(self.start + self.window, total))


def predict_pass(predictor: Predictor, reader: VideoReader, window: int, skip: set[int], write: WindowWriter):
    """Decode the whole video once and predict it, handing `write(poses, result)` one window of `window`
    frames at a time, in order (the last one shorter), except windows whose number is in `skip` (already
    written: decoded, not predicted). Returns the video's facts after the pass (reader.info: frame count,
    sizes, clock jumps) and the read's RangeResult."""
    def attempt(fallen: dict | None):
        check = VideoCheck(predictor, 0, fallen) if wants_check(predictor) else None
        windows = _Windows(predictor, reader.uri, window, skip, write, check)

        def frames_of(report: DecodeReport, threads: int):
            windows.report = report
            for index, frame in reader.read_all(report, threads=threads):
                if index // window not in skip:
                    yield index, frame

        result = predict_frames(predictor, reader.uri, frames_of, 0, OPEN_END, windows, fallen=fallen, check=check)
        windows.finish(reader.info.frame_count)
        return result

    # A fallback re-runs the whole pass in fp32 and rewrites the windows written so far (each whole).
    result = with_fallback(attempt)
    return reader.info, result
