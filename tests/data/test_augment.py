"""Augmentation moves image and keypoints together, deterministically."""

from __future__ import annotations

import numpy as np
import torch

from posecluster.config import AugmentConfig
from posecluster.data.augment import Augmenter, resize_batch


def dot_image(points, height=120, width=160):
    """Black image with a bright 3x3 dot centred on each (pixel-index) point."""
    image = np.zeros((height, width, 3), np.uint8)
    for x, y in points:
        image[int(y) - 1 : int(y) + 2, int(x) - 1 : int(x) + 2] = 255
    return image


def brightest(image: torch.Tensor) -> np.ndarray:
    """Intensity-weighted centre of the bright pixels, in edge coordinates."""
    gray = image.mean(0).numpy()
    ys, xs = np.nonzero(gray > 0.2)
    w = gray[ys, xs]
    return np.array([(xs * w).sum() / w.sum() + 0.5, (ys * w).sum() / w.sum() + 0.5])


def test_keypoints_follow_the_pixels_through_scale_rotation_and_crop():
    config = AugmentConfig(crop_size=(96, 96), blur_probability=0, contrast_probability=0)
    augmenter = Augmenter(config, global_scale=0.8)
    for seed in range(5):
        point = np.array([[70.0, 50.0]])
        image, moved, scale = augmenter(dot_image(point), point + 0.5, np.random.default_rng(seed))
        assert image.shape == (3, 96, 96)
        assert 0.8 * 0.5 <= scale <= 0.8 * 1.25
        np.testing.assert_allclose(brightest(image), moved[0], atol=0.6)


def test_same_seed_same_sample_and_missing_keypoints_stay_missing():
    augmenter = Augmenter(AugmentConfig(crop_size=(64, 64)), global_scale=1.0)
    image = (np.random.default_rng(0).random((80, 100, 3)) * 255).astype(np.uint8)
    points = np.array([[30.0, 40.0], [np.nan, np.nan]])
    a = augmenter(image, points, np.random.default_rng(7))
    b = augmenter(image, points, np.random.default_rng(7))
    assert torch.equal(a[0], b[0]) and np.array_equal(a[1], b[1], equal_nan=True)
    assert np.isnan(a[1][1]).all()


def test_disabled_augmentation_only_scales_and_centres():
    augmenter = Augmenter(AugmentConfig(enabled=False, crop_size=(64, 64)), global_scale=0.5)
    points = np.array([[40.0, 30.0], [60.0, 50.0]])
    _, moved, scale = augmenter(np.zeros((80, 100, 3), np.uint8), points, np.random.default_rng(1))
    assert scale == 0.5
    np.testing.assert_allclose(moved.mean(0), [32, 32])
    np.testing.assert_allclose(moved[1] - moved[0], [10, 10])


def test_resize_reports_the_exact_scale_applied():
    batch = torch.zeros(2, 3, 480, 640)
    resized, (sx, sy) = resize_batch(batch, 0.8)
    assert resized.shape[-2:] == (384, 512) and (sx, sy) == (0.8, 0.8)
