"""Every peak of every score map: local maxima above a threshold, with non-maximum suppression.

Batched torch, no per-peak Python. A peak's position is computed as the single-animal decode does:
cell * stride + stride / 2 + locref * locref_stdev (network-input edge coordinates), and its likelihood
is the sigmoid of the logit at its cell. A flat top (a disk map's plateau) gives one peak, its first cell
in row-major order; locref still points from there to the keypoint. DeepLabCut 3's PAF predictor first
smooths the maps with a small Gaussian (`smoothing_sigma`, off by default as in maDLC 2.x): it finds
plateau centres but pulls two nearby animals' peaks towards each other, until the suppression merges
them (two animals' same parts 3 cells apart, a case the assembly tests render).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class PeakParams:
    threshold: float = 0.1  # likelihood (sigmoid) a peak needs (DLC's default pcutoff)
    nms_radius: int = 2  # cells: a peak suppresses lower ones within this Chebyshev distance
    smoothing_sigma: float = 0.0  # cells; DeepLabCut 3 uses 1.0


@dataclass
class Peaks:
    """All peaks of a batch, ordered by (image, part, row, column)."""

    image: torch.Tensor  # (P,) long
    part: torch.Tensor  # (P,) long
    row: torch.Tensor  # (P,) long
    col: torch.Tensor  # (P,) long
    xy: torch.Tensor  # (P, 2) network-input edge coordinates, locref-refined
    likelihood: torch.Tensor  # (P,)


def _smooth(maps: torch.Tensor, sigma: float) -> torch.Tensor:
    if sigma <= 0:
        return maps
    radius = max(1, math.ceil(3 * sigma))
    taps = torch.exp(-torch.arange(-radius, radius + 1, dtype=maps.dtype, device=maps.device) ** 2 / (2 * sigma**2))
    taps = taps / taps.sum()
    channels = maps.shape[1]
    # Separable: a row pass then a column pass, each a grouped convolution.
    rows = taps.view(1, 1, 1, -1).repeat(channels, 1, 1, 1)
    cols = taps.view(1, 1, -1, 1).repeat(channels, 1, 1, 1)
    out = F.conv2d(F.pad(maps, (radius, radius, 0, 0), mode="replicate"), rows, groups=channels)
    return F.conv2d(F.pad(out, (0, 0, radius, radius), mode="replicate"), cols, groups=channels)


def _first_of_ties(mask: torch.Tensor, window: int) -> torch.Tensor:
    """Of the marked cells within one window of each other, keep the lowest row-major index."""
    height, width = mask.shape[-2:]
    index = torch.arange(height * width, device=mask.device, dtype=torch.float32).view(1, 1, height, width)
    minus_index = torch.where(mask, -index, -float("inf"))
    return mask & (minus_index == F.max_pool2d(minus_index, kernel_size=window, stride=1, padding=window // 2))


def local_maxima(values: torch.Tensor, allowed: torch.Tensor, nms_radius: int) -> torch.Tensor:
    """(B,C,h,w) values and the cells allowed to be peaks -> bool mask of the peaks.

    First each flat top (a plateau of equal neighbours) becomes one candidate, its first cell in
    row-major order; then a candidate is kept if no other candidate within `nms_radius` cells is higher
    (ties again to the first). Comparing candidates only, not every cell, keeps two plateaus whose edges
    nearly touch as two peaks when their candidates are more than the radius apart."""
    top = (values == F.max_pool2d(values, kernel_size=3, stride=1, padding=1)) & allowed
    candidate = _first_of_ties(top, 3)  # neighbours that are both 3x3 maxima are equal
    masked = torch.where(candidate, values, -float("inf"))
    window = 2 * nms_radius + 1
    kept = candidate & (masked == F.max_pool2d(masked, kernel_size=window, stride=1, padding=nms_radius))
    return _first_of_ties(kept, window)  # candidates within a window of each other that are equal


def find_peaks(
    scoremap_logits: torch.Tensor,
    locref: torch.Tensor | None,
    stride: float,
    locref_stdev: float,
    params: PeakParams = PeakParams(),
) -> Peaks:
    """(B,C,h,w) logits [+ (B,2C,h,w) locref] -> every peak of every channel."""
    logits = scoremap_logits.float()
    probability = torch.sigmoid(logits)
    # The threshold applies to the likelihood reported (unsmoothed), as the single-animal p-cutoff does.
    mask = local_maxima(_smooth(probability, params.smoothing_sigma), probability >= params.threshold,
                        params.nms_radius)
    image, part, row, col = mask.nonzero(as_tuple=True)  # row-major: sorted by (image, part, row, col)
    x = col.float() * stride + stride / 2
    y = row.float() * stride + stride / 2
    if locref is not None:
        batch, channels, height, width = logits.shape
        offsets = locref.float().view(batch, channels, 2, height, width)[image, part, :, row, col]  # (P,2)
        x = x + offsets[:, 0] * locref_stdev
        y = y + offsets[:, 1] * locref_stdev
    return Peaks(image, part, row, col, torch.stack([x, y], dim=-1), probability[image, part, row, col])
