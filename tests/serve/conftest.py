"""One served root for the web-app tests, built by posecluster's own commands on the moto S3 server:
a DeepLabCut project with a labeled folder, a freshly extracted folder (3 frames, no labels), outlier
frames proposed from a real analysis, and a real archive run (local Ray) with a finished and a failed video."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import socket
import threading
import time
import uuid
from pathlib import Path

import numpy as np
import pytest

from posecluster import api, storage
from posecluster.analysis.outliers import OutlierOptions
from posecluster.cluster.archive import ArchiveOptions
from posecluster.cluster.manifest import ManifestWriter
from posecluster.data import synthetic
from posecluster.data.formats import dlc
from posecluster.labeling.project_frames import add_frames

CHROMIUM = os.environ.get("POSECLUSTER_CHROMIUM", "/usr/bin/chromium")
INSTALL = ("needs a browser: `apt-get install -y chromium` (Debian) and `pip install playwright==1.65.2`, "
           "or POSECLUSTER_CHROMIUM=/path/to/chromium")
# Checked at collection, so that no fixture (S3 site, Ray, archive run) is built for tests that cannot run.
needs_browser = pytest.mark.skipif(
    importlib.util.find_spec("playwright") is None or not shutil.which(CHROMIUM),
    reason=f"{CHROMIUM} or playwright missing: {INSTALL}")

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


def made_up_records(n: int) -> list[dict]:
    records = []
    for i in range(n):
        uri = f"s3://lab/videos/v{i:03d}.mp4"
        if i % 10 == 3:
            records.append({"uri": uri, "status": "failed", "key": f"k{i}", "frames": 0, "error": f"{uri}: frame {i}: bad"})
        else:
            status = "done-with-warnings" if i % 10 == 7 else "done"
            record = {"uri": uri, "status": status, "key": f"k{i}", "frames": 100 + i, "cuts": [0, 50, 100 + i],
                      "computed": 2, "outputs": {"h5": f"s3://lab/poses/v{i:03d}DLC.h5"}}
            if status == "done-with-warnings":
                record["missing"] = "3-5,9"
            records.append(record)
    return records


def write_job(out: str, job_id: str, records: list[dict], pending: int, flushes: int) -> None:
    """What schedule.py's driver does: records flushed as they finish, with the summary's counts."""
    writer = ManifestWriter(out, job_id)
    per_flush = -(-len(records) // flushes)
    counts: dict[str, int] = {}
    for start in range(0, len(records), per_flush):
        for record in records[start:start + per_flush]:
            writer.add(record)
            counts[record["status"]] = counts.get(record["status"], 0) + 1
        summary = {"job_id": job_id, "out": out, "status": "running" if pending else "finished",
                   "model": {"uri": "s3://lab/models/m", "sha256": "0" * 64}, "started": 1.7e9, "seconds": 10.0,
                   "videos_total": len(records) + pending, "counts": {**counts, **({"pending": pending} if pending else {})},
                   "frames_computed": 5000, "fps": 500.0, "segments_computed": 7, "segments_cached": 1,
                   "workers": 2, "first_table_s": 1.5, "failures": []}
        writer.flush(summary, force=True)


def small_project(uri: str, frames: int = 3, seed: int = 3) -> str:
    """A DeepLabCut project of `frames` labeled 96x80 frames (labeled-data/arena0) and an 8-frame video."""
    synthetic.write_project(uri, labeled_frames=frames, scene=synthetic.Scene(width=96, height=80, seed=seed, body_length=0.4),
                            video_frames=8)
    return uri


def labeling_root(root, folders: tuple[str, ...]) -> str:
    """`root`/lab/demo (a small_project) with one folder of three unlabeled 96x80 frames per name in
    `folders`, so that browser tests never share labels."""
    project = small_project(str(root / "lab" / "demo"), frames=2)
    config = dlc.read_project_config(f"{project}/config.yaml")
    renderer = synthetic.Renderer(synthetic.Scene(width=96, height=80, seed=5, body_length=0.4))
    frames = [renderer.render(state) for state in renderer.trajectory(30)[::10]]
    for folder in folders:
        add_frames(project, config, f"labeled-data/{folder}",
                   {f"labeled-data/{folder}/img{i}.png": frame for i, frame in enumerate(frames)})
    return str(root)


ANIMAL_FRESH = "fresh"  # an animal_project folder of unlabeled frames


def animal_project(uri: str, seed: int = 0) -> dict:
    """A rendered 2-animal maDLC project at `uri` (64x48 frames; labeled-data/arena0 labeled, labeled-data/fresh
    three frames without a table) and a tracked table of its 6-frame video, videos/arena0synthetic_el.h5
    with the _meta.json an analysis writes beside it (the video, its frames, the project's skeleton and
    p-cutoff). The table holds the rendered ground truth, with animal2's tail base at frame 0 below the
    p-cutoff. Returns {"table": URI, "video": URI}."""
    import json

    from posecluster.data import synthetic_multianimal as animals
    from posecluster.data.formats import madlc
    from posecluster.data.images import write_png

    scene = animals.MultiAnimalScene(width=64, height=48, animals=2, seed=seed)
    made = animals.write_project(uri, labeled_frames=2, scene=scene, video_frames=6)
    renderer = animals.MultiAnimalRenderer(scene)
    for i, state in enumerate(renderer.states(np.arange(200, 215, 5))):
        write_png(f"{uri}/labeled-data/{ANIMAL_FRESH}/img{i}.png", renderer.render(state))
    video = made.videos[0]
    tracks = video.truth
    tracks.poses[0, 1, tracks.bodyparts.index("tailbase"), 2] = 0.2
    table = video.uri[:-len(".mp4")] + f"{animals.SCORER}_el.h5"
    madlc.write_tracks(tracks, table)
    meta = {"video": video.uri, "frames": len(tracks), "scorer": animals.SCORER,
            "config": {"project": made.config.model_dump(mode="json")}}
    storage.atomic_write_bytes(table[:-len(".h5")] + "_meta.json", json.dumps(meta).encode())
    return {"table": table, "video": video.uri}


@contextlib.contextmanager
def running(app, host: str = "127.0.0.1"):
    """A real uvicorn server for `app` on a free port, in a thread (what a browser or a raw socket talks
    to); yields its base URL."""
    import uvicorn

    sock = socket.socket()
    sock.bind((host, 0))
    instance = uvicorn.Server(uvicorn.Config(app, access_log=False, log_level="warning", proxy_headers=False))
    thread = threading.Thread(target=instance.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not instance.started and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        yield f"http://{host}:{sock.getsockname()[1]}"
    finally:
        instance.should_exit = True
        thread.join(10)


@pytest.fixture(scope="session")
def browser():
    """One headless Chromium for every browser test of the session (contexts keep tests apart)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"], headless=True)
        yield chromium
        chromium.close()


