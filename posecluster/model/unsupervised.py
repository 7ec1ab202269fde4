"""Lightning Pose's unsupervised losses (Biderman et al., Nat Methods 2024) on unlabeled clips.

Each loss is one small object built from its own config section (posecluster.config: TemporalLossConfig,
PcaLossConfig) and called on the soft-argmax keypoints of a batch of clips, in original image pixels:
keypoints (clips, frames, K, 2) and confidences (clips, frames, K). Each returns its unweighted value;
`weight` is Lightning Pose's 1 / (2 exp(log_weight)). The training loop only sums weight x value.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from posecluster.config import PcaLossConfig, TemporalLossConfig, UnsupervisedConfig


def lightning_pose_weight(log_weight: float) -> float:
    return 1.0 / (2.0 * math.exp(log_weight))


class TemporalLoss:
    """Mean over consecutive frame pairs and body parts of max(0, |p_t - p_{t-1}| - epsilon)."""

    name = "temporal"

    def __init__(self, config: TemporalLossConfig):
        self.epsilon = config.epsilon_px
        self.prob_threshold = config.prob_threshold
        self.weight = lightning_pose_weight(config.log_weight)

    def __call__(self, keypoints: torch.Tensor, confidence: torch.Tensor) -> torch.Tensor:
        steps = torch.linalg.norm(keypoints[:, 1:] - keypoints[:, :-1], dim=-1)  # (C, T-1, K)
        trusted = (confidence[:, 1:] >= self.prob_threshold) & (confidence[:, :-1] >= self.prob_threshold)
        return (F.relu(steps - self.epsilon) * trusted).mean()


class PcaLoss:
    """Distance of each body part from the pose's projection onto the labels' principal subspace, beyond
    epsilon (Lightning Pose's single-view Pose PCA); fitted once on the complete labeled training poses."""

    name = "pca"

    def __init__(self, config: PcaLossConfig, labeled_keypoints: np.ndarray):
        poses = np.asarray(labeled_keypoints, dtype=np.float64)
        complete = poses[np.isfinite(poses).all(axis=(1, 2))].reshape(-1, poses.shape[1] * 2)
        dims = complete.shape[1] if len(complete) else poses.shape[1] * 2
        if len(complete) <= dims:
            raise ValueError(f"the Pose PCA loss needs more labeled poses with every body part than the "
                             f"{dims} coordinates of a pose; found {len(complete)}")
        self.mean = complete.mean(axis=0)
        _, singular, vt = np.linalg.svd(complete - self.mean, full_matrices=False)
        explained = np.cumsum(singular**2) / np.sum(singular**2)
        keep = config.components_to_keep
        count = int(keep) if keep >= 1 else int(np.searchsorted(explained, keep) + 1)
        self.components = vt[: min(max(count, 1), dims)]  # (kept, 2K)
        self.weight = lightning_pose_weight(config.log_weight)
        errors = self._errors_np(complete)
        self.epsilon = (config.epsilon_px if config.epsilon_px is not None
                        else float(np.percentile(errors, config.empirical_percentile)))
        self._device_tensors: dict = {}

    def _errors_np(self, flat: np.ndarray) -> np.ndarray:
        centred = flat - self.mean
        residual = centred - centred @ self.components.T @ self.components
        return np.linalg.norm(residual.reshape(len(flat), -1, 2), axis=-1)

    def _tensors(self, device, dtype):
        key = (device, dtype)
        if key not in self._device_tensors:
            self._device_tensors[key] = (torch.as_tensor(self.mean, device=device, dtype=dtype),
                                         torch.as_tensor(self.components, device=device, dtype=dtype))
        return self._device_tensors[key]

    def __call__(self, keypoints: torch.Tensor, confidence: torch.Tensor) -> torch.Tensor:
        parts = keypoints.shape[-2]
        flat = keypoints.reshape(-1, parts * 2)
        mean, components = self._tensors(flat.device, flat.dtype)
        centred = flat - mean
        residual = centred - centred @ components.T @ components
        errors = torch.linalg.norm(residual.reshape(len(flat), parts, 2), dim=-1)
        return F.relu(errors - self.epsilon).mean()


def build_losses(config: UnsupervisedConfig, labeled_keypoints: np.ndarray) -> list:
    """The configured losses; `labeled_keypoints` (N, K, 2) are the training labels (Pose PCA fits them)."""
    builders = {
        "temporal": lambda section: TemporalLoss(section),
        "pca": lambda section: PcaLoss(section, labeled_keypoints),
    }
    return [builders[section.kind](section) for section in config.losses]
