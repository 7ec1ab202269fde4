"""`ray job submit` against a real Ray head started with `ray start --head`, reading and writing the moto
S3 server, with Ray's per-node metrics endpoints scraped (as Prometheus would) during and after the job."""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from pathlib import Path

import psutil
import pytest
from prometheus_client.parser import text_string_to_metric_families

from posecluster import storage
from posecluster.cluster.manifest import iter_records
from posecluster.data import synthetic
from posecluster.data.formats.poses import read_pose_table
from posecluster.train.checkpoint import load_model, save_model
from tests.deploy.tooling import REPO

SUBMIT = REPO / "deploy" / "ray-jobs" / "submit.sh"
FRAMES = 600


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RayHead:
    """`ray start --head --block` in its own process group, token auth on as in production."""

    def __init__(self, temp_dir: Path, env: dict[str, str]):
        self.temp_dir, self.dashboard_port, self.gcs_port = temp_dir, free_port(), free_port()
        self.address = f"http://127.0.0.1:{self.dashboard_port}"
        self.env = env
        args = ["ray", "start", "--head", "--block", "--num-cpus=2", "--disable-usage-stats",
                f"--port={self.gcs_port}", f"--dashboard-port={self.dashboard_port}", "--dashboard-host=127.0.0.1",
                f"--metrics-export-port={free_port()}", f"--dashboard-agent-listen-port={free_port()}",
                f"--ray-client-server-port={free_port()}", f"--temp-dir={temp_dir}"]
        self.log = open(temp_dir / "head.log", "w")
        self.process = subprocess.Popen(args, env=env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)

    def wait_ready(self, timeout: float = 90) -> None:
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"ray start exited: {(self.temp_dir / 'head.log').read_text()[-2000:]}")
            # Named explicitly: the test session may run another Ray (ray_local) on this machine.
            if self.ray("status", "--address", f"127.0.0.1:{self.gcs_port}", check=False).returncode == 0 \
                    and self.metrics_targets():
                return
            time.sleep(1)
        raise TimeoutError("the Ray head did not come up")

    def ray(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        extra = ["--address", self.address] if args[0] == "job" else []
        result = subprocess.run(["ray", *args, *extra], env=self.env, capture_output=True, text=True)
        if check and result.returncode != 0:
            raise AssertionError(result.stdout + result.stderr)
        return result

    def metrics_targets(self) -> list[str]:
        """Every node's metrics endpoint, from the service-discovery file Ray writes for Prometheus."""
        path = self.temp_dir / "prom_metrics_service_discovery.json"
        if not path.exists():
            return []
        return [target for group in json.loads(path.read_text()) for target in group["targets"]]

    def scrape(self) -> dict[str, float]:
        """posecluster samples summed over nodes and workers, with Ray's ray_ prefix removed (as the
        deploy/ scrape configs do); labels other than `status` are Ray's per-process bookkeeping."""
        totals: dict[str, float] = {}
        for target in self.metrics_targets():
            try:
                text = urllib.request.urlopen(f"http://{target}/metrics", timeout=5).read().decode()
            except OSError:
                continue  # some discovered targets (agents) come and go
            for family in text_string_to_metric_families(text):
                for sample in family.samples:
                    if not sample.name.startswith("ray_posecluster_") or "le" in sample.labels:
                        continue
                    key = sample.name.removeprefix("ray_") + "".join(
                        f"{{status={v}}}" for k, v in sample.labels.items() if k == "status")
                    totals[key] = totals.get(key, 0.0) + sample.value
        return totals

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            pass
        for proc in psutil.process_iter(["cmdline"]):  # raylet, GCS, workers: all name our temp dir
            try:
                if str(self.temp_dir) in " ".join(proc.info["cmdline"] or []):
                    proc.kill()
            except psutil.Error:
                pass
        self.log.close()


@pytest.fixture(scope="module")
def head(s3_endpoint, tmp_path_factory):
    """A Ray head whose processes get the S3 endpoint and credentials from their environment, as the
    Helm chart's pods and compose.yaml's containers do."""
    temp_dir = tmp_path_factory.mktemp("rayhead")
    env = dict(os.environ)
    env.update(PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
               RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=secrets.token_hex(24),
               RAY_metrics_report_interval_ms="500", RAY_ADDRESS="")
    env.pop("RAY_ADDRESS")
    ray_head = RayHead(temp_dir, env)
    try:
        ray_head.wait_ready()
        yield ray_head
    finally:
        ray_head.stop()


@pytest.fixture(scope="module")
def archive(s3_endpoint, trained_run, tmp_path_factory):
    import boto3

    bucket = f"jobs-{uuid.uuid4().hex[:8]}"
    boto3.client("s3", endpoint_url=s3_endpoint).create_bucket(Bucket=bucket)
    root = f"s3://{bucket}"
    trained = load_model(trained_run[0])
    save_model(f"{root}/models/tiny", trained.config, trained.bodyparts, trained.state_dict)
    video = str(tmp_path_factory.mktemp("jobvideo") / "session1.mp4")
    synthetic.render_video(video, synthetic.Scene(width=96, height=80, seed=11), FRAMES, gop=10)
    storage.atomic_upload(video, f"{root}/videos/cage3/session1.mp4")
    return root


def submit(head: RayHead, root: str, config_file: Path, submission_id: str) -> subprocess.CompletedProcess:
    env = dict(head.env, RAY_ADDRESS=head.address, POSECLUSTER_CONFIG_FILE=str(config_file),
               SUBMISSION_ID=submission_id)
    command = [str(SUBMIT), "infer", f"{root}/videos/", "--model", f"{root}/models/tiny", "--out", f"{root}/poses/",
               "--workers", "1", "--segment-frames", "20", "--quiet"]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)