@contextlib.contextmanager
def browser_page(browser, base: str, token: str | None = TOKEN, **context_options):
    """A fresh browser context and page on the app at `base` (signed in with the printed-URL token when
    given); fails the test if any script on the page threw."""
    context = browser.new_context(**{"viewport": {"width": 1100, "height": 640}, **context_options})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    if token:
        page.goto(f"{base}/?token={token}")  # sets the cookie, redirects to / without the token
        assert "token" not in page.url
    try:
        yield page
    finally:
        context.close()
    assert not errors, errors


def screenshot(page, name: str) -> None:
    """The page as docs/screenshots shows it, when POSECLUSTER_SCREENSHOTS names a folder."""
    folder = os.environ.get("POSECLUSTER_SCREENSHOTS")
    if folder:
        os.makedirs(folder, exist_ok=True)
        page.screenshot(path=f"{folder}/{name}.png")


@pytest.fixture(scope="session")
def ray_head(s3_endpoint):
    """One private Ray head (`ray start --head` through posecluster's LocalRayHead: its own temp dir, free
    ports, token authentication) for every test that submits jobs through Ray's Job Submission API. Started
    after the S3 endpoint, so its job drivers and workers inherit the endpoint and credentials, as the
    chart's pods get them; PYTHONPATH names this checkout, so jobs run this code."""
    import tempfile

    from posecluster.cluster.submission import LocalRayHead

    repo = str(Path(__file__).resolve().parents[2])
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [repo, os.environ.get("PYTHONPATH")])))
    temp = tempfile.mkdtemp(prefix="pc-ray-", dir=os.environ.get("RAY_TMPDIR") or "/tmp")
    head = LocalRayHead(num_cpus=2, temp_dir=temp, env=env)
    try:
        yield head.wait_ready()
    finally:
        head.stop()
        shutil.rmtree(temp, ignore_errors=True)
