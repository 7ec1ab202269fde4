"""Multi-animal pose-estimation metrics as DeepLabCut 3.0 reports them, on arrays (no model, no files).

Per image, ground truth is (n_individuals, K, 2) in pixels, NaN where unlabeled (an individual entirely
NaN is absent); predictions are (n, K, 3) x, y, likelihood (NaN for a missing part) with an assembly
score (n,) per animal.

- Error ("rmse" in DeepLabCut, which is the mean Euclidean distance, not a root mean square): predicted
  animals are matched to labeled ones, then the distance of every labeled part of a matched pair counts,
  with and without the p-cutoff, overall and per body part. Unmatched predictions and labels do not count
  (they show in mAP/mAR). Matching as DeepLabCut 3.0 (core/metrics): predictions in rank order each
  take the labeled animal of highest OKS if that one is still free and its OKS > 0 (DeepLabCut fixes
  sigma 0.1 here; we use the configured sigma, 0.1 by default); or Hungarian on mean keypoint distance
  over the parts both have (matching="distance"). Rank: the mean part likelihood, as DeepLabCut 3.0
  (rank_by="likelihood"), or the assembly score (rank_by="score", as DeepLabCut 2's evaluate_assembly).
- mAP / mAR (COCO keypoint evaluation as DeepLabCut 3.0 runs it): OKS = mean over the labeled parts of
  exp(-d^2 / (2 area (2 sigma)^2)), area = width x height of the labeled parts' bounding box (plus a
  margin); animals with fewer than two labeled (or predicted) parts are left out. At each OKS threshold
  0.50:0.05:0.95 predictions are matched greedily in rank order, each to the animal of highest OKS (not
  to a second best when that one is taken: DeepLabCut's rule); precision is made monotone and read at
  101 recall levels; mAP is the mean over thresholds and recall levels, mAR the mean final recall.
- Assembly purity (maDLC, Lauer et al. 2022; DeepLabCut's crossvalutils): on images with two or more
  labeled animals, each labeled keypoint is paired with a predicted keypoint; an assembled animal's purity
  counts the keypoints it holds that belong to its majority labeled animal; an image's purity is that sum
  over assembled animals divided by the paired keypoints; the reported purity is the mean over images.
  DeepLabCut pairs each label with the nearest predicted keypoint of any body part; here a label pairs
  only with a keypoint of its own body part (Hungarian on distance per part), so a nose never counts
  as holding a tail. The unassembled fraction is the share of labeled keypoints left unpaired.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
from scipy.optimize import linear_sum_assignment

from posecluster.tracking.costs import pose_distances

OKS_THRESHOLDS = np.linspace(0.5, 0.95, 10)
RECALL_LEVELS = np.linspace(0.0, 1.0, 101)
_MIN_OKS_FOR_ERROR = 1e-6  # DeepLabCut 3.0: a prediction with (almost) no overlap is not matched for the error
_MATCHINGS = ("oks", "distance")
_RANKINGS = ("likelihood", "score")


@dataclass(frozen=True)
class MultiAnimalMetricsConfig:
    pcutoff: float = 0.6
    # one sigma for every part as DeepLabCut 3.0 (0.1), or one per body part
    oks_sigma: float | tuple[float, ...] = 0.1
    oks_margin_px: float = 0.0  # added on each side of the labeled parts' box for the OKS area
    # "oks": DeepLabCut 3.0's greedy OKS matching for the error; "distance": Hungarian on mean distance
    matching: str = "oks"
    # "likelihood": rank by the mean part likelihood (DeepLabCut 3.0); "score": by the assembly score
    rank_by: str = "likelihood"

    def __post_init__(self):
        if self.matching not in _MATCHINGS:
            raise ValueError(f"matching must be one of {_MATCHINGS}, not {self.matching!r}")
        if self.rank_by not in _RANKINGS:
            raise ValueError(f"rank_by must be one of {_RANKINGS}, not {self.rank_by!r}")


@dataclass
class MultiAnimalScores:
    images: int
    labeled_animals: int  # labeled animals with at least one part, summed over images
    predicted_animals: int  # predicted animals with at least one part
    matched_animals: int  # pairs whose parts count for the error
    error_px: float
    error_pcutoff_px: float
    pcutoff: float
    per_bodypart: dict[str, dict[str, float]]  # part -> {"error_px", "error_pcutoff_px"}
    map: float  # 0..1 (DeepLabCut prints 100 x this)
    mar: float
    purity: float
    unassembled_fraction: float
    purity_images: int  # images with two or more labeled animals, over which purity is averaged
    settings: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        """For the evaluation JSON: NaN (nothing to average) becomes null, which every JSON reader takes."""
        return _finite_or_none(asdict(self))

    def describe(self) -> str:
        return (
            f"mAP {_percent(self.map)} / mAR {_percent(self.mar)} (OKS, sigma {self.settings.get('oks_sigma')}); "
            f"error {_px(self.error_px)}, with p-cutoff {self.pcutoff}: {_px(self.error_pcutoff_px)} "
            f"({self.matched_animals} of {self.labeled_animals} labeled animals matched, "
            f"{self.predicted_animals} predicted, {self.images} images); "
            f"purity {_fraction(self.purity)}, unassembled {_fraction(self.unassembled_fraction)} "
            f"over {self.purity_images} images with 2+ animals"
        )


def multianimal_scores(
    truth: Sequence[np.ndarray],
    poses: Sequence[np.ndarray],
    scores: Sequence[np.ndarray],
    bodyparts: Sequence[str],
    config: MultiAnimalMetricsConfig = MultiAnimalMetricsConfig(),
) -> MultiAnimalScores:
    """Error, mAP/mAR and purity over a set of images (e.g. the test split), one list entry per image."""
    if not len(truth) == len(poses) == len(scores):
        raise ValueError(f"{len(truth)} labeled images but {len(poses)} predicted and {len(scores)} scored")
    images = [_checked(i, t, p, s, len(bodyparts)) for i, (t, p, s) in enumerate(zip(truth, poses, scores))]
    sigma = _sigma(config.oks_sigma, len(bodyparts))
    ranked = [_ranked(t, p, _rank_keys(p, s, config.rank_by)) for t, p, s in images]

    errors, likelihoods, matched = [], [], 0
    for t, p, _ in ranked:
        t_used, p_used = t[_has_parts(t, 1)], p[_has_parts(p, 1)]
        for pi, ti in _match_for_error(t_used, p_used, sigma, config):
            errors.append(np.hypot(*(p_used[pi, :, :2] - t_used[ti]).T))
            likelihoods.append(p_used[pi, :, 2])
            matched += 1
    errors = np.array(errors).reshape(-1, len(bodyparts))
    likelihoods = np.array(likelihoods).reshape(-1, len(bodyparts))
    confident = np.where(likelihoods >= config.pcutoff, errors, np.nan)
    per_part = {
        part: {"error_px": _mean(errors[:, k]), "error_pcutoff_px": _mean(confident[:, k])}
        for k, part in enumerate(bodyparts)
    }
    mean_ap, mean_ar = average_precision(ranked, sigma, config.oks_margin_px)
    purity, unassembled, purity_images = assembly_purity([t for t, _, _ in images], [p for _, p, _ in images])
    return MultiAnimalScores(
        images=len(images),
        labeled_animals=sum(int(_has_parts(t, 1).sum()) for t, _, _ in images),
        predicted_animals=sum(int(_has_parts(p, 1).sum()) for _, p, _ in images),
        matched_animals=matched, error_px=_mean(errors), error_pcutoff_px=_mean(confident),
        pcutoff=config.pcutoff, per_bodypart=per_part, map=mean_ap, mar=mean_ar, purity=purity,
        unassembled_fraction=unassembled, purity_images=purity_images,
        settings={"oks_sigma": config.oks_sigma if np.isscalar(config.oks_sigma) else list(config.oks_sigma),
                  "oks_margin_px": config.oks_margin_px, "matching": config.matching, "rank_by": config.rank_by},
    )


def object_keypoint_similarity(
    predicted_xy: np.ndarray, true_xy: np.ndarray, sigma: np.ndarray, margin: float = 0.0
) -> float:
    """OKS of one predicted animal (K, 2) with one labeled animal (K, 2); NaN when the label has fewer
    than two parts or its box has no area (DeepLabCut's rule: such an animal cannot be matched)."""
    labeled = np.isfinite(true_xy).all(axis=1)
    if labeled.sum() < 2:
        return float("nan")
    true = true_xy[labeled]
    width, height = np.ptp(true, axis=0) + np.spacing(1) + 2 * margin
    area = width * height
    if math.isclose(area, 0.0, abs_tol=1e-8):
        return float("nan")
    squared = ((predicted_xy[labeled] - true) ** 2).sum(axis=1)
    squared[~np.isfinite(squared)] = np.inf  # a part not predicted scores 0
    return float(np.exp(-squared / (2 * area * (2 * sigma[labeled]) ** 2)).mean())


def oks_matrix(truth: np.ndarray, poses: np.ndarray, sigma: np.ndarray, margin: float = 0.0) -> np.ndarray:
    """(n_predicted, n_labeled) OKS of every predicted with every labeled animal of one image."""
    out = np.full((len(poses), len(truth)), np.nan)
    for i, pose in enumerate(poses):
        for j, label in enumerate(truth):
            out[i, j] = object_keypoint_similarity(pose[:, :2], label, sigma, margin)
    return out


def greedy_oks_matches(similarity: np.ndarray, min_oks: float) -> list[tuple[int, int, float]]:
    """(prediction, label, oks) pairs: predictions in row (rank) order each take their best label, unless
    that label is taken or its OKS is below min_oks; then the prediction stays unmatched."""
    pairs, taken = [], set()
    for i, row in enumerate(similarity):
        if np.isnan(row).all():
            continue
        best = int(np.nanargmax(row))
        if best in taken or row[best] < min_oks:
            continue
        taken.add(best)
        pairs.append((i, best, float(row[best])))
    return pairs


def average_precision(
    ranked: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]], sigma: np.ndarray, margin: float = 0.0,
    thresholds: np.ndarray = OKS_THRESHOLDS,
) -> tuple[float, float]:
    """(mAP, mAR) in 0..1 over images of (labels (n, K, 2), predictions (m, K, 3), rank keys (m,)), the
    predictions of each image in descending key order."""
    images, keys, labeled = [], [], 0
    for t, p, key in ranked:
        keep = _has_parts(p, 2)
        t, p = t[_has_parts(t, 2)], p[keep]
        images.append(oks_matrix(t, p, sigma, margin))
        keys.append(key[keep])
        labeled += len(t)
    if labeled == 0:
        return float("nan"), float("nan")
    keys = np.concatenate(keys)
    if len(keys) == 0:
        return 0.0, 0.0
    order = np.argsort(-keys, kind="stable")  # one ranking over all images; ties keep image order
    precisions, recalls = [], []
    for threshold in thresholds:
        oks = np.concatenate([_oks_of_each_prediction(m, threshold) for m in images])[order]
        precision, recall = _precision_at_recall_levels(oks >= threshold, labeled)
        precisions.append(precision)
        recalls.append(recall)
    return float(np.mean(precisions)), float(np.mean(recalls))


