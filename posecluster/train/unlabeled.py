"""The unsupervised part of a training step: draw clips, run the (wrapped) model on them, and add the
configured losses (posecluster.model.unsupervised) to the supervised loss. Pure torch, no Ray: under
DDP the clips' forward goes through the same wrapped model, so gradients are averaged like the rest."""

from __future__ import annotations

from contextlib import contextmanager

import numpy as np
import torch

from posecluster import storage
from posecluster.config import PoseclusterConfig
from posecluster.data.augment import resize_batch
from posecluster.data.clips import ClipSampler
from posecluster.model.precision import Precision
from posecluster.model.unsupervised import build_losses


@contextmanager
def _batchnorm_stats_kept(module: torch.nn.Module):
    """Run a forward without moving BatchNorm's running statistics: a clip is a few near-identical
    frames of one video, and averaging its statistics in would leave inference normalising with
    statistics no labeled batch had (training loss unchanged, test error up)."""
    layers = [m for m in module.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in layers]
    for layer in layers:
        layer.momentum = 0.0  # running = (1 - 0) * running + 0 * batch
    try:
        yield
    finally:
        for layer, momentum in zip(layers, momenta):
            layer.momentum = momentum


class UnlabeledTerm:
    def __init__(self, config: PoseclusterConfig, labeled_keypoints: np.ndarray, rank: int = 0):
        section = config.unsupervised
        self.losses = build_losses(section, labeled_keypoints)
        videos = section.videos or [storage.join(config.project_uri, "videos")]
        # Each worker draws its own clips (different seeds), as each draws its own labeled images.
        self.sampler = ClipSampler(videos, section.clip_frames, seed=config.train.seed * 1000 + rank)
        self.clips_per_step = section.clips_per_step
        self.temperature = section.softargmax_temperature
        self.global_scale = config.model.global_scale
        self.anneal = section.anneal

    def importance(self, epoch: int) -> float:
        """The losses' total importance in `epoch` (0-based), as Lightning Pose's AnnealWeight sets it."""
        anneal = self.anneal
        if epoch <= anneal.hold_epochs:
            return anneal.initial
        return min(anneal.initial + (epoch - anneal.hold_epochs) * anneal.per_epoch, anneal.final)

    @classmethod
    def maybe(cls, config: PoseclusterConfig, labeled_keypoints: np.ndarray, rank: int = 0) -> "UnlabeledTerm | None":
        return cls(config, labeled_keypoints, rank) if config.unsupervised.losses else None

    def __call__(self, trained: torch.nn.Module, model, device: torch.device, channels_last: bool,
                 precision: Precision, importance: float = 1.0) -> tuple[torch.Tensor, dict[str, float]]:
        """(importance x the weighted sum of the losses, their unweighted values) on freshly drawn clips;
        nothing is drawn or run while the importance is 0."""
        if importance == 0:
            return torch.zeros((), device=device), {}
        clips = np.stack([self.sampler.sample() for _ in range(self.clips_per_step)])  # (C,T,H,W,3)
        count, frames = clips.shape[:2]
        batch = torch.from_numpy(clips.reshape(count * frames, *clips.shape[2:])).to(device)
        batch = batch.permute(0, 3, 1, 2).float().div_(255.0)
        batch, (sx, sy) = resize_batch(batch, self.global_scale)
        if channels_last:
            batch = batch.contiguous(memory_format=torch.channels_last)
        with precision.autocast(device), _batchnorm_stats_kept(trained):
            outputs = trained(batch)
        xy, confidence = model.soft_keypoints(outputs, self.temperature)
        # Network-input edge coordinates -> original pixel indices, as the predictor reports them.
        scale = torch.tensor([sx, sy], device=xy.device)
        xy = (xy / scale - 0.5).reshape(count, frames, *xy.shape[1:])
        confidence = confidence.reshape(count, frames, -1)
        total = torch.zeros((), device=xy.device)
        parts = {}
        for loss in self.losses:
            value = loss(xy, confidence)
            total = total + loss.weight * value
            parts[loss.name] = float(value.detach())
        return importance * total, parts
