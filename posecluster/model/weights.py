"""Pretrained backbone weights: torchvision's ImageNet files under TORCH_HOME, any URI, or none."""

from __future__ import annotations

import io

import torch

from posecluster import storage
from posecluster.storage.scope import also_reading
from posecluster.model.backbone import IMAGENET_WEIGHTS, ResNetBackbone


class WeightsUnavailable(FileNotFoundError):
    pass


def imagenet_file(name: str) -> tuple[str, str]:
    """(expected local path, download URL) of torchvision's ImageNet weights for `name`."""
    url = IMAGENET_WEIGHTS[name].url
    filename = url.rsplit("/", 1)[-1]
    return storage.join(torch.hub.get_dir(), "checkpoints", filename), url


def download_imagenet(name: str) -> str:
    """Fetch torchvision's ImageNet file for `name` into the torch.hub cache (TORCH_HOME), hash-checked;
    used when building images so that training later starts offline. Returns the local path."""
    path, url = imagenet_file(name)
    if not storage.exists(path):
        torch.hub.load_state_dict_from_url(url, progress=False, check_hash=True, weights_only=True)
    return path


def read_state_dict(uri: str) -> dict[str, torch.Tensor]:
    """A state dict from any URI, loaded with weights_only=True (no code runs from the file)."""
    state = torch.load(io.BytesIO(storage.read_bytes(uri)), map_location="cpu", weights_only=True)
    for wrapper in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(wrapper), dict):
            state = state[wrapper]
    if not isinstance(state, dict):
        raise ValueError(f"{uri}: not a state dict")
    return state


def load_backbone_weights(backbone: ResNetBackbone, spec: str, name: str) -> str:
    """Initialise `backbone` per `spec`; returns a description of what was loaded."""
    if spec == "none":
        return "random initialisation"
    if spec == "imagenet":
        path, url = imagenet_file(name)
        with also_reading(storage.parent(path)):  # the server's torch hub folder: no lab's data
            cached = storage.exists(path)
        if not cached:
            try:
                torch.hub.load_state_dict_from_url(url, progress=False, weights_only=True)
            except Exception as exc:  # offline: urllib raises URLError/OSError subclasses
                raise WeightsUnavailable(
                    f"ImageNet weights for {name} are not available offline: expected the file {path} "
                    f"(torch.hub dir, set by TORCH_HOME). Download {url} to that path, bake it into the "
                    f"image (Dockerfile build arg), or set model.backbone.weights to a state-dict URI or "
                    f"'none'. ({type(exc).__name__})"
                ) from None
        backbone.load_torchvision_state(torch.load(path, map_location="cpu", weights_only=True))
        return f"ImageNet ({path})"
    backbone.load_torchvision_state(read_state_dict(spec))
    return f"state dict {spec}"
