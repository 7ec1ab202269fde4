"""Shared fixtures: real components only (moto S3 server on loopback, rendered videos, real PyAV)."""

from __future__ import annotations

import logging
import os
import time
import uuid
from pathlib import Path

import pytest
import torch

torch.set_num_threads(2)

OPENFIELD = Path(__file__).resolve().parents[2] / "shared" / "data" / "openfield"


@pytest.fixture(scope="session")
def openfield() -> str:
    if not (OPENFIELD / "config.yaml").exists():
        pytest.skip(f"DeepLabCut's openfield example is not at {OPENFIELD} (../shared beside the checkout)")
    return str(OPENFIELD)


@pytest.fixture(scope="session")
def openfield_video(openfield) -> str:
    return f"{openfield}/videos/m3v1mp4.mp4"


class RestartableMoto:
    """The session's moto S3 server, which tests may take away for a while (an outage) and bring back on
    the same port; its buckets live in this process, so they survive."""

    def __init__(self):
        from moto.server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self.server.start()
        self.host, self.port = self.server.get_host_and_port()

    def get_host_and_port(self) -> tuple[str, int]:
        return self.host, self.port

    def outage(self, seconds: float) -> bool:
        """Stop answering (connections refused) for `seconds`, then serve again; True when a connection
        was indeed refused in between. Callers make requests use one connection each (HTTP/1.0) so that
        no keep-alive connection outlives the stop."""
        import socket

        from moto.server import ThreadedMotoServer

        self.server.stop()
        self.server._server.server_close()  # stop listening: new connections are refused
        try:
            socket.create_connection((self.host, self.port), timeout=1).close()
            refused = False
        except OSError:
            refused = True
        time.sleep(seconds)
        self.server = ThreadedMotoServer(ip_address=self.host, port=self.port, verbose=False)
        self.server.start()
        return refused

    def stop(self) -> None:
        self.server.stop()


