"""Prediction heads: a stride-2 transposed convolution each, taking the net stride from 16 to 8."""

from __future__ import annotations

import torch
from torch import nn


class DeconvHead(nn.Module):
    """features (B,C,h,w) -> maps (B,channels,2h,2w)."""

    def __init__(self, in_channels: int, channels: int):
        super().__init__()
        self.deconv = nn.ConvTranspose2d(
            in_channels, channels, kernel_size=3, stride=2, padding=1, output_padding=1
        )
        nn.init.normal_(self.deconv.weight, std=0.001)
        nn.init.zeros_(self.deconv.bias)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.deconv(features)
