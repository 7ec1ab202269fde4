"""Frames where the network is probably wrong (DeepLabCut's extract_outlier_frames criteria):

- jump: a body part moved more than epsilon pixels since the previous frame (both detections at least
  p_bound likely, so a lost-and-found part is left to `uncertain`);
- uncertain: some body part's likelihood is below p_bound;
- fitting: the mean distance over body parts between the detection and a SARIMAX fit of its track
  exceeds epsilon;
- ensemble: the members of an ensemble disagree (Lightning Pose's ensemble-variance criterion): for some
  body part, the spread sqrt(var_x + var_y) of the members' predictions exceeds ensemble_std_px.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from posecluster.analysis.filtering import arima, masked_xy
from posecluster.data.tracks import PoseTrack

ALGORITHMS = ("jump", "uncertain", "fitting", "ensemble")


@dataclass(frozen=True)
class OutlierOptions:
    algorithms: tuple[str, ...] = ("jump", "uncertain")
    epsilon: float = 20.0  # pixels
    p_bound: float = 0.01
    ar_degree: int = 3
    ma_degree: int = 1
    ensemble_std_px: float = 5.0


def jump_frames(track: PoseTrack, epsilon: float, p_bound: float) -> np.ndarray:
    step = np.linalg.norm(np.diff(track.xy, axis=0), axis=2)  # (frames-1, K)
    confident = (track.likelihood[1:] >= p_bound) & (track.likelihood[:-1] >= p_bound)
    flagged = np.zeros(len(track), dtype=bool)
    flagged[1:] = np.any((step > epsilon) & confident, axis=1)
    return flagged


def uncertain_frames(track: PoseTrack, p_bound: float) -> np.ndarray:
    return np.any(track.likelihood < p_bound, axis=1)


def fitting_residuals(track: PoseTrack, p_bound: float, ar_degree: int = 3, ma_degree: int = 1) -> np.ndarray:
    """(frames, K) distance between each detection and its SARIMAX fit (NaN where the point is missing)."""
    xy = masked_xy(track, p_bound)
    fitted = np.empty_like(xy)
    for k in range(xy.shape[1]):
        for c in range(2):
            fitted[:, k, c] = arima(xy[:, k, c], ar_degree, ma_degree)
    return np.linalg.norm(xy - fitted, axis=2)


def fitting_frames(track: PoseTrack, epsilon: float, p_bound: float, ar_degree: int = 3, ma_degree: int = 1) -> np.ndarray:
    residuals = fitting_residuals(track, p_bound, ar_degree, ma_degree)
    # The first predictions are the model's prior, not a forecast: no verdict before it has seen data.
    residuals[: ar_degree + ma_degree] = np.nan
    counted = (~np.isnan(residuals)).sum(axis=1)
    mean = np.nansum(residuals, axis=1) / np.maximum(counted, 1)
    return (counted > 0) & (mean > epsilon)


def ensemble_spread(ensemble_var: np.ndarray) -> np.ndarray:
    """(frames, K, 2) variance of the members' x, y (px²) -> (frames, K) spread in px."""
    return np.sqrt(ensemble_var.sum(axis=-1))


def ensemble_frames(ensemble_var: np.ndarray, std_px: float) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        return np.nan_to_num(ensemble_spread(ensemble_var), nan=0.0).max(axis=1) > std_px


def find_outliers(track: PoseTrack, options: OutlierOptions,
                  ensemble_var: np.ndarray | None = None) -> dict[int, list[str]]:
    """{frame index: the criteria that flagged it}, ascending by frame. `ensemble_var` (frames, K, 2):
    the members' variance from an ensemble analysis, needed by the "ensemble" criterion."""
    unknown = set(options.algorithms) - set(ALGORITHMS)
    if unknown:
        raise ValueError(f"unknown outlier algorithm(s) {sorted(unknown)}; choose from {ALGORITHMS}")
    masks = {}
    if "jump" in options.algorithms:
        masks["jump"] = jump_frames(track, options.epsilon, options.p_bound)
    if "uncertain" in options.algorithms:
        masks["uncertain"] = uncertain_frames(track, options.p_bound)
    if "fitting" in options.algorithms:
        masks["fitting"] = fitting_frames(track, options.epsilon, options.p_bound, options.ar_degree, options.ma_degree)
    if "ensemble" in options.algorithms:
        if ensemble_var is None or len(ensemble_var) != len(track):
            raise ValueError("the ensemble criterion needs the ensemble variance table of the same video "
                             "(analyze with an ensemble model)")
        masks["ensemble"] = ensemble_frames(ensemble_var, options.ensemble_std_px)
    undecoded = np.isnan(track.likelihood).all(axis=1)  # frames the decoder lost are not the network's fault
    flagged: dict[int, list[str]] = {}
    for name, mask in masks.items():
        for index in np.flatnonzero(mask & ~undecoded):
            flagged.setdefault(int(index), []).append(name)
    return dict(sorted(flagged.items()))