def assembly_purity(truth: Sequence[np.ndarray], poses: Sequence[np.ndarray]) -> tuple[float, float, int]:
    """(purity, unassembled fraction, images counted) over the images with two or more labeled animals."""
    purities, unpaired, labeled_keypoints, counted = [], 0, 0, 0
    for t, p in zip(truth, poses):
        t = t[_has_parts(t, 1)]
        if len(t) < 2:
            continue
        counted += 1
        held = np.zeros((len(p), len(t)), np.int64)  # assembled animal x labeled animal: keypoints held
        for k in range(t.shape[1]):
            labels = np.flatnonzero(np.isfinite(t[:, k]).all(axis=1))
            found = np.flatnonzero(np.isfinite(p[:, k, :2]).all(axis=1))
            labeled_keypoints += len(labels)
            if len(labels) == 0 or len(found) == 0:
                unpaired += len(labels)
                continue
            distance = np.linalg.norm(t[labels, None, k] - p[None, found, k, :2], axis=-1)
            rows, cols = linear_sum_assignment(distance)
            np.add.at(held, (found[cols], labels[rows]), 1)
            unpaired += len(labels) - len(rows)
        if held.sum():
            purities.append(held.max(axis=1).sum() / held.sum())
    purity = float(np.mean(purities)) if purities else float("nan")
    return purity, unpaired / labeled_keypoints if labeled_keypoints else float("nan"), counted


