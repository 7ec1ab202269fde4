"""Shared fixtures: real components only (moto S3 server on loopback, rendered videos, real PyAV)."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import time
import uuid
from dataclasses import dataclass
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


# --- Real object stores beside moto ------------------------------------------------------------------------
# The storage contract and the archive's end-to-end tests also run against a real Ceph RADOS Gateway on
# loopback (tests/storage/rgw.py), over HTTP and HTTPS, and against any endpoint a facility names:
#   POSECLUSTER_TEST_S3_ENDPOINT=https://s3.facility.example  POSECLUSTER_TEST_S3_KEY=...
#   POSECLUSTER_TEST_S3_SECRET=...  [POSECLUSTER_TEST_S3_CA_BUNDLE=/path/ca.pem]
#   [POSECLUSTER_TEST_S3_BUCKET=existing-bucket  (else the tests create and leave buckets)]
#   pytest tests/test_storage.py tests/storage tests/cluster/test_archive_stores.py
# POSECLUSTER_TEST_RGW=0 leaves the local RGW out.
STORE_ENV = ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_CA_BUNDLE")


@dataclass(frozen=True)
class ObjectStore:
    name: str
    endpoint: str
    key: str
    secret: str
    ca_bundle: str | None = None
    bucket: str | None = None  # an existing bucket to work under (an external store), else one per test

    def env(self) -> dict[str, str | None]:
        return {"AWS_ENDPOINT_URL": self.endpoint, "AWS_ACCESS_KEY_ID": self.key,
                "AWS_SECRET_ACCESS_KEY": self.secret, "AWS_CA_BUNDLE": self.ca_bundle}

    def client(self):
        import boto3
        from botocore.config import Config

        # Checksums only where required, as posecluster's own clients send them (RGW 16 over HTTPS refuses
        # botocore's default aws-chunked uploads).
        config = Config(request_checksum_calculation="when_required", response_checksum_validation="when_required")
        return boto3.client("s3", endpoint_url=self.endpoint, aws_access_key_id=self.key, config=config,
                            aws_secret_access_key=self.secret, region_name="us-east-1", verify=self.ca_bundle or True)

    def new_root(self) -> str:
        """A fresh place to work: a new bucket, or a new prefix in the configured one."""
        if self.bucket:
            return f"s3://{self.bucket}/posecluster-tests/{uuid.uuid4().hex[:12]}"
        name = f"test-{uuid.uuid4().hex[:12]}"
        self.client().create_bucket(Bucket=name)
        return f"s3://{name}"


@contextlib.contextmanager
def using_store(store: ObjectStore):
    """Point every storage call of this process at `store` (its endpoint, keys and CA) for a while, then
    back. fsspec keeps one filesystem per set of options, and the environment is not among them."""
    import s3fs

    saved = {k: os.environ.get(k) for k in STORE_ENV}
    for key, value in store.env().items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    s3fs.S3FileSystem.clear_instance_cache()
    try:
        yield store
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        s3fs.S3FileSystem.clear_instance_cache()


@pytest.fixture(scope="session")
def rgw(tmp_path_factory):
    """A Ceph RGW on loopback for the session (about 15-20 s to start), or a skip saying what is missing."""
    from tests.storage import rgw as ceph

    if os.environ.get("POSECLUSTER_TEST_RGW") == "0":
        pytest.skip("POSECLUSTER_TEST_RGW=0: the local Ceph RGW is left out")
    missing = ceph.missing_binaries()
    if missing:
        pytest.skip(f"Ceph RGW needs Debian's packages (apt-get install -y --no-install-recommends radosgw ceph-mon "
                    f"ceph-osd ceph-common); missing: {', '.join(missing)}")
    gateway, endpoints = ceph.start_gateway(str(tmp_path_factory.mktemp("ceph")))
    try:
        yield endpoints
    finally:
        gateway.stop()


STORES = ["moto", "rgw-http", "rgw-https"] + (["external"] if os.environ.get("POSECLUSTER_TEST_S3_ENDPOINT") else [])


def store_named(request, name: str) -> ObjectStore:
    from tests.storage import rgw as ceph

    if name == "moto":
        endpoint = request.getfixturevalue("s3_endpoint")
        return ObjectStore("moto", endpoint, "testing-key-id", "testing-secret-key")
    if name == "external":
        return ObjectStore("external", os.environ["POSECLUSTER_TEST_S3_ENDPOINT"],
                           os.environ.get("POSECLUSTER_TEST_S3_KEY", ""), os.environ.get("POSECLUSTER_TEST_S3_SECRET", ""),
                           os.environ.get("POSECLUSTER_TEST_S3_CA_BUNDLE") or None,
                           os.environ.get("POSECLUSTER_TEST_S3_BUCKET") or None)
    endpoints = request.getfixturevalue("rgw")
    url = endpoints.https if name == "rgw-https" else endpoints.http
    return ObjectStore(name, url, ceph.ACCESS_KEY, ceph.SECRET_KEY, endpoints.ca_bundle)


@pytest.fixture(params=STORES)
def object_store(request):
    """The same test against moto, a real Ceph RGW over HTTP and over HTTPS (and a facility's endpoint)."""
    request.getfixturevalue("s3_endpoint")  # the session's default (moto), restored after the test
    store = store_named(request, request.param)
    with using_store(store):
        yield store


@pytest.fixture
def store_bucket(object_store) -> str:
    """A fresh bucket (or prefix) on each object store in turn."""
    return object_store.new_root()


@pytest.fixture(params=["local"] + STORES)
def store_root(request, tmp_path) -> str:
    """A fresh root on a local folder, and on every object store."""
    if request.param == "local":
        yield str(tmp_path / "root")
        return
    request.getfixturevalue("s3_endpoint")
    store = store_named(request, request.param)
    with using_store(store):
        yield store.new_root() + "/root"


@pytest.fixture(scope="session")
def synthetic_project(tmp_path_factory):
    from posecluster.data import synthetic

    root = tmp_path_factory.mktemp("synthetic") / "project"
    return synthetic.write_project(str(root), labeled_frames=32, scene=synthetic.Scene(width=96, height=80, seed=3, body_length=0.4),
                                   video_frames=64)


def tiny_config(project_config, project_uri: str, epochs: int = 12, calibrate: bool = False):
    """A small detector's settings. `calibrate`: the trained model gets its int8 version and reduced
    precision checks, as a user's training does (the session's trained_run); other tests' trainings skip
    them (~8 s each), their subject being the training itself."""
    from posecluster.config import PoseclusterConfig

    calibration = {} if calibrate else {"int8_calibration_images": 0}
    return PoseclusterConfig(project=project_config, project_uri=project_uri).with_overrides(
        {
            "model": {"backbone": {"name": "resnet18", "weights": "none"}, "global_scale": 1.0},
            "augment": {"crop_size": [80, 80], "scale_range": [0.85, 1.15], "rotation_deg": 15},
            "train": {"epochs": epochs, "batch_size": 4, "progress": False, "checkpoint_every_epochs": 4,
                      "optimizer": {"schedule": [{"from_fraction": 0.0, "lr": 2e-3}, {"from_fraction": 0.8, "lr": 4e-4}]},
                      **calibration},
            "split": {"training_fraction": 0.75},
            # Speed is not judged in tests (precision_min_speedup 0): which path auto takes must not
            # depend on how busy the machine is; tests of the speed rules set it themselves. Test videos
            # are short: their ranges are checked whatever their length (precision_min_range_frames).
            "infer": {"batch_size": 16, "precision_min_speedup": 0, "precision_min_range_frames": 0},
        }
    )


@pytest.fixture(scope="session")
def trained_run(synthetic_project, tmp_path_factory):
    """One small detector trained from scratch on the rendered project, shared by the session."""
    from posecluster.data.project import read_project
    from posecluster.train.loop import train

    project = read_project(synthetic_project.uri)
    run = str(tmp_path_factory.mktemp("runs") / "tiny")
    result = train(tiny_config(project.config, synthetic_project.uri, epochs=24, calibrate=True), project.labels, run)
    return run, result


def copy_finished_run(run: str, dest) -> None:
    """A copy of a finished run as jobs read it (model.pt, config, split, history), without its checkpoints:
    the session's run keeps three (~400 MB with the optimizer's state), and tests that copied them whole
    wrote ~13 GB per suite run, enough to fill a CI disk."""
    shutil.copytree(run, dest, ignore=shutil.ignore_patterns("checkpoints"))


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
