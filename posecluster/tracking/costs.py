"""Costs between poses and the gated assignment, computed so that every process gets the same bits.

A sharded run must take exactly the decisions of a single-process run, possibly on another machine.
numpy's reductions (sum, mean) may add in an order that depends on memory alignment and on the CPU's
vector width, and its log/exp may differ in the last bit between vector and scalar paths. So costs use
only element-wise + - * / and sqrt (IEEE-754 rounds each exactly) and reduce over body parts and identity
columns with a Python loop in a fixed order.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment

_FORBIDDEN = 1e12  # an entry the assignment never takes while a finite alternative exists


def valid_parts(poses: np.ndarray, min_likelihood: float) -> np.ndarray:
    """(n, K) bool: the part has finite x, y and likelihood >= min_likelihood (a NaN likelihood fails)."""
    x, y, p = poses[..., 0], poses[..., 1], poses[..., 2]
    return np.isfinite(x) & np.isfinite(y) & (p >= min_likelihood)


def pose_distances(a: np.ndarray, a_ok: np.ndarray, b: np.ndarray, b_ok: np.ndarray) -> np.ndarray:
    """(na, nb) mean Euclidean distance over the body parts valid in both poses; inf where none is.

    a, b: (n, K, >=2) poses; a_ok, b_ok: (n, K) masks of the parts to use."""
    total = np.zeros((len(a), len(b)))
    count = np.zeros((len(a), len(b)))
    for k in range(a.shape[1]):
        shared = a_ok[:, k, None] & b_ok[None, :, k]
        dx = a[:, k, 0, None] - b[None, :, k, 0]
        dy = a[:, k, 1, None] - b[None, :, k, 1]
        total += np.where(shared, np.sqrt(dx * dx + dy * dy), 0.0)
        count += shared
    out = np.full(total.shape, np.inf)
    np.divide(total, count, out=out, where=count > 0)
    return out


def identity_disagreement(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(na, nb) 1 - dot product of identity probability rows (0: the same identity for sure)."""
    dot = np.zeros((len(a), len(b)))
    for c in range(a.shape[1]):
        dot += a[:, c, None] * b[None, :, c]
    return np.clip(1.0 - dot, 0.0, 1.0)


def gated_assignment(cost: np.ndarray, gate: float) -> list[tuple[int, int]]:
    """Minimum-cost one-to-one pairs (row, column) among entries below `gate`, where leaving a row or a
    column unpaired costs gate / 2: a pair is taken only when it is cheaper than leaving both alone.
    Ties are broken by scipy's solver, which depends only on the matrix, so identical in every process."""
    rows, cols = cost.shape
    if rows == 0 or cols == 0:
        return []
    allowed = np.isfinite(cost) & (cost < gate)
    square = np.full((rows + cols, cols + rows), _FORBIDDEN)
    square[:rows, :cols] = np.where(allowed, cost, _FORBIDDEN)
    square[np.arange(rows), cols + np.arange(rows)] = gate / 2
    square[rows + np.arange(cols), np.arange(cols)] = gate / 2
    square[rows:, cols:] = 0.0
    r, c = linear_sum_assignment(square)
    return [(int(i), int(j)) for i, j in zip(r, c) if i < rows and j < cols and allowed[i, j]]


def paired_distances(a: np.ndarray, a_ok: np.ndarray, b: np.ndarray, b_ok: np.ndarray) -> np.ndarray:
    """(n,) mean Euclidean distance between a[i] and b[i] over the parts valid in both; inf where none."""
    total = np.zeros(len(a))
    count = np.zeros(len(a))
    for k in range(a.shape[1]):
        shared = a_ok[:, k] & b_ok[:, k]
        dx = a[:, k, 0] - b[:, k, 0]
        dy = a[:, k, 1] - b[:, k, 1]
        total += np.where(shared, np.sqrt(dx * dx + dy * dy), 0.0)
        count += shared
    out = np.full(total.shape, np.inf)
    np.divide(total, count, out=out, where=count > 0)
    return out