def _match_for_error(truth, poses, sigma, config) -> list[tuple[int, int]]:
    if len(truth) == 0 or len(poses) == 0:
        return []
    if config.matching == "oks":
        similarity = oks_matrix(truth, poses, sigma, config.oks_margin_px)
        return [(i, j) for i, j, _ in greedy_oks_matches(similarity, _MIN_OKS_FOR_ERROR)]
    distance = pose_distances(poses, _parts(poses), truth, _parts(truth))
    rows, cols = linear_sum_assignment(np.where(np.isfinite(distance), distance, 1e12))
    return [(int(r), int(c)) for r, c in zip(rows, cols) if np.isfinite(distance[r, c])]


def _oks_of_each_prediction(similarity: np.ndarray, threshold: float) -> np.ndarray:
    oks = np.zeros(len(similarity))  # unmatched predictions are false positives at every threshold
    for i, _, value in greedy_oks_matches(similarity, threshold):
        oks[i] = value
    return oks


def _precision_at_recall_levels(true_positive: np.ndarray, labeled: int) -> tuple[np.ndarray, float]:
    tp = np.cumsum(true_positive)
    fp = np.cumsum(~true_positive)
    recall = tp / labeled
    precision = tp / (tp + fp + np.spacing(1))
    precision = np.maximum.accumulate(precision[::-1])[::-1]  # the best precision at this recall or more
    at = np.searchsorted(recall, RECALL_LEVELS, side="left")
    out = np.zeros(len(RECALL_LEVELS))
    reached = at < len(precision)
    out[reached] = precision[at[reached]]
    return out, float(recall[-1])


