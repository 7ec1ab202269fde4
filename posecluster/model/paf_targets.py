"""Training targets for the bottom-up multi-animal model, generated on the device from the output grid.

Coordinates are network-input edge coordinates, as in targets.py. Per image: keypoints (N, K, 2) of N
individuals (NaN: unlabeled; an individual with no label at all is absent from the image) and unique
keypoints (U, 2).

- Score maps and locref per multi-animal part: the union of every individual's disk; a cell takes the
  nearest keypoint for its locref offset (so two touching animals each keep their own peak).
- Part affinity fields per graph edge: the unit vector from source to target part on every cell within
  `paf_width_px` (x scale) of the segment between them, averaged where animals' limbs overlap.
- Identity: per cell inside a disk, the individual whose keypoint is nearest.
- Unique parts: single-animal targets (targets.make_targets), one channel each after the animal parts.

Unlabeled parts of a present animal: with `unlabeled: mask` (the default) the part's score-map channel,
and the channels of the edges touching it, get zero weight over that animal's box (its labeled keypoints'
bounding box grown by the disk radius), since the part may be anywhere there; elsewhere the map still
learns "no part here". With `unlabeled: absent` (DeepLabCut's own multi-animal behaviour) nothing is
masked.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from posecluster.config import TargetConfig
from posecluster.model.paf_graph import Graph
from posecluster.model.targets import Targets, cell_centers, make_targets


@dataclass(frozen=True)
class PafTargetParams:
    # Perpendicular distance from the limb (each side) within which the field is set, in network-input
    # pixels at scale 1 (DeepLabCut 3's PartAffinityFieldGenerator width).
    paf_width_px: float = 20.0


@dataclass
class MultiAnimalTargets:
    parts: Targets  # score maps + locref for K animal parts then U unique parts (losses.pose_loss reads it)
    paf: torch.Tensor  # (B, 2E, h, w): (ux, uy) per edge
    paf_weight: torch.Tensor  # (B, 2E, h, w)
    identity: torch.Tensor | None  # (B, h, w) long: index of the individual
    identity_weight: torch.Tensor | None  # (B, h, w): 1 inside some individual's disk


def _animal_boxes(valid: torch.Tensor, kp: torch.Tensor, margin: torch.Tensor, xs, ys) -> torch.Tensor:
    """(B,N,h,w): cells inside each individual's labeled bounding box grown by `margin` (B,)."""
    big = torch.tensor(1e9, device=kp.device)
    low = torch.where(valid[..., None], kp, big).amin(dim=2)  # (B,N,2)
    high = torch.where(valid[..., None], kp, -big).amax(dim=2)
    m = margin[:, None, None]
    low, high = low - m, high + m
    in_x = (xs[None, None, :] >= low[..., 0, None]) & (xs[None, None, :] <= high[..., 0, None])  # (B,N,w)
    in_y = (ys[None, None, :] >= low[..., 1, None]) & (ys[None, None, :] <= high[..., 1, None])  # (B,N,h)
    return in_y[..., :, None] & in_x[..., None, :]


