"""How a worker predicts and stores a piece of a video, by the model's family: chosen once per worker
from its predictor (`piece_kind`), so the cluster layer never asks which family it runs.

Pose models (single animal, ensembles) predict exactly the piece's frames and store its pose rows
(infer.segments, infer.passes); multi-animal models also read the frames before it that frame-to-frame
linking needs (tracking.warmup_start) and store detections linked into tracklets
(infer.multianimal_segments, infer.multianimal_passes). Each family reads every kind of plan: frame
ranges, spans between a Matroska file's cues, and one pass over a video without an index.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from posecluster.infer.multianimal_passes import predict_animal_pass, predict_animal_spans
from posecluster.infer.multianimal_predictor import MultiAnimalPredictor
from posecluster.infer.multianimal_segments import predict_animal_segment, write_animal_segment
from posecluster.infer.passes import predict_pass, predict_spans
from posecluster.infer.pipeline import predict_segment
from posecluster.infer.segments import write_segment
from posecluster.tracking import warmup_start


@dataclass(frozen=True)
class PieceKind:
    name: str
    first_frame: Callable[[int], int]  # the first frame a piece starting at `start` reads
    predict: Callable  # (predictor, info, start, stop, source=...) -> (payload, SegmentResult)
    write: Callable  # (uri, payload, SegmentResult) -> None, atomic
    first_span: Callable[[int], int]  # the first span a piece of spans from k0 reads (the bytes to fetch)
    predict_spans: Callable  # (predictor, reader, k0, k1) -> (payload, relative SegmentResult)
    predict_pass: Callable  # (predictor, reader, window, skip, write(payload, result)) -> (VideoInfo, RangeResult)


POSES = PieceKind("poses", lambda start: start, predict_segment, write_segment, lambda k0: k0, predict_spans,
                  predict_pass)
# A piece of spans reads the span before its first for its warm-up (two spans where that one holds a
# single frame: fetched beyond the piece's byte window, which only costs requests).
ANIMALS = PieceKind("animals", warmup_start, predict_animal_segment, write_animal_segment,
                    lambda k0: max(k0 - 1, 0), predict_animal_spans, predict_animal_pass)


def piece_kind(predictor) -> PieceKind:
    return ANIMALS if isinstance(predictor, MultiAnimalPredictor) else POSES
