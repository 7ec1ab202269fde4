"""Losing a node mid-job on a real multi-node Ray cluster on one machine (tests/cluster/node_loss.py runs
each scenario in a process of its own, against this session's moto S3 server): an archive job that loses
a worker's node, with a plan its pieces need, and is left below --workers finishes with every table as a
single-video analysis gives it; a data-parallel training run resumes from its last checkpoint in storage
and ends with a model that evaluates."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from posecluster import storage
from posecluster.data import synthetic
from posecluster.data.formats.poses import read_pose_table
from posecluster.infer.analyze import analyze_video
from posecluster.infer.predictor import Predictor
from posecluster.model.artifact import load_model, save_model

REPO = Path(__file__).resolve().parents[2]


def scenario(*args: str, timeout: int = 900) -> dict:
    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
           "RAY_AUTH_MODE": "disabled"}
    done = subprocess.run([sys.executable, "-m", "tests.cluster.node_loss", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    assert done.returncode == 0 and lines, done.stdout[-3000:] + done.stderr[-5000:]
    return json.loads(lines[-1].removeprefix("RESULT "))


def test_an_archive_job_survives_losing_a_node_with_its_worker_and_objects(s3_bucket, trained_run, tmp_path):
    trained = load_model(trained_run[0])
    save_model(f"{s3_bucket}/models/tiny", trained.config, trained.bodyparts, trained.state_dict)
    for i in range(4):
        path = str(tmp_path / f"v{i}.mp4")
        synthetic.render_video(path, synthetic.Scene(width=96, height=80, seed=60 + i), 48, gop=12)
        storage.atomic_upload(path, f"{s3_bucket}/videos/v{i}.mp4")
    outcome = scenario("archive", s3_bucket)
    assert outcome["removed"], "no node was removed"
    # The node that went held a busy worker, and the cluster was left with one worker node for two
    # workers: the other one finished the job.
    assert outcome["status"] == "finished" and outcome["workers_lost"] >= 1
    videos = outcome["videos"]
    assert [v["status"] for v in videos.values()] == ["done"] * 4, videos
    predictor = Predictor(load_model(f"{s3_bucket}/models/tiny"))
    for uri, video in videos.items():
        single = analyze_video(predictor, uri, str(tmp_path / "single"), progress=False)
        np.testing.assert_allclose(read_pose_table(video["h5"]).to_numpy(),
                                   read_pose_table(single.outputs["h5"]).to_numpy(), rtol=1e-4, atol=1e-3)


# Slow (84 s on 2 cores): the default run covers resuming from a storage checkpoint with a killed Ray
# Train worker (tests/cluster/test_training.py); this adds the node (raylet, object store) going with it.
@pytest.mark.slow
def test_a_training_run_resumes_from_its_checkpoint_after_losing_a_node(s3_bucket, synthetic_project):
    from posecluster.data.project import read_project
    from posecluster.train.evaluate import evaluate

    run = f"{s3_bucket}/models/ddp-node-loss"
    outcome = scenario("train", synthetic_project.uri, run)
    assert outcome["removed"], "no node hosting a training worker was removed"
    history = storage.read_bytes(f"{run}/history.csv").decode().splitlines()
    header = history[0].split(",")
    rows = [dict(zip(header, line.split(","))) for line in history[1:]]
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3, 4]
    assert int(rows[-1]["attempt_started_at_epoch"]) >= 1  # the last attempt began from a checkpoint
    evaluation = evaluate(run, read_project(synthetic_project.uri).labels)
    assert evaluation.test_images > 0 and np.isfinite(evaluation.test_error_px)


pytestmark = pytest.mark.timeout(1200)
