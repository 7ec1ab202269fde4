from __future__ import annotations

import numpy as np

from posecluster import storage
from posecluster.data.project import read_project


def test_openfield_project_reads_all_labeled_frames(openfield):
    project = read_project(openfield)
    assert len(project.labels) == 116
    assert project.labels.bodyparts == ["snout", "leftear", "rightear", "tailbase"]
    assert project.labels.images[0] == "labeled-data/m4s1/img0000.png"
    np.testing.assert_allclose(project.labels.keypoints[0, 0], [21.521, 265.428])


def test_project_is_read_from_s3_like_from_disk(openfield, s3_bucket):
    root = f"{s3_bucket}/projects/openfield"
    storage.atomic_write_bytes(f"{root}/config.yaml", storage.read_bytes(f"{openfield}/config.yaml"))
    for name in storage.list_files(f"{openfield}/labeled-data"):
        relative = name[len(openfield) + 1 :]
        storage.atomic_write_bytes(f"{root}/{relative}", storage.read_bytes(name))
    remote, local = read_project(root), read_project(openfield)
    assert remote.labels.images == local.labels.images
    np.testing.assert_array_equal(remote.labels.keypoints, local.labels.keypoints)
    assert remote.labels.image_uri(0) == f"{root}/labeled-data/m4s1/img0000.png"


def test_rendered_project_has_some_missing_labels_and_a_video(synthetic_project):
    project = read_project(synthetic_project.uri)
    assert len(project.labels) == 32
    assert storage.exists(synthetic_project.videos[0].uri)
    assert synthetic_project.videos[0].truth.shape == (64, 4, 2)
