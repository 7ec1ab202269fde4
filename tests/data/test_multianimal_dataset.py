"""Multi-animal training samples: every individual's keypoints and the landmarks move with the image."""

from __future__ import annotations

import numpy as np
import pytest

from posecluster.config import AugmentConfig
from posecluster.data.multianimal_dataset import MultiAnimalTrainingDataset


def _image_with_dots(points: np.ndarray) -> np.ndarray:
    """A 96x96 image with a 7x7 white square centred on each (pixel index) point."""
    image = np.zeros((96, 96, 3), dtype=np.uint8)
    for x, y in points:
        image[int(y) - 3:int(y) + 4, int(x) - 3:int(x) + 4] = 255
    return image


def test_rotated_scaled_cropped_keypoints_of_every_animal_and_landmark_land_on_their_dots():
    keypoints = np.array([[[20.0, 30.0], [35.0, 30.0]], [[70.0, 60.0], [np.nan, np.nan]]])
    unique = np.array([[50.0, 80.0]])
    image = _image_with_dots(np.vstack([keypoints.reshape(-1, 2)[[0, 1, 2]], unique]))
    augment = AugmentConfig(crop_size=(80, 80), scale_range=(0.8, 1.2), rotation_deg=30, blur_probability=0,
                            contrast_probability=0)
    dataset = MultiAnimalTrainingDataset([image], keypoints[None], unique[None], augment, 1.0, seed=3)
    sample = dataset[0]
    assert sample["keypoints"].shape == (2, 2, 2) and sample["unique"].shape == (1, 2)
    assert np.isnan(sample["keypoints"][1, 1].numpy()).all()
    warped = sample["image"][0].numpy()
    for x, y in np.vstack([sample["keypoints"].reshape(-1, 2).numpy()[[0, 1, 2]], sample["unique"].numpy()]):
        assert warped[int(y), int(x)] > 0.5  # edge coordinates: pixel int(x) holds the point


def test_keypoints_that_are_not_per_individual_are_refused():
    with pytest.raises(ValueError, match="individuals"):
        MultiAnimalTrainingDataset([np.zeros((8, 8, 3), np.uint8)], np.zeros((1, 3, 2)), None, AugmentConfig(), 1.0, 0)