def _rank_keys(poses: np.ndarray, scores: np.ndarray, rank_by: str) -> np.ndarray:
    """Higher ranks first; an animal without a key (no likelihood, NaN score) ranks last."""
    if rank_by == "likelihood":
        likelihood = poses[..., 2]
        counted = np.isfinite(likelihood).sum(axis=1)
        return np.where(counted > 0, np.nansum(likelihood, axis=1) / np.maximum(counted, 1), -np.inf)
    return np.where(np.isfinite(scores), scores, -np.inf)


def _ranked(truth: np.ndarray, poses: np.ndarray, keys: np.ndarray):
    order = np.argsort(-keys, kind="stable")
    return truth, poses[order], keys[order]


def _checked(index: int, truth, poses, scores, n_parts: int):
    truth = np.asarray(truth, float).reshape(-1, n_parts, 2) if np.size(truth) == 0 else np.asarray(truth, float)
    poses = np.asarray(poses, float).reshape(-1, n_parts, 3) if np.size(poses) == 0 else np.asarray(poses, float)
    scores = np.asarray(scores, float).reshape(-1)
    if truth.ndim != 3 or truth.shape[1:] != (n_parts, 2):
        raise ValueError(f"image {index}: labels have shape {truth.shape}, expected (animals, {n_parts}, 2)")
    if poses.ndim != 3 or poses.shape[1:] != (n_parts, 3):
        raise ValueError(f"image {index}: predictions have shape {poses.shape}, expected (animals, {n_parts}, 3)")
    if len(scores) != len(poses):
        raise ValueError(f"image {index}: {len(poses)} predicted animals but {len(scores)} scores")
    return truth, poses, scores


def _sigma(sigma, n_parts: int) -> np.ndarray:
    values = np.broadcast_to(np.asarray(sigma, float), (n_parts,)) if np.ndim(sigma) == 0 else np.asarray(sigma, float)
    if values.shape != (n_parts,) or not (values > 0).all():
        raise ValueError(f"oks_sigma must be one positive number or one per body part ({n_parts}), not {sigma}")
    return values


def _parts(animals: np.ndarray) -> np.ndarray:
    return np.isfinite(animals[..., 0]) & np.isfinite(animals[..., 1])


def _has_parts(animals: np.ndarray, at_least: int) -> np.ndarray:
    return _parts(animals).sum(axis=1) >= at_least


def _mean(values: np.ndarray) -> float:
    finite = values[np.isfinite(values)]
    return float(finite.mean()) if finite.size else float("nan")


def _finite_or_none(value):
    if isinstance(value, dict):
        return {k: _finite_or_none(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite_or_none(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _px(value: float) -> str:
    return f"{value:.2f} px" if math.isfinite(value) else "none"


def _percent(value: float) -> str:
    return f"{100 * value:.1f}%" if math.isfinite(value) else "none"


def _fraction(value: float) -> str:
    return f"{value:.3f}" if math.isfinite(value) else "none"
