"""Multi-animal pieces of the videos whose frames cannot be cut into ranges in advance (infer.passes says
which): each piece is linked from the detections of the tracking.LINK_WINDOW frames before its first, as
a planned segment is (infer.multianimal_segments), so it stores exactly what a sharded read of the same
frames would, and the joined tracks are a single process's.

- spans (a Matroska file's cues): `predict_animal_spans` reads spans k0..k1 after the last LINK_WINDOW
  frames of the spans before them (the span before k0, decoded whole, only its last frames through the
  model); the piece is numbered from its warm-up's first frame and placed by the join (relative).
- one pass (no index): `predict_animal_pass` decodes the whole video once and links a window of
  `window` frames at a time, keeping the last LINK_WINDOW frames' detections of the window before in
  memory: flat in video length. A window already written is decoded, not predicted, except its last
  LINK_WINDOW frames where the window after it is not written yet (they are that window's warm-up).

Runs without Ray; posecluster.cluster places these calls on workers.
"""

from __future__ import annotations

import time
from typing import Callable

from posecluster import storage
from posecluster.data.video import DecodeReport, VideoReader
from posecluster.errors import InputError
from posecluster.infer.multianimal_predictor import AnimalFrame, MultiAnimalPredictor
from posecluster.infer.multianimal_segments import AnimalSegment, link_frames, own_frames
from posecluster.infer.passes import read_spans
from posecluster.infer.pipeline import OPEN_END, predict_frames
from posecluster.infer.segments import SegmentResult, video_facts
from posecluster.tracking import LINK_WINDOW, warmup_start



def _span_tail(reader: VideoReader, k: int, wanted: int, threads: int) -> tuple[int, list[tuple[int, object]]]:
    """Span k decoded whole: its frame count and its decoded frames among the last `wanted` (local
    indices). Raises SpansUnsound (from the reader) where span k cannot be read on its own."""
    report, tail = DecodeReport(), []
    for index, frame in reader.read_span(k, report, threads=threads):
        tail = (tail + [(index, frame)])[-wanted:]
    return report.frame_count, [(i, f) for i, f in tail if i >= report.frame_count - wanted]


def predict_animal_spans(predictor: MultiAnimalPredictor, reader: VideoReader, k0: int,
                         k1: int) -> tuple[AnimalSegment, SegmentResult]:
    """Spans [k0, k1) of a "spans" plan linked into tracklets, as one relative piece: its own frames are
    numbered from w = the warm-up frames read before them (LINK_WINDOW, fewer only at the video's start),
    so [w, w + its frames) becomes [first, ...) when the join places it."""
    frames: dict[int, AnimalFrame] = {}
    warm_count = 0  # w, known once the spans before k0 are read

    def frames_of(report: DecodeReport, threads: int):
        nonlocal warm_count
        tails, count, k = [], 0, k0  # spans before k0, read back until LINK_WINDOW frames lie before
        while count < LINK_WINDOW and k > 0:
            k -= 1
            size, tail = _span_tail(reader, k, LINK_WINDOW - count, threads)
            taken = min(size, LINK_WINDOW - count)  # this span's last `taken` frames are warm-up frames
            tails.insert(0, (size, taken, tail))
            count += taken
        warm_count, offset = count, 0
        for size, taken, tail in tails:  # warm-up frames, numbered 0..w-1: only these go through the model
            for index, frame in tail:
                yield offset + index - (size - taken), frame
            offset += taken
        yield from read_spans(reader, k0, k1, report, threads, offset)

    def sink(first: int, chunk: list[AnimalFrame]) -> None:
        frames.update(zip(range(first, first + len(chunk)), chunk))

    ranged = predict_frames(predictor, reader.uri, frames_of, 0, OPEN_END, sink)
    stop = max(ranged.covered, warm_count)
    if stop == warm_count:
        raise InputError(reader.uri, f"spans {k0} to {k1 - 1} hold no frame")
    segment, delivered = link_frames(predictor, [frames.get(i) for i in range(stop)], warm_count, stop,
                                     storage.redact_uri(reader.uri))
    return segment, SegmentResult(video_uri=storage.redact_uri(reader.uri), start=warm_count, stop=stop,
                                  relative=True, video=video_facts(reader.plan()),
                                  **own_frames(ranged, warm_count, delivered))


WindowWriter = Callable[[AnimalSegment, SegmentResult], None]


class _AnimalWindows:
    """The model's output of a one-pass read gathered window by window; each full window is linked (from
    the last LINK_WINDOW frames of the window before) and handed to `write` unless it is in `skip`."""

    def __init__(self, predictor: MultiAnimalPredictor, uri: str, window: int, skip: set[int], write: WindowWriter):
        self.predictor, self.uri, self.window, self.skip, self.write = predictor, uri, window, skip, write
        self.report = DecodeReport()  # the pass's report, once it started (sizes and decoder errors so far)
        self.start = 0
        self.warm: list[AnimalFrame | None] = []  # frames warmup_start(start)..start-1 (None: not decoded)
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
            segment, delivered = link_frames(self.predictor, self.warm + own, start, stop, storage.redact_uri(self.uri))
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
        self.warm = (self.warm + own)[-(stop - warmup_start(stop)):]
        self.since = time.perf_counter()
        self.start = stop
        self.own = [None] * self.window

    def finish(self, total: int) -> None:
        while self.start < total:
            self._flush(min(self.start + self.window, total))


def needed(index: int, window: int, skip: set[int]) -> bool:
    """Whether a one-pass read predicts frame `index`: its window is to be written, or it is among the
    LINK_WINDOW frames before a window that is."""
    return any((index + ahead) // window not in skip for ahead in range(LINK_WINDOW + 1))


def predict_animal_pass(predictor: MultiAnimalPredictor, reader: VideoReader, window: int, skip: set[int],
                        write: WindowWriter):
    """Decode the whole video once, handing `write(segment, result)` the linked tracklets of one window of
    `window` frames at a time, in order (the last one shorter), except windows whose number is in `skip`
    (already written). Returns the video's facts after the pass (reader.info) and the read's RangeResult."""
    windows = _AnimalWindows(predictor, reader.uri, window, skip, write)

    def frames_of(report: DecodeReport, threads: int):
        windows.report = report
        for index, frame in reader.read_all(report, threads=threads):
            if needed(index, window, skip):
                yield index, frame

    result = predict_frames(predictor, reader.uri, frames_of, 0, OPEN_END, windows)
    windows.finish(reader.info.frame_count)
    return reader.info, result
