"""Multi-animal pieces of the videos whose frames cannot be cut into ranges in advance (infer.passes says
which): each piece reads, predicts and links its own frames only, as a planned segment does
(infer.multianimal_segments: the join links across its cuts), so it stores exactly what a sharded read of
the same frames would, and the joined tracks are a single process's.

- spans (a Matroska file's cues): `predict_animal_spans` reads spans k0..k1 as one piece numbered from its
  own first frame; the join places it after the pieces before it (relative).
- one pass (no index): `predict_animal_pass` decodes the whole video once and links a window of `window`
  frames at a time: flat in video length. A window already written is decoded, not predicted.

Runs without Ray; posecluster.cluster places these calls on workers.
"""

from __future__ import annotations

import time
from dataclasses import asdict
from typing import Callable

from posecluster import storage
from posecluster.data.video import DecodeReport, VideoReader
from posecluster.errors import InputError
from posecluster.infer.multianimal_predictor import AnimalFrame, MultiAnimalPredictor
from posecluster.infer.multianimal_segments import link_frames
from posecluster.infer.multianimal_store import AnimalSegment
from posecluster.infer.passes import read_spans
from posecluster.infer.pipeline import OPEN_END, predict_frames
from posecluster.infer.segments import SegmentResult, video_facts


def predict_animal_spans(predictor: MultiAnimalPredictor, reader: VideoReader, k0: int,
                         k1: int) -> tuple[AnimalSegment, SegmentResult]:
    """Spans [k0, k1) of a "spans" plan linked into tracklets, as one relative piece (frames counted from
    its first); the join places it."""
    frames: dict[int, AnimalFrame] = {}

    def frames_of(report: DecodeReport, threads: int):
        yield from read_spans(reader, k0, k1, report, threads)

    def sink(first: int, chunk: list[AnimalFrame]) -> None:
        frames.update(zip(range(first, first + len(chunk)), chunk))

    ranged = predict_frames(predictor, reader.uri, frames_of, 0, OPEN_END, sink)
    stop = max(ranged.covered, 0)  # -1: the read never learnt a frame count
    if stop == 0:
        raise InputError(reader.uri, f"spans {k0} to {k1 - 1} hold no frame")
    segment = link_frames(predictor, [frames.get(i) for i in range(stop)], 0, stop, storage.redact_uri(reader.uri))
    return segment, SegmentResult(video_uri=storage.redact_uri(reader.uri), start=0, stop=stop, relative=True,
                                  video=video_facts(reader.plan()), **asdict(ranged))


WindowWriter = Callable[[AnimalSegment, SegmentResult], None]


class _AnimalWindows:
    """The model's output of a one-pass read gathered window by window; each full window is linked and
    handed to `write` unless it is in `skip`."""

    def __init__(self, predictor: MultiAnimalPredictor, uri: str, window: int, skip: set[int], write: WindowWriter):
        self.predictor, self.uri, self.window, self.skip, self.write = predictor, uri, window, skip, write
        self.report = DecodeReport()  # the pass's report, once it started (sizes and decoder errors so far)
        self.start = 0
        self.own: list[AnimalFrame | None] = [None] * window
        self.since = time.perf_counter()  # when the window began: a window's time is its share of the pass

    def __call__(self, first: int, chunk: list[AnimalFrame]) -> None:
        for offset, frame in enumerate(chunk):
            index = first + offset
            while index >= self.start + self.window:
                self._flush(self.start + self.window)
            self.own[index - self.start] = frame

    def _flush(self, stop: int) -> None:
        start, own = self.start, self.own[: stop - self.start]
        if start // self.window not in self.skip:
            segment = link_frames(self.predictor, own, start, stop, storage.redact_uri(self.uri))
            delivered = sum(frame is not None for frame in own)
            why = self.report.errors[-1] if self.report.errors else "frame not produced by the decoder"
            missing = {start + i: why for i, frame in enumerate(own) if frame is None}
            sizes = [list(size) for size in self.report.sizes if start <= size[0] < stop]
            earlier = [list(size) for size in self.report.sizes if size[0] < start]
            if earlier and (not sizes or sizes[0][0] > start):
                sizes.insert(0, [start, *earlier[-1][1:]])  # the size in effect when the window begins
            result = SegmentResult(video_uri=storage.redact_uri(self.uri), start=start, stop=stop, frames=delivered,
                                   missing=missing, sizes=sizes, seconds=time.perf_counter() - self.since,
                                   precision=self.predictor.precision)
            self.write(segment, result)
        self.since = time.perf_counter()
        self.start = stop
        self.own = [None] * self.window

    def finish(self, total: int) -> None:
        while self.start < total:
            self._flush(min(self.start + self.window, total))


def predict_animal_pass(predictor: MultiAnimalPredictor, reader: VideoReader, window: int, skip: set[int],
                        write: WindowWriter):
    """Decode the whole video once, handing `write(segment, result)` the linked tracklets of one window of
    `window` frames at a time, in order (the last one shorter), except windows whose number is in `skip`
    (already written). Returns the video's facts after the pass (reader.info) and the read's RangeResult."""
    windows = _AnimalWindows(predictor, reader.uri, window, skip, write)

    def frames_of(report: DecodeReport, threads: int):
        windows.report = report
        for index, frame in reader.read_all(report, threads=threads):
            if index // window not in skip:
                yield index, frame

    result = predict_frames(predictor, reader.uri, frames_of, 0, OPEN_END, windows)
    windows.finish(reader.info.frame_count)
    return reader.info, result