@pytest.fixture(scope="session")
def s3_server():
    """The moto S3 server behind s3_endpoint (tests may stop and restart it: RestartableMoto)."""
    server = RestartableMoto()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def s3_endpoint(s3_server):
    """A moto S3 server on 127.0.0.1, reached over HTTP exactly as a real endpoint."""
    host, port = s3_server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    saved = {k: os.environ.get(k) for k in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION")}
    os.environ.update(
        AWS_ENDPOINT_URL=endpoint,
        AWS_ACCESS_KEY_ID="testing-key-id",
        AWS_SECRET_ACCESS_KEY="testing-secret-key",
        AWS_DEFAULT_REGION="us-east-1",
    )
    yield endpoint
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture
def s3_bucket(s3_endpoint) -> str:
    import boto3

    name = f"test-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=s3_endpoint).create_bucket(Bucket=name)
    return f"s3://{name}"


@pytest.fixture(params=["local", "s3"])
def storage_root(request, tmp_path) -> str:
    """The same test against a local folder and against the moto S3 server."""
    if request.param == "local":
        return str(tmp_path / "root")
    return request.getfixturevalue("s3_bucket") + "/root"


@pytest.fixture(scope="session")
def synthetic_project(tmp_path_factory):
    from posecluster.data import synthetic

    root = tmp_path_factory.mktemp("synthetic") / "project"
    return synthetic.write_project(str(root), labeled_frames=32, scene=synthetic.Scene(width=96, height=80, seed=3, body_length=0.4),
                                   video_frames=64)


def tiny_config(project_config, project_uri: str, epochs: int = 12):
    from posecluster.config import PoseclusterConfig

    return PoseclusterConfig(project=project_config, project_uri=project_uri).with_overrides(
        {
            "model": {"backbone": {"name": "resnet18", "weights": "none"}, "global_scale": 1.0},
            "augment": {"crop_size": [80, 80], "scale_range": [0.85, 1.15], "rotation_deg": 15},
            "train": {"epochs": epochs, "batch_size": 4, "progress": False, "checkpoint_every_epochs": 4,
                      "optimizer": {"schedule": [{"from_fraction": 0.0, "lr": 2e-3}, {"from_fraction": 0.8, "lr": 4e-4}]}},
            "split": {"training_fraction": 0.75},
            "infer": {"batch_size": 16},
        }
    )


@pytest.fixture(scope="session")
def trained_run(synthetic_project, tmp_path_factory):
    """One small detector trained from scratch on the rendered project, shared by the session."""
    from posecluster.data.project import read_project
    from posecluster.train.loop import train

    project = read_project(synthetic_project.uri)
    run = str(tmp_path_factory.mktemp("runs") / "tiny")
    result = train(tiny_config(project.config, synthetic_project.uri, epochs=24), project.labels, run)
    return run, result


@pytest.fixture(scope="session")
def ray_local(s3_endpoint):
    """One local Ray for the session (start-up costs 8-15 s); started after the S3 endpoint so that
    its workers inherit the endpoint and credentials from the environment."""
    import ray

    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR")
    yield
    ray.shutdown()


@pytest.fixture(scope="session")
def analysed_video(trained_run, tmp_path_factory):
    """A rendered video (known truth) analysed by the session's detector: (RenderedVideo, poses folder)."""
    from posecluster.data import synthetic
    from posecluster.infer.analyze import analyze_video
    from posecluster.infer.predictor import Predictor
    from posecluster.train.checkpoint import load_model

    root = tmp_path_factory.mktemp("analysed")
    video = synthetic.render_video(str(root / "videos" / "trial7.mp4"), synthetic.Scene(width=96, height=80, seed=7,
                                                                                          body_length=0.4), 90, gop=15)
    result = analyze_video(Predictor(load_model(trained_run[0])), video.uri, str(root / "poses"), progress=False)
    # The tables' own folder (the video's folder mirrored under --out), which the tests copy and read.
    return video, os.path.dirname(result.outputs["h5"])


def copy_analysis(poses: str, dest) -> str:
    """A private copy of an analysis folder (tables + _meta.json pointing at the copies), for tests that
    write beside the tables; session fixtures stay untouched."""
    import json
    import shutil
    from pathlib import Path

    shutil.copytree(poses, dest)
    for meta_path in Path(dest).glob("*_meta.json"):
        meta = json.loads(meta_path.read_text())
        meta["outputs"] = {k: str(Path(dest) / Path(v).name) for k, v in meta["outputs"].items()}
        meta_path.write_text(json.dumps(meta))
    return str(dest)


@pytest.fixture(scope="session")
def matrix(tmp_path_factory) -> dict[str, str]:
    """The frame-numbering conformance videos (tests/data/video_matrix.py): name -> local path."""
    from tests.data import video_matrix

    return video_matrix.render_matrix(str(tmp_path_factory.mktemp("video-matrix")))


@pytest.fixture(scope="session")
def oracles(matrix) -> dict:
    """Each matrix video's frames from a plain sequential PyAV decode (the numbering every reader keeps)."""
    from tests.data import video_matrix

    return {name: video_matrix.oracle(path) for name, path in matrix.items()}


@pytest.fixture(scope="session")
def ensemble_folder(trained_run, tmp_path_factory) -> str:
    """Three members: the session's detector and two copies with perturbed weights (real model.pt files)."""
    from posecluster.model.ensemble import write_manifest
    from posecluster.train.checkpoint import load_model, save_model

    folder = str(tmp_path_factory.mktemp("ensemble"))
    base = load_model(trained_run[0])
    records = []
    for k in range(3):
        generator = torch.Generator().manual_seed(k)
        weights = {name: value + 0.02 * value.std() * torch.randn(value.shape, generator=generator)
                   if k and value.is_floating_point() and value.numel() > 1 else value
                   for name, value in base.state_dict.items()}
        save_model(f"{folder}/member-{k}", base.config, base.bodyparts, weights)
        records.append({"folder": f"member-{k}", "seed": k})
    write_manifest(folder, records)
    return folder
