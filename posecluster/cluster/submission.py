"""Ray's Job Submission API (the dashboard's HTTP endpoint, `ray.job_submission.JobSubmissionClient`) for
the work a web app starts on a cluster: submit a posecluster command, list, read logs, stop.

The entrypoint is always an argument list joined with shlex (each argument quoted), never a string from
a user: what a job runs is decided by whoever built the list. Credentials never travel with a job: the
cluster's pods hold their own storage credentials; Ray's token (if the cluster has one) goes in the
Authorization header only.

LocalRayHead starts a private `ray start --head` (its own temp dir, free ports, a fresh token) for a web
app serving one machine's folder, and the tests."""

from __future__ import annotations

import os
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass

LOG_TAIL_BYTES = 64 << 10


@dataclass(frozen=True)
class SubmittedJob:
    """One Ray job as the web app shows it (times in seconds since the epoch)."""

    submission_id: str
    status: str  # PENDING, RUNNING, STOPPED, SUCCEEDED, FAILED
    message: str
    entrypoint: str
    start_time: float | None
    end_time: float | None
    metadata: dict[str, str]


class RayJobs:
    """The Job Submission API of one Ray cluster (`address`: the dashboard URL, http://head:8265)."""

    def __init__(self, address: str, token: str | None = None):
        self.address, self._token = address, token
        self._client = None
        self._guard = threading.Lock()

    def _connected(self):
        from ray.job_submission import JobSubmissionClient

        with self._guard:
            if self._client is None:
                headers = {"Authorization": f"Bearer {self._token}"} if self._token else None
                self._client = JobSubmissionClient(self.address, headers=headers)
            return self._client

    def _call(self, method: str, *args, **kwargs):
        """A call of the client; a dropped connection is retried once with a fresh client."""
        try:
            return getattr(self._connected(), method)(*args, **kwargs)
        except ConnectionError:
            with self._guard:
                self._client = None
            return getattr(self._connected(), method)(*args, **kwargs)

    def submit(self, argv: list[str], submission_id: str, metadata: dict[str, str]) -> str:
        return self._call("submit_job", entrypoint=shlex.join(argv), submission_id=submission_id,
                          metadata={str(k): str(v) for k, v in metadata.items()})

    def jobs(self) -> list[SubmittedJob]:
        out = []
        for job in self._call("list_jobs"):
            if not job.submission_id:
                continue  # a driver started by hand (ray.init), not through the job API
            out.append(SubmittedJob(
                submission_id=job.submission_id, status=str(getattr(job.status, "value", job.status)),
                message=job.message or "", entrypoint=job.entrypoint or "",
                start_time=job.start_time / 1000 if job.start_time else None,
                end_time=job.end_time / 1000 if job.end_time else None, metadata=dict(job.metadata or {})))
        return out

    def job(self, submission_id: str) -> SubmittedJob:
        info = self._call("get_job_info", submission_id)
        return SubmittedJob(submission_id=submission_id, status=str(getattr(info.status, "value", info.status)),
                            message=info.message or "", entrypoint=info.entrypoint or "",
                            start_time=info.start_time / 1000 if info.start_time else None,
                            end_time=info.end_time / 1000 if info.end_time else None,
                            metadata=dict(info.metadata or {}))

    def logs(self, submission_id: str) -> str:
        """The last LOG_TAIL_BYTES of the job's driver output."""
        text = self._call("get_job_logs", submission_id) or ""
        return text[-LOG_TAIL_BYTES:]

    def stop(self, submission_id: str) -> bool:
        return bool(self._call("stop_job", submission_id))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LocalRayHead:
    """A private Ray head on this machine (`ray start --head --block` in its own process group and temp
    dir, every port free, token authentication with a fresh token), stopped with stop()."""

    def __init__(self, num_cpus: int = 2, temp_dir: str | None = None, env: dict[str, str] | None = None):
        self._owns_temp_dir = temp_dir is None
        self.temp_dir = temp_dir or tempfile.mkdtemp(prefix="posecluster-ray-")
        self.token = secrets.token_hex(24)
        self.dashboard_port, self.gcs_port = _free_port(), _free_port()
        self.address = f"http://127.0.0.1:{self.dashboard_port}"
        environment = dict(env if env is not None else os.environ)
        environment.pop("RAY_ADDRESS", None)
        bin_dir = sys.executable.rsplit("/", 1)[0]  # the `ray` and `posecluster` of this environment
        environment.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=self.token,
                           PATH=f"{bin_dir}{os.pathsep}{environment.get('PATH', '')}")
        args = [f"{bin_dir}/ray", "start", "--head", "--block", f"--num-cpus={num_cpus}",
                "--disable-usage-stats", f"--port={self.gcs_port}", f"--dashboard-port={self.dashboard_port}",
                "--dashboard-host=127.0.0.1", f"--metrics-export-port={_free_port()}",
                f"--dashboard-agent-listen-port={_free_port()}", f"--ray-client-server-port={_free_port()}",
                f"--temp-dir={self.temp_dir}"]
        self._log = open(f"{self.temp_dir}/head.log", "w")
        self.process = subprocess.Popen(args, env=environment, stdout=self._log, stderr=subprocess.STDOUT,
                                        start_new_session=True)

    def jobs(self) -> RayJobs:
        return RayJobs(self.address, self.token)

    def wait_ready(self, timeout: float = 120) -> "LocalRayHead":
        """Until the job API answers (the dashboard comes up last)."""
        deadline = time.monotonic() + timeout
        client = self.jobs()
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                with open(f"{self.temp_dir}/head.log") as fh:
                    raise RuntimeError(f"ray start exited: {fh.read()[-2000:]}")
            try:
                client.jobs()
                return self
            except Exception:  # noqa: BLE001 -- not up yet: connection refused, 5xx while starting
                time.sleep(1)
        raise TimeoutError(f"the Ray head in {self.temp_dir} did not answer within {timeout:.0f} s")

    def stop(self) -> None:
        """SIGINT to the head's process group (raylet, GCS, dashboard, workers: `ray start --block` shuts
        them down on an interrupt, and ignores SIGTERM for long), then SIGKILL for what is left."""
        try:
            os.killpg(self.process.pid, signal.SIGINT)
            self.process.wait(15)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            pass
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self._log.close()
        if self._owns_temp_dir:
            shutil.rmtree(self.temp_dir, ignore_errors=True)
