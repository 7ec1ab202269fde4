"""How a worker predicts and stores a piece of a video, by the model's family: chosen once per worker
from its predictor (`piece_kind`), so the cluster layer never asks which family it runs.

Pose models (single animal, ensembles) predict exactly the piece's frames and store its pose rows
(infer.segments); multi-animal models also read the frames before it that frame-to-frame linking needs
(tracking.warmup_start) and store detections linked into tracklets (infer.multianimal_segments).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from posecluster.infer.multianimal_predictor import MultiAnimalPredictor
from posecluster.infer.multianimal_segments import predict_animal_segment, write_animal_segment
from posecluster.infer.pipeline import predict_segment
from posecluster.infer.segments import write_segment
from posecluster.tracking import warmup_start


@dataclass(frozen=True)
class PieceKind:
    name: str
    first_frame: Callable[[int], int]  # the first frame a piece starting at `start` reads
    predict: Callable  # (predictor, info, start, stop, source=...) -> (payload, SegmentResult)
    write: Callable  # (uri, payload, SegmentResult) -> None, atomic
    # Whether pieces whose place in the video is known only once read (a Matroska file's spans, the
    # windows of a one-pass read) can be predicted: linking needs the frames before a piece's first.
    unplaced_pieces: bool


POSES = PieceKind("poses", lambda start: start, predict_segment, write_segment, unplaced_pieces=True)
ANIMALS = PieceKind("animals", warmup_start, predict_animal_segment, write_animal_segment, unplaced_pieces=False)


def piece_kind(predictor) -> PieceKind:
    return ANIMALS if isinstance(predictor, MultiAnimalPredictor) else POSES
