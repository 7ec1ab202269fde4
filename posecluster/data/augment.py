"""Geometry and photometry applied to an image and its keypoints together.

Everything is in edge coordinates (pixel i covers [i, i+1)), so a scale by s maps x to s*x exactly and
predictions map back to the original image without half-pixel drift. One affine warp does scale jitter,
rotation and the crop around the animal; its matrix also moves the keypoints. Deterministic given the rng.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torchvision.transforms.functional import gaussian_blur

from posecluster.config import AugmentConfig


def to_tensor(image: np.ndarray) -> torch.Tensor:
    """uint8 (H,W,3) -> float (3,H,W) in [0,1]."""
    return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float().div_(255.0)


def scaled_size(height: int, width: int, scale: float) -> tuple[int, int]:
    return max(1, round(height * scale)), max(1, round(width * scale))


def resize_batch(images: torch.Tensor, scale: float) -> tuple[torch.Tensor, tuple[float, float]]:
    """Resize (B,3,H,W) by `scale`; returns the image and the exact (sx, sy) applied to coordinates."""
    height, width = images.shape[-2:]
    out_h, out_w = scaled_size(height, width, scale)
    if (out_h, out_w) == (height, width):
        return images, (1.0, 1.0)
    resized = F.interpolate(images, size=(out_h, out_w), mode="bilinear", align_corners=False, antialias=scale < 1)
    return resized, (out_w / width, out_h / height)


def affine_matrix(center_in, scale: float, angle_rad: float, center_out) -> np.ndarray:
    """3x3 map input->output: rotate and scale about `center_in`, which lands on `center_out`."""
    cos, sin = math.cos(angle_rad) * scale, math.sin(angle_rad) * scale
    cx, cy = center_in
    ox, oy = center_out
    return np.array(
        [[cos, -sin, ox - cos * cx + sin * cy], [sin, cos, oy - sin * cx - cos * cy], [0.0, 0.0, 1.0]]
    )


def warp(image: torch.Tensor, matrix: np.ndarray, out_hw: tuple[int, int]) -> torch.Tensor:
    """Sample (3,H,W) through the inverse of `matrix` into an (3,out_h,out_w) image, zeros outside."""
    _, height, width = image.shape
    out_h, out_w = out_hw
    inverse = torch.from_numpy(np.linalg.inv(matrix)[:2]).float()
    v, u = torch.meshgrid(torch.arange(out_h) + 0.5, torch.arange(out_w) + 0.5, indexing="ij")
    points = torch.stack([u, v, torch.ones_like(u)], dim=-1) @ inverse.T  # (out_h,out_w,2) input coords
    grid = torch.stack([points[..., 0] * 2 / width - 1, points[..., 1] * 2 / height - 1], dim=-1)
    sampled = F.grid_sample(image[None], grid[None], mode="bilinear", padding_mode="zeros", align_corners=False)
    return sampled[0]


def transform_points(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    out = points @ matrix[:2, :2].T + matrix[:2, 2]
    return np.where(np.isfinite(points), out, np.nan)


class Augmenter:
    """Built from its own config section plus the model's global scale."""

    def __init__(self, config: AugmentConfig, global_scale: float):
        self.config = config
        self.global_scale = global_scale

    def __call__(
        self, image: np.ndarray, keypoints: np.ndarray, rng: np.random.Generator
    ) -> tuple[torch.Tensor, np.ndarray, float]:
        """image uint8 (H,W,3), keypoints (K,2) edge coords -> (image (3,h,w), keypoints, scale)."""
        cfg = self.config
        height, width = image.shape[:2]
        # Disabled: only the global scale and a centred crop, so batches still stack.
        jitter = cfg.enabled
        scale = self.global_scale * (rng.uniform(*cfg.scale_range) if jitter else 1.0)
        angle = math.radians(rng.uniform(-cfg.rotation_deg, cfg.rotation_deg)) if jitter else 0.0
        labeled = keypoints[np.isfinite(keypoints).all(axis=1)]
        center_in = labeled.mean(axis=0) if len(labeled) else np.array([width / 2, height / 2])
        if cfg.crop_size is None:
            out_hw = scaled_size(height, width, self.global_scale)
            center_out = np.array([out_hw[1] / 2, out_hw[0] / 2])
            center_in = np.array([width / 2, height / 2])
        else:
            out_w, out_h = cfg.crop_size
            out_hw = (out_h, out_w)
            spread = cfg.crop_jitter if jitter else 0.0
            shift = rng.uniform(-spread, spread, size=2) * np.array([out_w, out_h]) / 2
            center_out = np.array([out_w / 2, out_h / 2]) + shift
        matrix = affine_matrix(center_in, scale, angle, center_out)
        out = warp(to_tensor(image), matrix, out_hw)
        if jitter:
            out = self._photometric(out, rng)
        return out, transform_points(keypoints, matrix), scale

    def _photometric(self, image: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
        cfg = self.config
        if rng.random() < cfg.blur_probability:
            sigma = float(rng.uniform(*cfg.blur_sigma_range))
            kernel = 2 * math.ceil(2 * sigma) + 1
            image = gaussian_blur(image, [kernel, kernel], [sigma, sigma])
        if rng.random() < cfg.contrast_probability:
            mean = image.mean()
            image = (image - mean) * float(rng.uniform(*cfg.contrast_range)) + mean
            image = image * float(rng.uniform(*cfg.brightness_range))
        return image.clamp_(0.0, 1.0)
