"""Score maps -> keypoints: argmax per body part, refined by the location-refinement offsets."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def decode(
    scoremap_logits: torch.Tensor,
    locref: torch.Tensor | None,
    stride: float,
    locref_stdev: float,
) -> torch.Tensor:
    """(B,K,h,w) logits [+ (B,2K,h,w) offsets] -> (B,K,3): x, y (network-input edge coordinates),
    likelihood = sigmoid of the logit at the argmax."""
    batch, parts, height, width = scoremap_logits.shape
    flat = scoremap_logits.float().reshape(batch, parts, -1)
    best, index = flat.max(dim=-1)
    iy = torch.div(index, width, rounding_mode="floor")
    ix = index - iy * width
    x = ix.float() * stride + stride / 2
    y = iy.float() * stride + stride / 2
    if locref is not None:
        offsets = locref.float().reshape(batch, parts, 2, height * width)
        gather = index[:, :, None, None].expand(batch, parts, 2, 1)
        dxy = offsets.gather(-1, gather).squeeze(-1) * locref_stdev  # (B,K,2)
        x = x + dxy[..., 0]
        y = y + dxy[..., 1]
    return torch.stack([x, y, torch.sigmoid(best)], dim=-1)


def rival_margins(scoremap_logits: torch.Tensor, radius: int = 1) -> torch.Tensor:
    """(B,K,h,w) logits -> (B,K): how far each map's top logit stands above its best rival peak (a local
    maximum more than `radius` cells from the top); +inf where a map has no rival. A small margin is where
    an arithmetic's own error can swap which peak wins, moving the keypoint by the distance between them."""
    logits = scoremap_logits.float()
    batch, parts, height, width = logits.shape
    top, index = logits.reshape(batch, parts, -1).max(dim=-1)
    iy = torch.div(index, width, rounding_mode="floor")[..., None, None]
    ix = (index % width)[..., None, None]
    ys = torch.arange(height, device=logits.device)[:, None]
    xs = torch.arange(width, device=logits.device)[None, :]
    near_top = ((ys - iy).abs() <= radius) & ((xs - ix).abs() <= radius)
    peaks = logits == F.max_pool2d(logits, kernel_size=3, stride=1, padding=1)
    rivals = torch.where(peaks & ~near_top, logits, torch.tensor(float("-inf"), device=logits.device))
    return top - rivals.reshape(batch, parts, -1).amax(dim=-1)


def shifted_cell_margins(scoremap_logits: torch.Tensor, locref: torch.Tensor | None, stride: float,
                         locref_stdev: float, move_px: float) -> torch.Tensor:
    """(B,K,h,w) logits [+ (B,2K,h,w) offsets] -> (B,K): how far each map's top logit stands above the
    best of its 8 neighbouring cells whose decode (cell centre + offset) lies more than `move_px`
    (network-input pixels) from the top's; +inf where none does. rival_margins leaves these neighbours
    out, but an arithmetic whose error exceeds this margin can move the argmax one cell, and the keypoint
    with it wherever the two cells' offsets do not point at the same place (an undertrained map's)."""
    logits = scoremap_logits.float()
    batch, parts, height, width = logits.shape
    top, index = logits.reshape(batch, parts, -1).max(dim=-1)
    iy, ix = torch.div(index, width, rounding_mode="floor"), index % width
    steps = torch.tensor([(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if dy or dx], device=logits.device)
    ny, nx = iy[..., None] + steps[:, 0], ix[..., None] + steps[:, 1]  # (B,K,8)
    inside = (ny >= 0) & (ny < height) & (nx >= 0) & (nx < width)
    cells = (ny.clamp(0, height - 1) * width + nx.clamp(0, width - 1))
    neighbour = logits.reshape(batch, parts, -1).gather(-1, cells)
    where = torch.stack([ix[..., None] - nx, iy[..., None] - ny], dim=-1).float() * -stride  # neighbour - top
    if locref is not None:
        offsets = locref.float().reshape(batch, parts, 2, height * width) * locref_stdev
        at_top = offsets.gather(-1, index[..., None, None].expand(batch, parts, 2, 1))  # (B,K,2,1)
        at_cells = offsets.gather(-1, cells[:, :, None, :].expand(batch, parts, 2, 8))  # (B,K,2,8)
        where = where + (at_cells - at_top).transpose(-1, -2)
    moves = inside & (where.norm(dim=-1) > move_px)
    return (top[..., None] - torch.where(moves, neighbour, torch.tensor(float("-inf"), device=logits.device))).amin(dim=-1)


def cutoff_margins(scoremap_logits: torch.Tensor, pcutoff: float) -> torch.Tensor:
    """(B,K,h,w) logits -> (B,K): how far each map's top logit lies from the p-cutoff's logit. The cutoff
    decides whether a keypoint counts (filters, plots, DeepLabCut's tools), so a top this close to it can
    cross it under an arithmetic whose error exceeds the margin: a decision as much as a peak's place."""
    top = scoremap_logits.float().flatten(-2).amax(dim=-1)
    if not 0.0 < pcutoff < 1.0:
        return torch.full_like(top, float("inf"))
    return (top - math.log(pcutoff / (1.0 - pcutoff))).abs()


def soft_argmax(
    scoremap_logits: torch.Tensor,
    locref: torch.Tensor | None,
    stride: float,
    locref_stdev: float,
    temperature: float = 1.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Differentiable keypoints for the unsupervised losses: (B,K,h,w) logits [+ offsets] ->
    ((B,K,2) x, y in network-input edge coordinates, (B,K) confidence = sigmoid of the peak logit).

    The expected cell position (plus its location refinement) under a softmax over each map's cells."""
    batch, parts, height, width = scoremap_logits.shape
    weights = torch.softmax(scoremap_logits.float().reshape(batch, parts, -1) / temperature, dim=-1)
    ys, xs = torch.meshgrid(
        torch.arange(height, device=weights.device, dtype=torch.float32) * stride + stride / 2,
        torch.arange(width, device=weights.device, dtype=torch.float32) * stride + stride / 2,
        indexing="ij",
    )
    px = xs.reshape(1, 1, -1)
    py = ys.reshape(1, 1, -1)
    if locref is not None:
        offsets = locref.float().reshape(batch, parts, 2, height * width) * locref_stdev
        px = px + offsets[:, :, 0]
        py = py + offsets[:, :, 1]
    xy = torch.stack([(weights * px).sum(-1), (weights * py).sum(-1)], dim=-1)
    confidence = torch.sigmoid(scoremap_logits.float().reshape(batch, parts, -1).amax(-1))
    return xy, confidence
