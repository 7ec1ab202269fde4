"""Model families: what a training loop needs to know about a kind of model, chosen once per run.

A family builds the network, turns a batch's labels into targets on the output grid, and scores outputs
against them (DeepLabCut 3's backbone/head + target generator + loss split). The single-animal family is
exactly what train/loop.py does today (make_targets + pose_loss); the multi-animal family is the maDLC
model. A loop written against a family never asks which kind it trains.

Batches are dicts of tensors: `image` (B,3,H,W), `scale` (B,), and `keypoints` (B,K,2) for one animal or
(B,N,K,2) for N individuals plus `unique` (B,U,2); network-input edge coordinates, NaN where unlabeled.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from posecluster.config import ModelConfig
from posecluster.model.losses import pose_loss
from posecluster.model.multianimal_model import (MultiAnimalParams, MultiAnimalPoseModel, MultiAnimalSpec,
                                                 multianimal_loss)
from posecluster.model.paf_targets import make_multianimal_targets
from posecluster.model.pose_model import PoseModel
from posecluster.model.targets import make_targets


def _grid(outputs: dict[str, torch.Tensor]) -> tuple[int, int]:
    return tuple(outputs["scoremap"].shape[-2:])


@dataclass
class SingleAnimalFamily:
    config: ModelConfig
    num_bodyparts: int

    def build_model(self) -> PoseModel:
        return PoseModel(self.config, self.num_bodyparts)

    def make_targets(self, batch: dict, outputs: dict[str, torch.Tensor], stride: float):
        device = outputs["scoremap"].device
        return make_targets(batch["keypoints"].to(device), batch["scale"].to(device), _grid(outputs), stride,
                            self.config.target)

    def loss(self, outputs: dict[str, torch.Tensor], targets) -> tuple[torch.Tensor, dict[str, float]]:
        return pose_loss(outputs, targets, self.config.loss, self.config.target)


@dataclass
class MultiAnimalFamily:
    config: ModelConfig
    spec: MultiAnimalSpec
    params: MultiAnimalParams = field(default_factory=MultiAnimalParams)

    def build_model(self) -> MultiAnimalPoseModel:
        return MultiAnimalPoseModel(self.config, self.spec)

    def make_targets(self, batch: dict, outputs: dict[str, torch.Tensor], stride: float):
        device = outputs["scoremap"].device
        unique = batch.get("unique")
        return make_multianimal_targets(
            batch["keypoints"].to(device), None if unique is None else unique.to(device), batch["scale"].to(device),
            _grid(outputs), stride, self.config.target, self.spec.edges, self.params.targets, self.spec.identity)

    def loss(self, outputs: dict[str, torch.Tensor], targets) -> tuple[torch.Tensor, dict[str, float]]:
        return multianimal_loss(outputs, targets, self.config, self.params.loss)


ModelFamily = SingleAnimalFamily | MultiAnimalFamily


def train_step(family: ModelFamily, model: nn.Module, optimizer: torch.optim.Optimizer, batch: dict,
               stride: float) -> dict[str, float]:
    """One plain fp32 optimisation step on any family (the loop's core without its precision, DDP and
    metrics plumbing)."""
    device = next(model.parameters()).device
    outputs = model(batch["image"].to(device))
    loss, parts = family.loss(outputs, family.make_targets(batch, outputs, stride))
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return parts
