"""How a worker predicts and stores a piece of a video, by the model's family: chosen once per worker
from its predictor (`piece_kind`), so the cluster layer never asks which family it runs.

Every family reads and predicts exactly the piece's frames. Pose models (single animal, ensembles) store
its pose rows (infer.segments, infer.passes); multi-animal models store its detections linked into
tracklets, with the detections at its edges that the join links across cuts (infer.multianimal_segments,
infer.multianimal_passes). Each family reads every kind of plan: frame
ranges, spans between a Matroska file's cues, and one pass over a video without an index.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from posecluster.infer.multianimal_passes import predict_animal_pass, predict_animal_spans
from posecluster.infer.multianimal_predictor import MultiAnimalPredictor
from posecluster.infer.multianimal_segments import predict_animal_segment
from posecluster.infer.multianimal_store import write_animal_segment
from posecluster.infer.passes import predict_pass, predict_spans
from posecluster.infer.pipeline import predict_segment
from posecluster.infer.segments import write_segment


@dataclass(frozen=True)
class PieceKind:
    name: str
    predict: Callable  # (predictor, info, start, stop, source=...) -> (payload, SegmentResult)
    write: Callable  # (uri, payload, SegmentResult) -> None, atomic
    predict_spans: Callable  # (predictor, reader, k0, k1) -> (payload, relative SegmentResult)
    predict_pass: Callable  # (predictor, reader, window, skip, write(payload, result)) -> (VideoInfo, RangeResult)


POSES = PieceKind("poses", predict_segment, write_segment, predict_spans, predict_pass)
ANIMALS = PieceKind("animals", predict_animal_segment, write_animal_segment, predict_animal_spans,
                    predict_animal_pass)


def piece_kind(predictor) -> PieceKind:
    return ANIMALS if isinstance(predictor, MultiAnimalPredictor) else POSES
