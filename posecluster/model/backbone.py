"""torchvision ResNets with the last stage dilated instead of strided (backbone stride 16, as the paper)."""

from __future__ import annotations

import torch
from torch import nn
from torchvision import models

from posecluster.config import BackboneConfig

_BUILDERS = {
    "resnet18": models.resnet18,
    "resnet34": models.resnet34,
    "resnet50": models.resnet50,
    "resnet101": models.resnet101,
}
# torchvision's published ImageNet weights, by architecture.
IMAGENET_WEIGHTS = {
    "resnet18": models.ResNet18_Weights.IMAGENET1K_V1,
    "resnet34": models.ResNet34_Weights.IMAGENET1K_V1,
    "resnet50": models.ResNet50_Weights.IMAGENET1K_V1,
    "resnet101": models.ResNet101_Weights.IMAGENET1K_V1,
}


def dilate_stage(stage: nn.Sequential, dilation: int = 2) -> None:
    """Turn a strided ResNet stage into a dilated one, in place; weights keep their shapes.

    The first block keeps dilation 1 but loses its stride (as torchvision's own
    replace_stride_with_dilation does); later blocks' 3x3 convolutions get the dilation. Written for
    both block types because torchvision's BasicBlock refuses dilation.
    """
    for index, block in enumerate(stage):
        for module in block.modules():
            if not isinstance(module, nn.Conv2d):
                continue
            if module.stride == (2, 2):
                module.stride = (1, 1)
            if index > 0 and module.kernel_size == (3, 3):
                module.dilation = (dilation, dilation)
                module.padding = (dilation, dilation)


class ResNetBackbone(nn.Module):
    """ResNet trunk (no pooling, no classifier): image (B,3,H,W) -> features (B,C,H/16,W/16)."""

    def __init__(self, config: BackboneConfig):
        super().__init__()
        net = _BUILDERS[config.name](weights=None)
        if config.dilate_last_stage:
            dilate_stage(net.layer4)
        self.stem = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool)
        self.layer1, self.layer2, self.layer3, self.layer4 = net.layer1, net.layer2, net.layer3, net.layer4
        self.out_channels = net.fc.in_features
        self.stride = 16 if config.dilate_last_stage else 32

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))

    def load_torchvision_state(self, state: dict[str, torch.Tensor]) -> None:
        """Load a torchvision ResNet state dict (classifier ignored); shape mismatches are errors."""
        renamed = {}
        for key, value in state.items():
            if key.startswith("fc."):
                continue
            head, _, rest = key.partition(".")
            if head in ("conv1", "bn1"):
                key = f"stem.{0 if head == 'conv1' else 1}.{rest}"
            renamed[key] = value
        missing, unexpected = self.load_state_dict(renamed, strict=False)
        if missing or unexpected:
            raise ValueError(f"state dict does not fit the backbone: missing {missing[:5]}, unexpected {unexpected[:5]}")


def fold_batchnorm(backbone: ResNetBackbone) -> None:
    """Fold every BatchNorm into the convolution before it (inference only: frozen statistics).

    Same outputs up to float rounding, one pass less over every feature map: on CPU, where the backbone
    is the whole cost of analysis, this is a free speed-up.
    """
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    def fold(parent: nn.Module, conv_name: str, bn_name: str) -> None:
        conv, bn = getattr(parent, conv_name), getattr(parent, bn_name)
        setattr(parent, conv_name, fuse_conv_bn_eval(conv, bn))
        setattr(parent, bn_name, nn.Identity())

    fold(backbone.stem, "0", "1")
    for stage in (backbone.layer1, backbone.layer2, backbone.layer3, backbone.layer4):
        for block in stage:
            for i in (1, 2, 3):
                if hasattr(block, f"conv{i}"):
                    fold(block, f"conv{i}", f"bn{i}")
            if block.downsample is not None:
                fold(block.downsample, "0", "1")
