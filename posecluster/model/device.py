"""Device choices in one place: CUDA when present (mixed precision, channels_last), CPU otherwise."""

from __future__ import annotations

import contextlib

import torch


def resolve_device(spec: str = "auto") -> torch.device:
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(spec)


def wanted(setting: str, device: torch.device, on_cpu_too: bool = False) -> bool:
    """'auto' means on CUDA (and on CPU where `on_cpu_too`); 'on'/'off' force it."""
    return setting == "on" or (setting == "auto" and (device.type == "cuda" or on_cpu_too))


def autocast(device: torch.device, enabled: bool):
    if not enabled:
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if device.type == "cpu" or torch.cuda.is_bf16_supported() else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


def needs_grad_scaler(device: torch.device, enabled: bool) -> bool:
    return enabled and device.type == "cuda" and not torch.cuda.is_bf16_supported()


def set_batchnorm_frozen(model: torch.nn.Module, frozen: bool) -> None:
    """Frozen BatchNorm keeps its running statistics (eval mode) while the rest trains."""
    if frozen:
        for module in model.modules():
            if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
                module.eval()
