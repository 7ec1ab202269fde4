"""K members' predictions of one video -> one track: the Ensemble Kalman Smoother (Biderman et al., Nat
Methods 2024) from the maintained `ensemble-kalman-smoother` package, plus the tables that go with it.

The package (and JAX) is an optional extra: `pip install 'posecluster[ensemble]'`. It is imported only
when a smoother runs, so the base install and every other command stay lean.

Output likelihood: the members' mean likelihood at each frame and body part (what EKS itself reports), so
p-cutoffs keep their meaning. The companion table holds, per frame and body part, the ensemble variance
(plain variance of the members' x and y, in px²: how much the members disagree) and the smoother's
posterior variance (px²: how sure the smoothed position is).
"""

from __future__ import annotations

import importlib.util
import os
import warnings
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import pandas as pd

from posecluster.data.formats.dlc import LEVELS

EXTRA = "ensemble"
VARIANCE_COORDS = ("ensemble_var_x", "ensemble_var_y", "posterior_var_x", "posterior_var_y")


MISSING_EXTRA = (f"ensemble smoothing needs the optional extra: pip install 'posecluster[{EXTRA}]' "
                 "(ensemble-kalman-smoother)")


def check_smoother_installed() -> None:
    """Fail fast, without importing JAX, when the optional extra is missing."""
    if importlib.util.find_spec("eks") is None:
        raise ImportError(MISSING_EXTRA)


def _import_eks():
    # JAX's CPU client takes every core by default; a smoother is a small sequential job beside torch,
    # so keep it to one thread unless the user already chose (XLA reads this once, at import).
    os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")
    try:
        from eks.marker_array import MarkerArray
        from eks.singlecam_smoother import ensemble_kalman_smoother_singlecam
    except ImportError as exc:
        raise ImportError(f"{MISSING_EXTRA} ({exc})") from None
    return MarkerArray, ensemble_kalman_smoother_singlecam


@dataclass
class SmoothedEnsemble:
    poses: np.ndarray  # (frames, K, 3): smoothed x, y and the members' mean likelihood
    ensemble_var: np.ndarray  # (frames, K, 2): variance of the members' x, y (px²)
    posterior_var: np.ndarray  # (frames, K, 2): the smoother's posterior variance of x, y (px²)
    smooth_params: list[float]


def ensemble_stats(members: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """members (M, frames, K, 3) -> (mean poses (frames, K, 3), ensemble variance (frames, K, 2))."""
    with _quiet_nan_warnings():
        mean = np.nanmean(members, axis=0)
        var = np.nanvar(members[..., :2], axis=0)
    return mean, var


def ensemble_median(members: np.ndarray) -> np.ndarray:
    """The members' median x, y and mean likelihood (frames, K, 3)."""
    with _quiet_nan_warnings():
        out = np.nanmean(members, axis=0)
        out[..., :2] = np.nanmedian(members[..., :2], axis=0)
    return out


def smooth_ensemble(members: np.ndarray, smooth_param: float | None = None, avg_mode: str = "median",
                    var_mode: str = "confidence_weighted_var") -> SmoothedEnsemble:
    """members (M, frames, K, 3) in DLC pixels -> the EKS track.

    `smooth_param` None lets EKS choose one per body part (by maximising the likelihood of the data);
    avg_mode/var_mode are EKS's own (Lightning Pose's defaults). Frames that no member could predict (the
    decoder lost them) are left out of the smoother and come back as NaN rows.
    """
    members = np.asarray(members, dtype=np.float64)
    if members.ndim != 4 or members.shape[-1] != 3:
        raise ValueError(f"members must be (models, frames, bodyparts, 3), got {members.shape}")
    n_models, n_frames, n_parts, _ = members.shape
    _, plain_var = ensemble_stats(members)
    known = ~np.isnan(members[..., :2]).any(axis=(0, 2, 3))  # frames every member predicted
    poses = np.full((n_frames, n_parts, 3), np.nan)
    posterior = np.full((n_frames, n_parts, 2), np.nan)
    params: list[float] = []
    if known.sum() >= 2:
        MarkerArray, smoother = _import_eks()
        observed = members[:, known][:, None].astype(np.float32)  # (M, cameras=1, frames, K, 3)
        if n_parts == 1:  # EKS 4.6.2 squeezes a single body part's axis away; each part is smoothed alone,
            observed = np.concatenate([observed, observed], axis=3)  # so a copy changes nothing
        array = MarkerArray(observed, data_fields=["x", "y", "likelihood"])
        names = [f"part{k}" for k in range(observed.shape[3])]
        table, s_finals = smoother(array, names, smooth_param=smooth_param, avg_mode=avg_mode, var_mode=var_mode)
        for k, name in enumerate(names[:n_parts]):
            poses[known, k, 0] = _col(table, name, "x")
            poses[known, k, 1] = _col(table, name, "y")
            poses[known, k, 2] = _col(table, name, "likelihood")
            posterior[known, k, 0] = _col(table, name, "x_posterior_var")
            posterior[known, k, 1] = _col(table, name, "y_posterior_var")
        params = [float(s) for s in np.ravel(np.asarray(s_finals))][:n_parts]
        # EKS runs in float32: where the members agree to the last bit its posterior variance can come
        # out a round-off below zero. A variance is never negative; report it as zero.
        np.maximum(posterior, 0.0, out=posterior, where=~np.isnan(posterior))
    return SmoothedEnsemble(poses=poses, ensemble_var=plain_var, posterior_var=posterior, smooth_params=params)


def _col(table: pd.DataFrame, name: str, field: str) -> np.ndarray:
    """EKS's DLC-style frame: columns (scorer, bodyparts, coords); pick one body part's field."""
    selected = table.xs((name, field), axis=1, level=("bodyparts", "coords"))
    return selected.to_numpy(dtype=np.float64).ravel()


def variance_frame(scorer: str, bodyparts: list[str], ensemble_var: np.ndarray,
                   posterior_var: np.ndarray) -> pd.DataFrame:
    """The companion table: DLC-style columns scorer/bodyparts/coords with the four variance fields."""
    columns = pd.MultiIndex.from_product([[scorer], list(bodyparts), list(VARIANCE_COORDS)], names=LEVELS)
    values = np.concatenate([ensemble_var, posterior_var], axis=-1).reshape(len(ensemble_var), -1)
    return pd.DataFrame(values, index=pd.RangeIndex(len(values)), columns=columns)


def read_ensemble_variance(frame: pd.DataFrame, bodyparts: list[str]) -> np.ndarray:
    """The companion table -> ensemble variance (frames, K, 2) in the given body-part order."""
    scorer = frame.columns.get_level_values("scorer")[0]
    cols = [(scorer, b, c) for b in bodyparts for c in VARIANCE_COORDS[:2]]
    return frame[cols].to_numpy(dtype=np.float64).reshape(len(frame), len(bodyparts), 2)


@contextmanager
def _quiet_nan_warnings():
    """All-NaN slices (frames the decoder lost) are expected here; they stay NaN without a warning."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        yield