# Slow (60 s: a Ray head of its own and a job through its API); run with -m slow before changing the
# recipe or the submission entry point.
@pytest.mark.slow
def test_a_submitted_infer_job_writes_its_tables_and_its_counters_move_by_the_work_done(head, archive, tmp_path):
    config = tmp_path / "posecluster.yaml"
    config.write_text("infer:\n  batch_size: 4\n")  # travels as the job's working dir (runtime env)
    seen: list[float] = []
    done = threading.Event()

    def watch():
        while not done.is_set():
            seen.append(head.scrape().get("posecluster_frames_processed_total", 0.0))
            time.sleep(0.2)

    before = head.scrape()
    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        first = submit(head, archive, config, "posecluster-test-1")
    finally:
        done.set()
        watcher.join()
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    assert "1 done, 0 already done, 0 failed" in first.stdout
    status = re.sub(r"\x1b\[[0-9;]*m", "", head.ray("job", "status", "posecluster-test-1").stdout)
    assert "Job 'posecluster-test-1' succeeded" in status, status

    manifest = json.loads(storage.read_bytes(f"{archive}/poses/posecluster-manifest.json"))
    (video,) = iter_records(f"{archive}/poses", manifest["job_id"])
    scorer = load_model(f"{archive}/models/tiny").scorer
    bucket = archive.split("://", 1)[1].split("/", 1)[0]  # the video's bucket and folder, mirrored under --out
    assert video["outputs"]["h5"] == f"{archive}/poses/{bucket}/videos/cage3/session1{scorer}.h5"
    table = read_pose_table(video["outputs"]["h5"])
    assert len(table) == FRAMES and table.notna().all().all()
    bounds = list(zip(video["cuts"], video["cuts"][1:]))
    segments = len(bounds)
    assert manifest["status"] == "finished" and segments > 10

    time.sleep(1.5)  # three report intervals: the last increments reach the agent
    after = head.scrape()
    assert before.get("posecluster_frames_processed_total", 0) == 0
    assert after["posecluster_frames_processed_total"] == FRAMES
    assert after["posecluster_segments_total{status=done}"] == segments
    assert after["posecluster_videos_total{status=done}"] == 1
    assert after["posecluster_infer_seconds_count"] == sum(-(-(b - a) // 4) for a, b in bounds)
    assert any(0 < value < FRAMES for value in seen), f"no partial count seen while the job ran: {sorted(set(seen))}"
    assert seen == sorted(seen)  # counters only grow

    # The same job again: every video is already done, so nothing is computed and only `skipped` moves.
    second = submit(head, archive, config, "posecluster-test-2")
    assert second.returncode == 0 and "0 done, 1 already done" in second.stdout, second.stdout[-2000:]
    time.sleep(1.5)
    again = head.scrape()
    assert again["posecluster_frames_processed_total"] == FRAMES
    assert again["posecluster_videos_total{status=skipped}"] == 1
    assert again["posecluster_videos_total{status=done}"] == 1
