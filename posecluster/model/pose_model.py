"""The assembled part detector: normalised RGB in, score maps and location refinement out (stride 8)."""

from __future__ import annotations

import torch
from torch import nn

from posecluster.config import ModelConfig
from posecluster.model.backbone import ResNetBackbone, fold_batchnorm
from posecluster.model.decode import soft_argmax
from posecluster.model.heads import DeconvHead

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class PoseModel(nn.Module):
    def __init__(self, config: ModelConfig, num_bodyparts: int):
        super().__init__()
        self.config = config
        self.num_bodyparts = num_bodyparts
        self.backbone = ResNetBackbone(config.backbone)
        self.scoremap_head = DeconvHead(self.backbone.out_channels, num_bodyparts)
        self.locref_head = DeconvHead(self.backbone.out_channels, 2 * num_bodyparts) if config.locref else None
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    @classmethod
    def for_inference(cls, config: ModelConfig, num_bodyparts: int, state_dict: dict) -> "PoseModel":
        """Trained weights in eval mode with BatchNorm folded into the convolutions (fp32, CPU)."""
        model = cls(config, num_bodyparts)
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
        # The heads run in fp32 whatever autocast says: decoding takes an argmax, and bf16 score maps
        # (8 bits of mantissa) have plateaus whose ties move the peak by a whole cell (8 px).
        with torch.autocast(device_type=features.device.type, enabled=False):
            features = features.float()
            out = {"scoremap": self.scoremap_head(features)}
            if self.locref_head is not None:
                out["locref"] = self.locref_head(features)
        return out

    def soft_keypoints(self, outputs: dict[str, torch.Tensor], temperature: float = 1.0):
        """Differentiable (B,K,2) positions (network-input edge coordinates) and (B,K) confidences from
        this model's outputs: what the unsupervised losses penalise."""
        return soft_argmax(outputs["scoremap"], outputs.get("locref"), self.stride,
                           self.config.target.locref_stdev, temperature)
