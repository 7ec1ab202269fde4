"""The multi-animal labels and tracks models: shapes checked on construction, subsets and concatenation
keep every array aligned with its images, absent animals are all NaN."""

from __future__ import annotations

import numpy as np
import pytest

from posecluster.data.multianimal import AnimalTracks, MultiAnimalLabels


def _labels(images: list[str]) -> MultiAnimalLabels:
    n = len(images)
    keypoints = np.arange(n * 2 * 3 * 2, dtype=float).reshape(n, 2, 3, 2)
    keypoints[0, 1] = np.nan  # the second animal is not in the first image
    return MultiAnimalLabels(root="/p", scorer="s", individuals=["m1", "m2"], bodyparts=["a", "b", "c"],
                             unique_bodyparts=["u"], images=images, keypoints=keypoints,
                             unique_keypoints=np.arange(n * 2, dtype=float).reshape(n, 1, 2))


def test_subset_and_concat_keep_images_keypoints_and_unique_points_aligned():
    labels = _labels(["labeled-data/v1/img0.png", "labeled-data/v2/img1.png", "labeled-data/v1/img2.png"])
    assert labels.folders() == ["labeled-data/v1", "labeled-data/v2"] and labels.rows_in("labeled-data/v1") == [0, 2]
    sub = labels.subset([2, 0])
    assert sub.images == ["labeled-data/v1/img2.png", "labeled-data/v1/img0.png"]
    np.testing.assert_array_equal(sub.keypoints[1], labels.keypoints[0])
    np.testing.assert_array_equal(sub.unique_keypoints[0], [[4, 5]])
    joined = MultiAnimalLabels.concat([sub, labels.subset([1])])
    assert len(joined) == 3 and joined.images[2] == "labeled-data/v2/img1.png"
    np.testing.assert_array_equal(joined.unique_keypoints[:, 0, 0], [4, 0, 2])
    assert joined.animals_present().tolist() == [[True, True], [True, False], [True, True]]


def test_labeled_points_are_writable_views_named_animal_and_part():
    labels = _labels(["labeled-data/v/img0.png"])
    (names, points), (unique_names, unique) = labels.labeled_points(0)
    assert names[:4] == ["m1/a", "m1/b", "m1/c", "m2/a"] and unique_names == ["u"]
    points[1] = np.nan  # dropping a label through the view changes the labels
    unique[0] = np.nan
    assert np.isnan(labels.keypoints[0, 0, 1]).all() and np.isnan(labels.unique_keypoints[0, 0]).all()


def test_shapes_that_do_not_fit_the_names_are_refused():
    with pytest.raises(ValueError, match="keypoints shape"):
        MultiAnimalLabels("/p", "s", ["m1"], ["a"], [], ["i.png"], np.zeros((1, 2, 1, 2)))
    with pytest.raises(ValueError, match="unique_keypoints shape"):
        MultiAnimalLabels("/p", "s", ["m1"], ["a"], ["u"], ["i.png"], np.zeros((1, 1, 1, 2)), np.zeros((1, 2, 2)))
    with pytest.raises(ValueError, match="does not fit"):
        AnimalTracks("s", ["m1", "m2"], ["a"], [], np.zeros((5, 1, 1, 3)))
    with pytest.raises(ValueError, match="different individuals"):
        MultiAnimalLabels.concat([_labels(["x/a.png"]),
                                  MultiAnimalLabels("/p", "s", ["m1"], ["a", "b", "c"], ["u"], ["x/b.png"],
                                                    np.zeros((1, 1, 3, 2)))])


def test_tracks_without_unique_parts_get_an_empty_array_and_absent_animals_show():
    poses = np.ones((4, 2, 1, 3))
    poses[1:3, 1] = np.nan
    tracks = AnimalTracks("s", ["m1", "m2"], ["a"], [], poses)
    assert tracks.unique_poses.shape == (4, 0, 3)
    assert tracks.animals_present()[:, 1].tolist() == [True, False, False, True]
    assert tracks.xy.shape == (4, 2, 1, 2) and tracks.likelihood.shape == (4, 2, 1)