def make_multianimal_targets(
    keypoints: torch.Tensor,
    unique: torch.Tensor | None,
    scales: torch.Tensor,
    grid_hw: tuple[int, int],
    stride: float,
    score: TargetConfig,
    graph: Graph,
    params: PafTargetParams = PafTargetParams(),
    identity: bool = False,
) -> MultiAnimalTargets:
    """keypoints (B,N,K,2), unique (B,U,2) or None, edge coordinates; scales (B,) applied so far."""
    height, width = grid_hw
    device = keypoints.device
    batch, individuals, parts = keypoints.shape[:3]
    valid = torch.isfinite(keypoints).all(dim=-1)  # (B,N,K)
    kp = torch.nan_to_num(keypoints.float(), nan=0.0)
    xs, ys = cell_centers(width, stride, device), cell_centers(height, stride, device)
    scale = scales.to(device=device, dtype=torch.float32)
    radius = score.radius_px * scale  # (B,)

    dx = kp[..., 0, None, None] - xs  # (B,N,K,1,w)
    dy = kp[..., 1, None, None] - ys[:, None]  # (B,N,K,h,1)
    dist2 = torch.where(valid[..., None, None], dx**2 + dy**2, float("inf"))
    nearest_d2, nearest = dist2.min(dim=1)  # (B,K,h,w): first individual wins ties
    inside = nearest_d2 <= (radius**2)[:, None, None, None]
    if score.kind == "disk":
        scoremap = inside.float()
    else:
        sigma = (score.gaussian_sigma_px * scale)[:, None, None, None]
        scoremap = torch.exp(-nearest_d2 / (2 * sigma**2))
    # The offset to the nearest individual's keypoint, per cell.
    pick = nearest[:, None]  # (B,1,K,h,w)
    off_x = torch.gather(dx.expand(-1, -1, -1, height, -1), 1, pick)[:, 0]
    off_y = torch.gather(dy.expand(-1, -1, -1, -1, width), 1, pick)[:, 0]
    locref_weight = inside[:, :, None].expand(-1, -1, 2, -1, -1).float()
    locref = torch.stack([off_x, off_y], dim=2) / score.locref_stdev * locref_weight  # (B,K,2,h,w)

    present = valid.any(dim=2)  # (B,N): an individual with any label is in the image
    boxes = _animal_boxes(valid, kp, radius, xs, ys)  # (B,N,h,w)
    part_weight = torch.ones(batch, parts, height, width, device=device)
    if score.unlabeled == "mask":
        missing = present[..., None] & ~valid  # (B,N,K)
        hidden = (missing[..., None, None] & boxes[:, :, None]).any(dim=1)  # (B,K,h,w)
        part_weight = part_weight * ~hidden
    animal = Targets(scoremap=scoremap, scoremap_weight=part_weight,
                     locref=locref.reshape(batch, 2 * parts, height, width),
                     locref_weight=locref_weight.reshape(batch, 2 * parts, height, width))
    if unique is not None and unique.shape[1]:
        extra = make_targets(unique, scales, grid_hw, stride, score)
        animal = Targets(*(torch.cat([a, b], dim=1) for a, b in
                           zip((animal.scoremap, animal.scoremap_weight, animal.locref, animal.locref_weight),
                               (extra.scoremap, extra.scoremap_weight, extra.locref, extra.locref_weight))))

    paf, paf_weight = _paf_fields(kp, valid, present, boxes, xs, ys, graph, params.paf_width_px * scale,
                                  score.unlabeled == "mask")
    id_target = id_weight = None
    if identity:
        flat = dist2.permute(0, 3, 4, 1, 2).reshape(batch, height, width, individuals * parts)
        best_d2, best = flat.min(dim=-1)  # (B,h,w)
        id_target = torch.div(best, parts, rounding_mode="floor")
        id_weight = (best_d2 <= (radius**2)[:, None, None]).float()
    return MultiAnimalTargets(animal, paf, paf_weight, id_target, id_weight)


def _paf_fields(kp, valid, present, boxes, xs, ys, graph: Graph, half_width, mask_unlabeled: bool):
    batch, individuals = kp.shape[:2]
    height, width = len(ys), len(xs)
    device = kp.device
    if not graph:
        empty = torch.zeros(batch, 0, height, width, device=device)
        return empty, empty.clone()
    source = torch.tensor([s for s, _ in graph], device=device)
    target = torch.tensor([t for _, t in graph], device=device)
    p1, p2 = kp[:, :, source], kp[:, :, target]  # (B,N,E,2)
    limb = p2 - p1
    length = limb.norm(dim=-1)  # (B,N,E)
    labeled = valid[:, :, source] & valid[:, :, target] & (length > 0)
    unit = limb / length.clamp(min=1e-9)[..., None]
    rel_x = xs - p1[..., 0, None, None]  # (B,N,E,1,w)
    rel_y = ys[:, None] - p1[..., 1, None, None]  # (B,N,E,h,1)
    ux, uy = unit[..., 0, None, None], unit[..., 1, None, None]
    along = rel_x * ux + rel_y * uy  # (B,N,E,h,w)
    across = (rel_x * uy - rel_y * ux).abs()
    on_limb = (along >= 0) & (along <= length[..., None, None]) & (across <= half_width[:, None, None, None, None])
    on_limb = on_limb & labeled[..., None, None]
    count = on_limb.sum(dim=1).clamp(min=1).float()  # (B,E,h,w): animals whose limb covers the cell
    field_x = (on_limb * ux).sum(dim=1) / count
    field_y = (on_limb * uy).sum(dim=1) / count
    edges = len(graph)
    paf = torch.stack([field_x, field_y], dim=2).reshape(batch, 2 * edges, height, width)
    weight = torch.ones(batch, edges, height, width, device=device)
    if mask_unlabeled:
        unsure = present[..., None] & ~labeled  # (B,N,E): a present animal with this limb not fully labeled
        hidden = (unsure[..., None, None] & boxes[:, :, None]).any(dim=1)
        weight = weight * ~hidden
    weight = weight[:, :, None].expand(-1, -1, 2, -1, -1).reshape(batch, 2 * edges, height, width)
    return paf, weight.contiguous()
