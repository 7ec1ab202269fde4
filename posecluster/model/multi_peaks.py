"""Every peak of every score map: local maxima above a threshold, with non-maximum suppression.

Batched torch, no per-peak Python. A peak's position is computed as the single-animal decode does:
cell * stride + stride / 2 + locref * locref_stdev (network-input edge coordinates), and its likelihood
is the sigmoid of the logit at its cell. As DeepLabCut 3's PAF predictor, the probabilities are smoothed
by a small Gaussian before the maxima are looked for, so a flat-topped (disk) map peaks at its centre
rather than on every cell of the plateau; the smoothing only picks cells, never sets likelihoods.
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
    smoothing_sigma: float = 1.0  # cells; 0 turns the smoothing off


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
    out = F.conv2d(F.pad(maps, (radius, radius, 0, 0), mode="replicate"), taps.view(1, 1, 1, -1).repeat(channels, 1, 1, 1),
                   groups=channels)
    return F.conv2d(F.pad(out, (0, 0, radius, radius), mode="replicate"), taps.view(1, 1, -1, 1).repeat(channels, 1, 1, 1),
                    groups=channels)


def local_maxima(values: torch.Tensor, threshold: float, nms_radius: int) -> torch.Tensor:
    """(B,C,h,w) -> bool mask of the cells that are the maximum of their (2r+1)^2 window and >= threshold.

    Equal values within one window (a plateau) keep only the cell with the lowest row-major index, so the
    result never depends on float noise in the order of evaluation."""
    window = 2 * nms_radius + 1
    pooled = F.max_pool2d(values, kernel_size=window, stride=1, padding=nms_radius)
    candidate = (values == pooled) & (values >= threshold)
    # Two candidates within a window of each other are equal (each is the other's window maximum):
    # keep the one with the lowest flat index (max-pool of minus the index).
    height, width = values.shape[-2:]
    index = torch.arange(height * width, device=values.device, dtype=torch.float32).view(1, 1, height, width)
    minus_index = torch.where(candidate, -index, torch.tensor(-float("inf"), device=values.device))
    first = F.max_pool2d(minus_index, kernel_size=window, stride=1, padding=nms_radius)
    return candidate & (minus_index == first)


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
    mask = local_maxima(_smooth(probability, params.smoothing_sigma), -1.0, params.nms_radius)
    # The threshold applies to the likelihood reported (unsmoothed), as the single-animal p-cutoff does.
    mask &= probability >= params.threshold
    image, part, row, col = mask.nonzero(as_tuple=True)  # row-major: sorted by (image, part, row, col)
    x = col.float() * stride + stride / 2
    y = row.float() * stride + stride / 2
    if locref is not None:
        batch, channels, height, width = logits.shape
        offsets = locref.float().view(batch, channels, 2, height, width)[image, part, :, row, col]  # (P,2)
        x = x + offsets[:, 0] * locref_stdev
        y = y + offsets[:, 1] * locref_stdev
    return Peaks(image, part, row, col, torch.stack([x, y], dim=-1), probability[image, part, row, col])
