"""Tracking metrics against ground-truth tracks: CLEAR-MOT (MOTA, identity switches) and IDF1.

Both compare predicted tracks (frames, n_pred, K, 2+) with true ones (frames, n_true, K, 2+), NaN where
an animal or a part is absent; an animal is present in a frame when any of its parts has finite x, y.
A prediction and a true animal correspond in a frame when their mean keypoint distance (over the parts
both have) is at most threshold_px.

- CLEAR-MOT (Bernardin & Stiefelhagen 2008): correspondences of the previous frame that still hold are
  kept; the other animals are paired by minimum total distance (Hungarian). A true animal paired with a
  different prediction than the last one it was paired with is an identity switch. MOTA = 1 - (misses +
  false positives + switches) / true animals summed over frames.
- IDF1 (Ristani et al. 2016): true and predicted trajectories are paired one to one for the whole video
  so as to maximise the frames in which the paired animals correspond (IDTP); IDF1 = 2 IDTP / (true
  detections + predicted detections).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

from posecluster.tracking.costs import pose_distances


@dataclass
class TrackingScores:
    frames: int
    true_detections: int  # true animals present, summed over frames
    predicted_detections: int
    misses: int
    false_positives: int
    id_switches: int
    id_switches_per_1000_frames: float
    mota: float
    idtp: int
    idf1: float
    # frames in which every true animal in view corresponds to a prediction (frames with none count)
    complete_frames_fraction: float
    # frames in which the prediction has every one of its individuals
    all_individuals_fraction: float

    def to_dict(self) -> dict:
        return asdict(self)


def _present(tracks: np.ndarray) -> np.ndarray:
    return np.isfinite(tracks[..., 0]) & np.isfinite(tracks[..., 1])


def tracking_scores(predicted: np.ndarray, truth: np.ndarray, threshold_px: float) -> TrackingScores:
    if predicted.shape[0] != truth.shape[0] or predicted.shape[2] != truth.shape[2]:
        raise ValueError(f"predicted {predicted.shape} and true {truth.shape} tracks differ in frames or body parts")
    n_frames, n_pred, n_true = predicted.shape[0], predicted.shape[1], truth.shape[1]
    pred_parts, true_parts = _present(predicted), _present(truth)
    pred_here, true_here = pred_parts.any(axis=2), true_parts.any(axis=2)
    corresponds = np.zeros((n_true, n_pred), np.int64)  # frames in which true i and predicted j correspond
    last_match = np.full(n_true, -1)  # the prediction each true animal was last paired with
    previous = {}  # true -> predicted in the frame before
    misses = false_positives = switches = complete = 0
    for f in range(n_frames):
        distance = pose_distances(truth[f], true_parts[f], predicted[f], pred_parts[f])
        close = distance <= threshold_px
        corresponds += close
        pairs = {g: p for g, p in previous.items() if close[g, p]}
        free_true = [g for g in np.flatnonzero(true_here[f]) if g not in pairs]
        taken = set(pairs.values())
        free_pred = [p for p in np.flatnonzero(pred_here[f]) if p not in taken]
        if free_true and free_pred:
            sub = distance[np.ix_(free_true, free_pred)]
            rows, cols = linear_sum_assignment(np.where(sub <= threshold_px, sub, 1e12))
            for r, c in zip(rows, cols):
                if sub[r, c] <= threshold_px:
                    pairs[int(free_true[r])] = int(free_pred[c])
        for g, p in pairs.items():
            if last_match[g] >= 0 and last_match[g] != p:
                switches += 1
            last_match[g] = p
        misses += int(true_here[f].sum()) - len(pairs)
        false_positives += int(pred_here[f].sum()) - len(pairs)
        complete += len(pairs) == int(true_here[f].sum())
        previous = pairs
    true_total, pred_total = int(true_here.sum()), int(pred_here.sum())
    rows, cols = linear_sum_assignment(-corresponds)
    idtp = int(corresponds[rows, cols].sum())
    return TrackingScores(
        frames=n_frames, true_detections=true_total, predicted_detections=pred_total, misses=misses,
        false_positives=false_positives, id_switches=switches,
        id_switches_per_1000_frames=1000.0 * switches / n_frames if n_frames else 0.0,
        mota=1.0 - (misses + false_positives + switches) / true_total if true_total else float("nan"),
        idtp=idtp, idf1=2.0 * idtp / (true_total + pred_total) if true_total + pred_total else float("nan"),
        complete_frames_fraction=complete / n_frames if n_frames else float("nan"),
        all_individuals_fraction=float(pred_here.all(axis=1).mean()) if n_frames else float("nan"),
    )
