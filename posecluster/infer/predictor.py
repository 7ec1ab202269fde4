"""Model + frames -> poses in original image pixels. Runs without Ray."""

from __future__ import annotations

import numpy as np
import torch

from posecluster.config import InferConfig
from posecluster.data.augment import resize_batch
from posecluster.model.backbone import fold_batchnorm
from posecluster.model.decode import decode
from posecluster.model.device import autocast, resolve_device, wanted
from posecluster.model.pose_model import PoseModel
from posecluster.model.artifact import TrainedModel


class Predictor:
    def __init__(self, trained: TrainedModel, infer: InferConfig | None = None):
        self.trained = trained
        self.infer = infer or trained.config.infer
        # The config actually used (what _meta.json records): the model's, with this analysis's infer section.
        self.config = trained.config.model_copy(update={"infer": self.infer})
        self.bodyparts = trained.bodyparts
        self.device = resolve_device(self.infer.device)
        # channels_last also speeds up the CPU forward pass (ResNet-50 at 384x512: +8% here).
        self.channels_last = wanted(self.infer.channels_last, self.device, on_cpu_too=True)
        self.amp = wanted(self.infer.mixed_precision, self.device)
        model = PoseModel(self.config.model, len(self.bodyparts))
        model.load_state_dict(trained.state_dict)
        model.eval()
        fold_batchnorm(model.backbone)
        fmt = torch.channels_last if self.channels_last else torch.contiguous_format
        self.model = model.to(self.device, memory_format=fmt)

    @property
    def scorer(self) -> str:
        return self.trained.scorer

    @property
    def output_shape(self) -> tuple[int, ...]:
        """Per frame: (body parts, 3)."""
        return (len(self.bodyparts), 3)

    def _prepare(self, frames: np.ndarray) -> tuple[torch.Tensor, tuple[float, float]]:
        batch = torch.from_numpy(np.ascontiguousarray(frames))
        if self.device.type == "cuda":  # uint8 crosses the bus (4x less than float), from pinned memory
            batch = batch.pin_memory()
        batch = batch.to(self.device, non_blocking=True)
        batch = batch.permute(0, 3, 1, 2).float().div_(255.0)
        batch, factors = resize_batch(batch, self.config.model.global_scale)
        if self.channels_last:
            batch = batch.contiguous(memory_format=torch.channels_last)
        return batch, factors

    @torch.inference_mode()
    def predict(self, frames: np.ndarray) -> np.ndarray:
        """frames uint8 (B,H,W,3) of one size -> (B,K,3): x, y in DLC pixel coordinates, likelihood."""
        return self.predict_prepared(*self._prepare(frames))

    @torch.inference_mode()
    def predict_prepared(self, batch: torch.Tensor, factors: tuple[float, float]) -> np.ndarray:
        """The forward pass and decode on a batch `_prepare` made (ensemble members share one)."""
        sx, sy = factors
        with autocast(self.device, self.amp):
            out = self.model(batch)
        target = self.config.model.target
        poses = decode(out["scoremap"], out.get("locref"), self.model.stride, target.locref_stdev)
        poses[..., 0] = poses[..., 0] / sx - 0.5  # edge coordinates of the input -> pixel indices
        poses[..., 1] = poses[..., 1] / sy - 0.5
        return poses.cpu().numpy().astype(np.float64)

    @torch.inference_mode()
    def backbone_only(self, frames: np.ndarray) -> None:
        """The backbone's forward pass alone on the same input (for throughput comparisons)."""
        batch, _ = self._prepare(frames)
        with autocast(self.device, self.amp):
            self.model.backbone(batch)
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def predict_images(self, images: list[np.ndarray]) -> np.ndarray:
        """Images of any sizes -> (N,K,3); same-sized images are batched together."""
        out = np.zeros((len(images), len(self.bodyparts), 3))
        by_shape: dict[tuple, list[int]] = {}
        for i, image in enumerate(images):
            by_shape.setdefault(image.shape, []).append(i)
        size = self.infer.batch_size
        for indices in by_shape.values():
            for start in range(0, len(indices), size):
                chunk = indices[start : start + size]
                out[chunk] = self.predict(np.stack([images[i] for i in chunk]))
        return out
