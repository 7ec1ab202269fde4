"""The paper's loss: sigmoid cross-entropy on score maps + 0.05 x Huber on location refinement.

Each term is averaged over the elements with non-zero weight of each image (as TensorFlow's
SUM_BY_NONZERO_WEIGHTS in the original DeepLabCut, but per image), then over images: unlabeled body parts
neither count nor dilute the average, and data-parallel training over W workers with batch b gives the
same gradient as one worker with batch W*b.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from posecluster.config import LossConfig, TargetConfig
from posecluster.model.targets import Targets


def weighted_mean(values: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    per_image = (values * weight).flatten(1).sum(1) / (weight > 0).flatten(1).sum(1).clamp(min=1)
    return per_image.mean()


def pose_loss(
    outputs: dict[str, torch.Tensor], targets: Targets, loss: LossConfig, target: TargetConfig
) -> tuple[torch.Tensor, dict[str, float]]:
    logits = outputs["scoremap"].float()
    if target.kind == "disk":
        per_cell = F.binary_cross_entropy_with_logits(logits, targets.scoremap, reduction="none")
    else:  # DLC 3.0 Gaussian heatmaps, mean squared error on the sigmoid output
        per_cell = (torch.sigmoid(logits) - targets.scoremap) ** 2
    score_loss = weighted_mean(per_cell, targets.scoremap_weight)
    total = score_loss
    parts = {"scoremap": float(score_loss.detach())}
    if "locref" in outputs:
        huber = F.huber_loss(outputs["locref"].float(), targets.locref, reduction="none", delta=loss.huber_delta)
        locref_loss = weighted_mean(huber, targets.locref_weight)
        total = total + loss.locref_weight * locref_loss
        parts["locref"] = float(locref_loss.detach())
    parts["total"] = float(total.detach())
    return total, parts
