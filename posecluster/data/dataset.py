"""Torch datasets over labeled frames: images read from storage once and cached, augmented per epoch."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

from posecluster.config import AugmentConfig
from posecluster.data.augment import Augmenter
from posecluster.data.images import read_image
from posecluster.data.labels import LabeledDataset
from posecluster.storage.scope import in_context


def load_images(labels: LabeledDataset, threads: int = 8) -> list[np.ndarray]:
    """All images of `labels`, read concurrently (object storage latency, not CPU, is the limit)."""
    with ThreadPoolExecutor(max_workers=threads) as pool:
        return list(pool.map(in_context(read_image), [labels.image_uri(i) for i in range(len(labels))]))


class TrainingDataset(torch.utils.data.Dataset):
    """Augmented crops with keypoints; sample i of epoch e is the same whatever worker makes it."""

    def __init__(
        self,
        labels: LabeledDataset,
        augment: AugmentConfig,
        global_scale: float,
        seed: int,
        images: list[np.ndarray] | None = None,
    ):
        self.labels = labels
        self.images = images if images is not None else load_images(labels)
        self.augmenter = Augmenter(augment, global_scale)
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        rng = np.random.default_rng([self.seed, self.epoch, index])
        keypoints = self.labels.keypoints[index] + 0.5  # DLC pixel-index coordinates -> edge coordinates
        image, points, scale = self.augmenter(self.images[index], keypoints, rng)
        return {
            "image": image,
            "keypoints": torch.from_numpy(points).float(),
            "scale": torch.tensor(scale, dtype=torch.float32),
            "index": torch.tensor(index),
        }
