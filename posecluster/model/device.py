"""Device choices in one place: CUDA when present, CPU otherwise. Which arithmetic runs on the device
(fp32, bf16/fp16 autocast, int8) is model.precision's."""

from __future__ import annotations

import torch


def resolve_device(spec: str = "auto") -> torch.device:
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(spec)


def wanted(setting: str, device: torch.device, on_cpu_too: bool = False) -> bool:
    """'auto' means on CUDA (and on CPU where `on_cpu_too`); 'on'/'off' force it."""
    return setting == "on" or (setting == "auto" and (device.type == "cuda" or on_cpu_too))


def set_batchnorm_frozen(model: torch.nn.Module, frozen: bool) -> None:
    """Frozen BatchNorm keeps its running statistics (eval mode) while the rest trains."""
    if frozen:
        for module in model.modules():
            if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
                module.eval()
