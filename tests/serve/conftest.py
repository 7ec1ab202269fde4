"""One served root for the web-app tests, built by posecluster's own commands on the moto S3 server:
a DeepLabCut project with a labeled folder, a freshly extracted folder (3 frames, no labels), outlier
frames proposed from a real analysis, and a real archive run (local Ray) with a finished and a failed video."""

from __future__ import annotations

import os
import uuid

import numpy as np
import pytest

from posecluster import api, storage
from posecluster.analysis.outliers import OutlierOptions
from posecluster.cluster.archive import ArchiveOptions
from posecluster.data import synthetic
from posecluster.data.formats import dlc
from posecluster.labeling.project_frames import add_frames

TOKEN = "test-token-0123456789"
LOCAL = "http://localhost"  # the app answers only to loopback names unless told others (DNS rebinding)
PROJECT = "projects/mice"
FRESH = "labeled-data/fresh"
REFINE = "labeled-data/trial7"


@pytest.fixture(scope="session")
def site(s3_endpoint, ray_local, tmp_path_factory) -> str:
    """s3://site-.../ with projects/mice (labeled arena0, fresh, trial7 outliers) and poses/ from infer.

    The detector is an untrained tiny network: the app shows whatever a model predicted, so what it
    predicts does not matter here, and no training is spent on it."""
    import boto3
    import torch

    from posecluster.infer.analyze import analyze_video
    from posecluster.infer.predictor import Predictor
    from posecluster.model.pose_model import PoseModel
    from posecluster.train.checkpoint import load_model, save_model
    from tests.conftest import tiny_config

    bucket = f"site-{uuid.uuid4().hex[:8]}"
    boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"]).create_bucket(Bucket=bucket)
    root = f"s3://{bucket}"
    project = f"{root}/{PROJECT}"
    scene = synthetic.Scene(width=96, height=80, seed=3, body_length=0.4)
    synthetic.write_project(project, labeled_frames=6, scene=scene, video_frames=8)
    dlc.update_project_config(f"{project}/config.yaml", {"pcutoff": 0.0})  # every prediction is an initial label

    renderer = synthetic.Renderer(synthetic.Scene(width=160, height=120, seed=5, body_length=0.4))
    states = renderer.trajectory(30)[::10]
    frames = {f"{FRESH}/img{i:02d}.png": renderer.render(s) for i, s in enumerate(states)}
    add_frames(project, dlc.read_project_config(f"{project}/config.yaml"), FRESH, frames)

    config = dlc.read_project_config(f"{project}/config.yaml")
    torch.manual_seed(0)
    tiny = tiny_config(config, project).with_overrides({"model": {"global_scale": 0.5}})
    model = f"{root}/models/untrained"
    save_model(model, tiny, list(config.bodyparts), PoseModel(tiny.model, len(config.bodyparts)).state_dict())
    tiny.save(f"{model}/config.yaml")  # as a training run leaves it: the jobs page reads its p-cutoff

    recording = synthetic.render_video(f"{root}/recordings/trial7.mp4", scene, 20, gop=10).uri
    analyze_video(Predictor(load_model(model)), recording, f"{root}/analysis", progress=False)
    outcomes = api.extract_outlier_frames([f"{root}/analysis"], project,
                                          OutlierOptions(algorithms=("uncertain",), p_bound=1.01), n=2)
    assert not outcomes[0].error and len(outcomes[0].outputs["frames"]) == 2, outcomes

    synthetic.render_video(f"{root}/videos/good.mp4", synthetic.Scene(width=96, height=80, seed=9), 24, gop=12)
    storage.atomic_write_bytes(f"{root}/videos/broken.mp4", b"\x00\x00\x00\x18ftypmp42" + b"garbage" * 300)
    report = api.infer_archive([f"{root}/videos/"], ArchiveOptions(
        model=model, out=f"{root}/poses", workers=1, segment_frames=100, progress=False))
    assert sorted(v.status for v in report.videos) == ["done", "failed"], [(v.uri, v.error) for v in report.videos]
    return root


def copy_project(root: str, name: str) -> str:
    """A private copy of the site's project (tests that save must not see each other's labels)."""
    source = f"{root}/{PROJECT}"
    for uri in storage.list_files(source):
        storage.atomic_write_bytes(f"{root}/projects/{name}{uri[len(source):]}", storage.read_bytes(uri))
    return f"projects/{name}"


@pytest.fixture(scope="session")
def outside(s3_endpoint) -> str:
    """Another bucket, beside the served one, holding a secret."""
    import boto3

    bucket = f"outside-{uuid.uuid4().hex[:8]}"
    boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"]).create_bucket(Bucket=bucket)
    storage.atomic_write_bytes(f"s3://{bucket}/secret.png", b"SECRET-BYTES")
    return f"s3://{bucket}"


def labels_of(project: str, folder: str) -> tuple[list[str], np.ndarray]:
    """The folder's table as posecluster's DeepLabCut reader sees it."""
    config = dlc.read_project_config(f"{project}/config.yaml")
    uri = dlc.table_uri(project, folder, config.scorer, "h5")
    dataset = dlc.table_to_dataset(dlc.read_table(uri), uri, project, config.bodyparts)
    return dataset.images, dataset.keypoints
