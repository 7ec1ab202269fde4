"""Augmented training samples for the multi-animal model, from MultiAnimalLabels-shaped arrays.

Per labeled image: keypoints (N, K, 2) of N individuals and unique keypoints (U, 2), DeepLabCut pixel
indices with NaN for unlabeled. One affine warp moves all of them with the image (the single-animal
Augmenter on the points stacked as one list), so every individual's keypoints and the landmarks stay in
register; a crop is centred on the labeled points of all animals together.
"""

from __future__ import annotations

import numpy as np
import torch

from posecluster.config import AugmentConfig
from posecluster.data.augment import Augmenter


class MultiAnimalTrainingDataset(torch.utils.data.Dataset):
    """Sample i of epoch e is the same whatever worker makes it (seeded by seed, epoch, index)."""

    def __init__(self, images: list[np.ndarray], keypoints: np.ndarray, unique: np.ndarray | None,
                 augment: AugmentConfig, global_scale: float, seed: int):
        keypoints = np.asarray(keypoints, dtype=np.float64)
        if keypoints.ndim != 4 or keypoints.shape[-1] != 2 or len(keypoints) != len(images):
            raise ValueError(f"keypoints must be (images={len(images)}, individuals, body parts, 2), "
                             f"got {keypoints.shape}")
        if unique is None:
            unique = np.zeros((len(images), 0, 2))
        unique = np.asarray(unique, dtype=np.float64)
        if unique.ndim != 3 or len(unique) != len(images):
            raise ValueError(f"unique keypoints must be (images={len(images)}, unique parts, 2), got {unique.shape}")
        self.images, self.keypoints, self.unique = images, keypoints, unique
        self.augmenter = Augmenter(augment, global_scale)
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        rng = np.random.default_rng([self.seed, self.epoch, index])
        individuals, parts = self.keypoints.shape[1:3]
        stacked = np.concatenate([self.keypoints[index].reshape(-1, 2), self.unique[index]]) + 0.5  # edge coords
        image, points, scale = self.augmenter(self.images[index], stacked, rng)
        animal = individuals * parts
        return {
            "image": image,
            "keypoints": torch.from_numpy(points[:animal].reshape(individuals, parts, 2)).float(),
            "unique": torch.from_numpy(points[animal:]).float(),
            "scale": torch.tensor(scale, dtype=torch.float32),
            "index": torch.tensor(index),
        }
