"""DeepLabCut's filterpredictions: median, spline gap filling, and ARIMA (SARIMAX) smoothing of x and y.

Likelihoods are kept as they were. Points below `p_bound` are treated as missing before spline and ARIMA,
as DLC does, so a confident track is not dragged towards garbage detections.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
from scipy.interpolate import CubicSpline

from posecluster.data.tracks import PoseTrack


@dataclass(frozen=True)
class FilterOptions:
    method: Literal["median", "spline", "arima"] = "median"
    window: int = 5  # median: window length in frames (odd)
    p_bound: float = 0.01  # spline/arima: below this likelihood a point counts as missing
    max_gap: int = 0  # spline: longest gap (frames) to fill; 0 fills every interior gap
    ar_degree: int = 3  # arima: SARIMAX order (ar_degree, 0, ma_degree), DLC's defaults
    ma_degree: int = 1


def median(series: np.ndarray, window: int) -> np.ndarray:
    """Centred running median; NaN (undecodable frames) stay NaN and do not poison their neighbours."""
    if window < 1 or window % 2 == 0:
        raise ValueError(f"median window must be a positive odd number of frames, got {window}")
    smoothed = pd.Series(series).rolling(window, center=True, min_periods=1).median().to_numpy(copy=True)
    smoothed[np.isnan(series)] = np.nan
    return smoothed


def spline_fill(series: np.ndarray, max_gap: int = 0) -> np.ndarray:
    """Fill interior NaN gaps (up to max_gap frames; 0 = any) with a cubic spline through the valid points."""
    valid = np.flatnonzero(~np.isnan(series))
    out = series.copy()
    if len(valid) < 4:
        return out
    spline = CubicSpline(valid, series[valid])
    missing = np.flatnonzero(np.isnan(series))
    missing = missing[(missing > valid[0]) & (missing < valid[-1])]
    if max_gap:
        # Length of the gap each missing frame belongs to: the distance between its valid neighbours - 1.
        after = valid[np.searchsorted(valid, missing)]
        before = valid[np.searchsorted(valid, missing) - 1]
        missing = missing[(after - before - 1) <= max_gap]
    out[missing] = spline(missing)
    return out


def arima(series: np.ndarray, ar_degree: int = 3, ma_degree: int = 1) -> np.ndarray:
    """One-step-ahead SARIMAX predictions (DLC's filter); missing points are handled by the state space."""
    from statsmodels.tsa.statespace.sarimax import SARIMAX

    if np.isnan(series).all():
        return series.copy()
    offset = np.nanmean(series)
    model = SARIMAX(series - offset, order=(ar_degree, 0, ma_degree), seasonal_order=(0, 0, 0, 0),
                    simple_differencing=True)
    with warnings.catch_warnings():  # convergence chatter on short or flat tracks
        warnings.simplefilter("ignore")
        fitted = model.fit(disp=False)
    return np.asarray(fitted.get_prediction(end=model.nobs - 1).predicted_mean) + offset


def masked_xy(track: PoseTrack, p_bound: float) -> np.ndarray:
    """x, y with points below p_bound set to NaN."""
    xy = track.xy.copy()
    xy[track.likelihood < p_bound] = np.nan
    return xy


def filter_track(track: PoseTrack, options: FilterOptions) -> PoseTrack:
    poses = track.poses.copy()
    source = track.xy if options.method == "median" else masked_xy(track, options.p_bound)
    for k in range(len(track.bodyparts)):
        for c in range(2):
            series = source[:, k, c]
            if options.method == "median":
                poses[:, k, c] = median(series, options.window)
            elif options.method == "spline":
                poses[:, k, c] = spline_fill(series, options.max_gap)
            elif options.method == "arima":
                poses[:, k, c] = arima(series, options.ar_degree, options.ma_degree)
            else:
                raise ValueError(f"unknown filter {options.method!r} (median, spline, arima)")
    return track.with_poses(poses)
