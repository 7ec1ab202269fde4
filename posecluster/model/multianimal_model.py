"""The bottom-up multi-animal part detector (maDLC): the single-animal backbone and heads, plus part
affinity fields along a graph of body parts and an optional identity head; its loss.

Outputs at net stride 8, one dict as PoseModel's: `scoremap` (B, K+U, h, w) logits for the K animal parts
then the U unique parts, `locref` (B, 2(K+U), h, w), `paf` (B, 2E, h, w) one (x, y) field per graph edge,
and with identity on `identity` (B, n_individuals, h, w) logits. Each head is the single-animal
DeconvHead; the single-animal model is untouched.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from posecluster.config import ModelConfig
from posecluster.model.assembly import AssemblyParams
from posecluster.model.backbone import ResNetBackbone, fold_batchnorm
from posecluster.model.heads import DeconvHead
from posecluster.model.losses import pose_loss, weighted_mean
from posecluster.model.multi_peaks import PeakParams
from posecluster.model.paf_graph import Graph
from posecluster.model.paf_targets import MultiAnimalTargets, PafTargetParams
from posecluster.model.pose_model import IMAGENET_MEAN, IMAGENET_STD


@dataclass(frozen=True)
class MultiAnimalSpec:
    """What the model detects: DLC's multianimalbodyparts, uniquebodyparts, individuals, the PAF graph
    (index pairs over the animal parts) and whether the identity head is on (config `identity: true`)."""

    bodyparts: tuple[str, ...]
    unique_bodyparts: tuple[str, ...] = ()
    individuals: tuple[str, ...] = ()
    graph: tuple[tuple[int, int], ...] = ()
    identity: bool = False

    def __post_init__(self):
        for source, target in self.graph:
            if not (0 <= source < len(self.bodyparts) and 0 <= target < len(self.bodyparts)) or source == target:
                raise ValueError(f"graph edge ({source}, {target}) is not a pair of the {len(self.bodyparts)} "
                                 f"animal body parts")
        if self.identity and len(self.individuals) < 2:
            raise ValueError("the identity head needs at least two individuals")

    @property
    def num_parts(self) -> int:
        return len(self.bodyparts)

    @property
    def num_unique(self) -> int:
        return len(self.unique_bodyparts)

    @property
    def edges(self) -> Graph:
        return [tuple(edge) for edge in self.graph]


@dataclass(frozen=True)
class MultiAnimalLossParams:
    # DeepLabCut 3's PAF criterion is a Huber loss with weight 0.1; l1 and l2 are offered as in maDLC's
    # TensorFlow days. Identity: softmax cross-entropy over individuals on cells inside a disk.
    paf_loss: Literal["huber", "l1", "l2"] = "huber"
    paf_weight: float = 0.1
    identity_weight: float = 1.0


@dataclass(frozen=True)
class MultiAnimalParams:
    """Every multi-animal parameter beside the shared ModelConfig (a config section later)."""

    targets: PafTargetParams = field(default_factory=PafTargetParams)
    loss: MultiAnimalLossParams = field(default_factory=MultiAnimalLossParams)
    peaks: PeakParams = field(default_factory=PeakParams)
    assembly: AssemblyParams = field(default_factory=AssemblyParams)


class MultiAnimalPoseModel(nn.Module):
    def __init__(self, config: ModelConfig, spec: MultiAnimalSpec):
        super().__init__()
        self.config = config
        self.spec = spec
        channels = spec.num_parts + spec.num_unique
        self.backbone = ResNetBackbone(config.backbone)
        width = self.backbone.out_channels
        self.scoremap_head = DeconvHead(width, channels)
        self.locref_head = DeconvHead(width, 2 * channels) if config.locref else None
        self.paf_head = DeconvHead(width, 2 * len(spec.graph))
        self.identity_head = DeconvHead(width, len(spec.individuals)) if spec.identity else None
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    @classmethod
    def for_inference(cls, config: ModelConfig, spec: MultiAnimalSpec, state_dict: dict) -> "MultiAnimalPoseModel":
        """Trained weights in eval mode with BatchNorm folded into the convolutions (fp32, CPU)."""
        model = cls(config, spec)
        model.load_state_dict(state_dict)
        model.eval()
        fold_batchnorm(model.backbone)
        return model

    @property
    def stride(self) -> float:
        return self.backbone.stride / 2

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """images: (B,3,H,W) float in [0, 1]."""
        features = self.backbone((images - self.mean) / self.std)
        # Heads in fp32 whatever autocast says, as PoseModel: peaks and line integrals compare values.
        with torch.autocast(device_type=features.device.type, enabled=False):
            features = features.float()
            out = {"scoremap": self.scoremap_head(features), "paf": self.paf_head(features)}
            if self.locref_head is not None:
                out["locref"] = self.locref_head(features)
            if self.identity_head is not None:
                out["identity"] = self.identity_head(features)
        return out


def multianimal_loss(
    outputs: dict[str, torch.Tensor],
    targets: MultiAnimalTargets,
    config: ModelConfig,
    params: MultiAnimalLossParams = MultiAnimalLossParams(),
) -> tuple[torch.Tensor, dict[str, float]]:
    """The single-animal loss on score maps + locref (sigmoid CE + 0.05 Huber, weights masking
    unlabeled parts), plus paf_weight x the PAF loss and identity_weight x the identity loss."""
    total, parts = pose_loss(outputs, targets.parts, config.loss, config.target)
    predicted = outputs["paf"].float()
    if predicted.shape[1]:
        if params.paf_loss == "huber":
            per_cell = F.huber_loss(predicted, targets.paf, reduction="none", delta=config.loss.huber_delta)
        elif params.paf_loss == "l1":
            per_cell = (predicted - targets.paf).abs()
        else:
            per_cell = (predicted - targets.paf) ** 2
        paf_loss = weighted_mean(per_cell, targets.paf_weight)
        total = total + params.paf_weight * paf_loss
        parts["paf"] = float(paf_loss.detach())
    if "identity" in outputs and targets.identity is not None:
        per_cell = F.cross_entropy(outputs["identity"].float(), targets.identity, reduction="none")
        identity_loss = weighted_mean(per_cell[:, None], targets.identity_weight[:, None])
        total = total + params.identity_weight * identity_loss
        parts["identity"] = float(identity_loss.detach())
    parts["total"] = float(total.detach())
    return total, parts
