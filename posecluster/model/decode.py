"""Score maps -> keypoints: argmax per body part, refined by the location-refinement offsets."""

from __future__ import annotations

import torch


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
