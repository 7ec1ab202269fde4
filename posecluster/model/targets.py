"""Training targets, generated on the device from the model's actual output grid.

Coordinates here are continuous network-input pixels with pixel i covering [i, i+1) ("edge" coordinates),
so output cell j is centred at j * stride + stride / 2 and scaling an image by s scales coordinates by s
exactly. Keypoints are NaN where unlabeled; those body parts get zero score-map weight (unlabeled: mask,
DeepLabCut 3.0) or an all-zero score map with full weight (unlabeled: absent, DeepLabCut 2.x), and never
a location-refinement target.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from posecluster.config import TargetConfig


@dataclass
class Targets:
    scoremap: torch.Tensor  # (B, K, h, w) in [0, 1]
    scoremap_weight: torch.Tensor  # (B, K, h, w): 0 for unlabeled body parts
    locref: torch.Tensor  # (B, 2K, h, w): offsets to the keypoint / locref_stdev, (dx, dy) per part
    locref_weight: torch.Tensor  # (B, 2K, h, w): 1 inside the disk of a labeled part


def cell_centers(size: int, stride: float, device=None) -> torch.Tensor:
    return torch.arange(size, device=device, dtype=torch.float32) * stride + stride / 2


def make_targets(
    keypoints: torch.Tensor,
    scales: torch.Tensor,
    grid_hw: tuple[int, int],
    stride: float,
    config: TargetConfig,
) -> Targets:
    """keypoints (B,K,2) edge coordinates; scales (B,) image scale applied so far (radius scales too)."""
    height, width = grid_hw
    device = keypoints.device
    valid = torch.isfinite(keypoints).all(dim=-1)  # (B,K)
    kp = torch.nan_to_num(keypoints.float(), nan=-1e6)
    xs = cell_centers(width, stride, device)
    ys = cell_centers(height, stride, device)
    dx = kp[..., 0, None, None] - xs[None, None, None, :]  # (B,K,1,w)
    dy = kp[..., 1, None, None] - ys[None, None, :, None]  # (B,K,h,1)
    dist2 = dx**2 + dy**2  # (B,K,h,w)
    scale = scales.to(device=device, dtype=torch.float32)[:, None, None, None]
    radius = config.radius_px * scale
    inside = (dist2 <= radius**2) & valid[..., None, None]
    if config.kind == "disk":
        scoremap = inside.float()
    else:
        sigma = config.gaussian_sigma_px * scale
        scoremap = torch.exp(-dist2 / (2 * sigma**2)) * valid[..., None, None]
    if config.unlabeled == "absent":
        weight = torch.ones_like(scoremap)
    else:
        weight = valid[..., None, None].float().expand_as(scoremap)
    locref = torch.stack(
        [dx.expand_as(dist2), dy.expand_as(dist2)], dim=2
    ) / config.locref_stdev  # (B,K,2,h,w)
    locref_weight = inside[:, :, None].expand_as(locref).float()
    locref = locref * locref_weight  # zero (not huge) outside the disk
    batch, parts = keypoints.shape[:2]
    return Targets(
        scoremap=scoremap,
        scoremap_weight=weight.contiguous(),
        locref=locref.reshape(batch, 2 * parts, height, width),
        locref_weight=locref_weight.reshape(batch, 2 * parts, height, width),
    )
