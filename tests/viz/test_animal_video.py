"""A multi-animal frame is drawn as DeepLabCut draws it with color_by="individual": one colour per
individual, the unique parts in the colormap's last colour, the skeleton within each animal only."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib import colormaps

from posecluster.data.multianimal import AnimalTracks
from posecluster.viz.animal_video import AnimalFrameLabeler
from posecluster.viz.labeled_video import LabelOptions

WHITE, BLACK = (255, 255, 255), (0, 0, 0)


def grid() -> AnimalTracks:
    """Two animals, three parts each in a row 30 px apart (animal i on y = 20 + 40 i); a landmark."""
    poses = np.zeros((1, 2, 3, 3))
    for i in range(2):
        for k in range(3):
            poses[0, i, k] = [20 + 30 * k, 20 + 40 * i, 0.9]
    poses[0, 1, 2, 2] = 0.2  # below the p-cutoff
    return AnimalTracks("s", ["mouse1", "mouse2"], ["nose", "head", "tail"], ["landmark"], poses,
                        np.array([[[95.0, 95.0, 0.9]]]))


def draw(skeleton=()) -> np.ndarray:
    options = LabelOptions(pcutoff=0.5, radius=4, skeleton=tuple(skeleton))
    return AnimalFrameLabeler(grid(), options, 110, 110).draw(np.zeros((110, 110, 3), np.uint8), 0)


def test_each_individual_has_one_colour_and_the_unique_parts_the_last():
    # rainbow sampled at 0, 1/2, 1: the two individuals, then "single"
    colours = np.round(np.asarray(colormaps["rainbow"]([0.0, 0.5, 1.0]))[:, :3] * 255)
    image = draw()
    for k in range(3):
        np.testing.assert_array_equal(image[20, 20 + 30 * k], colours[0])
    np.testing.assert_array_equal(image[60, 20], colours[1])
    np.testing.assert_array_equal(image[60, 50], colours[1])
    np.testing.assert_array_equal(image[60, 80], BLACK)  # mouse2's tail is below the p-cutoff
    np.testing.assert_array_equal(image[95, 95], colours[2])


def test_the_skeleton_joins_parts_of_one_animal_never_two_and_skips_hidden_parts():
    image = draw([("nose", "head"), ("head", "tail")])
    np.testing.assert_array_equal(image[20, 35], WHITE)  # mouse1 nose-head
    np.testing.assert_array_equal(image[20, 65], WHITE)  # mouse1 head-tail
    np.testing.assert_array_equal(image[60, 35], WHITE)  # mouse2 nose-head
    np.testing.assert_array_equal(image[60, 65], BLACK)  # mouse2's tail is hidden: no bone to it
    np.testing.assert_array_equal(image[40, 20], BLACK)  # between mouse1's and mouse2's noses: nothing
    assert (draw()[40] == 0).all()


def test_a_skeleton_naming_a_part_the_table_lacks_is_refused():
    with pytest.raises(ValueError, match="paw"):
        draw([("nose", "paw")])
