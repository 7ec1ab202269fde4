"""Faults that are no video's fault, on a real local Ray against the moto S3 server: storage away for
longer than every retry budget (the job pauses, then resumes), away past the outage limit (the job stops
cleanly and a rerun resumes), and a worker killed with items queued behind it."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from posecluster import storage
from posecluster.cli.main import build_parser
from posecluster.cluster.archive import ArchiveOptions, Patience, run_archive
from posecluster.cluster.manifest import iter_records, read_summary
from posecluster.data import synthetic
from posecluster.data.formats.poses import read_pose_table
from posecluster.model.artifact import load_model, save_model

VIDEOS = 6  # in videos/; the crash test renders its own


@pytest.fixture(scope="module")
def bucket(ray_local, trained_run, tmp_path_factory):
    import os
    import uuid

    import boto3

    name = f"faults-{uuid.uuid4().hex[:8]}"
    boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"]).create_bucket(Bucket=name)
    root = f"s3://{name}"
    trained = load_model(trained_run[0])
    save_model(f"{root}/models/tiny", trained.config, trained.bodyparts, trained.state_dict)
    local = tmp_path_factory.mktemp("fault-videos")
    for i in range(VIDEOS):
        path = str(local / f"v{i}.mp4")
        synthetic.render_video(path, synthetic.Scene(width=96, height=80, seed=40 + i), 24, gop=12)
        storage.atomic_upload(path, f"{root}/videos/v{i}.mp4")
    return root


def options(root: str, out: str, **extra) -> ArchiveOptions:
    return ArchiveOptions(model=f"{root}/models/tiny", out=f"{root}/{out}", workers=2, segment_frames=12,
                          progress=False, infer_overrides={"batch_size": 4}, **extra)


def tables(report) -> dict[str, np.ndarray]:
    return {v.uri: read_pose_table(v.outputs["h5"]).to_numpy() for v in report.videos if v.done}


@pytest.fixture(scope="module")
def clean(bucket):
    report = run_archive([f"{bucket}/videos/"], options(bucket, "poses-clean"))
    assert all(v.status == "done" for v in report.videos)
    return tables(report)


class Outage:
    """Takes the moto server away for `seconds` (connections refused), once, from a job's progress hook."""

    def __init__(self, server, monkeypatch, seconds: float):
        from moto.moto_server.werkzeug_app import MotoRequestHandler

        # One connection per request, so no keep-alive connection outlives the server's stop.
        monkeypatch.setattr(MotoRequestHandler, "protocol_version", "HTTP/1.0")
        self.server, self.seconds = server, seconds
        self.thread: threading.Thread | None = None
        self.refused: list[bool] = []

    def start_once(self, run=None) -> None:
        if self.thread is None:
            self.thread = threading.Thread(target=lambda: self.refused.append(self.server.outage(self.seconds)),
                                           daemon=True)
            self.thread.start()

    def join(self) -> None:
        assert self.thread is not None, "the outage never started"
        self.thread.join()
        assert self.refused == [True], "the server kept answering"


def test_an_outage_longer_than_every_retry_budget_pauses_the_job_and_loses_nothing(bucket, clean, s3_server,
                                                                                 monkeypatch):
    """Each storage call gives up after 1 s; storage is away for 10 s: planning, segments, joins and the
    manifest wait for it instead of failing, and the job finishes as a clean run would."""
    outage = Outage(s3_server, monkeypatch, seconds=10)
    patience = Patience(storage_call_s=1.0, outage_s=120.0)
    report = run_archive([f"{bucket}/videos/"], options(bucket, "poses-outage", patience=patience),
                         on_progress=outage.start_once)
    outage.join()
    assert report.status == "finished" and not report.failed
    assert [v.status for v in report.videos] == ["done"] * VIDEOS
    assert report.storage_paused_s > 0
    # Nothing was charged to a video for the outage.
    assert all(s.attempts == 1 for v in report.videos for s in v.segments if s.status == "done")
    records = list(iter_records(f"{bucket}/poses-outage", report.job_id))
    assert sorted(r["uri"] for r in records) == sorted(v.uri for v in report.videos)  # no record lost
    assert read_summary(f"{bucket}/poses-outage")["status"] == "finished"
    got = tables(report)
    assert set(got) == set(clean)
    for uri, table in got.items():
        np.testing.assert_array_equal(table, clean[uri])


def test_an_outage_past_the_limit_stops_the_job_cleanly_and_a_rerun_resumes(bucket, clean, s3_server, monkeypatch):
    outage = Outage(s3_server, monkeypatch, seconds=12)
    patience = Patience(storage_call_s=1.0, outage_s=4.0)
    report = run_archive([f"{bucket}/videos/"], options(bucket, "poses-stopped", patience=patience),
                         on_progress=outage.start_once)
    outage.join()
    assert report.status == "interrupted" and "outage limit" in report.stop_reason
    assert not report.failed  # an outage is no video's failure
    again = run_archive([f"{bucket}/videos/"], options(bucket, "poses-stopped"))
    assert again.status == "finished" and not again.failed
    assert {v.status for v in again.videos} <= {"done", "skipped"}
    done_before = sum(v.done for v in report.videos)
    assert sum(v.status == "skipped" for v in again.videos) >= done_before
    for uri, table in tables(again).items():
        np.testing.assert_array_equal(table, clean[uri])


def test_the_default_budgets_pause_for_an_hour_then_stop_cleanly():
    """What a facility gets without flags, on a clock the test moves: storage away for 59 minutes is a
    pause that ends when it answers again; away for more than an hour stops the job cleanly. The command
    line's defaults are the same budgets."""
    from posecluster.cluster.pause import JobStopped, StoragePause

    now = [1000.0]
    answers: list = []

    def probe():
        if not answers or not answers[-1]:
            raise ConnectionRefusedError(111, "Connection refused")

    pause = StoragePause(probe, Patience().outage_s, clock=lambda: now[0])
    pause.down("a listing timed out")
    for minute in range(1, 60):
        now[0] = 1000.0 + 60 * minute
        pause.check()  # still away: no stop before the hour
        assert pause.paused
    answers.append(True)
    now[0] += 60
    pause.check()
    assert not pause.paused and pause.seconds() == pytest.approx(3600, abs=61)
    answers.append(False)
    pause.down("again")
    now[0] += 3601
    with pytest.raises(JobStopped, match="outage limit 3600 s"):
        pause.check()
    assert Patience() == Patience(storage_call_s=60.0, outage_s=3600.0, capacity_s=3600.0)
    args = build_parser().parse_args(["infer", "s3://b/v/", "--model", "s3://b/m", "--out", "s3://b/o"])
    assert (args.storage_patience, args.outage_limit) == (60.0, 3600.0)
    assert ArchiveOptions(model="m", out="o").patience == Patience()


@pytest.mark.slow  # the suite's 15-minute budget; a lost worker's segments are redone in test_node_loss
def test_a_crashed_worker_is_blamed_only_for_what_it_was_running(bucket, tmp_path):
    """No retries allowed, and a worker's process killed (SIGKILL, as the OOM killer or a decoder's crash
    does) in the middle of a video with another queued behind it: exactly the video it was running fails,
    with the death as its error, and the queued one completes."""
    import os
    import signal

    import ray

    # 16 segments each (a few seconds of work per video, so that a kill after the first segment lands in
    # the middle of its video even on a fast machine, not after the worker already finished both items).
    for i in range(4):
        path = str(tmp_path / f"long{i}.mp4")
        synthetic.render_video(path, synthetic.Scene(width=96, height=80, seed=70 + i), 96, gop=6)
        storage.atomic_upload(path, f"{bucket}/crash/v{i}.mp4")
    killed: list = []

    def crash_a_busy_worker(run) -> None:
        if killed or run.report.segments_computed < 1:
            return
        slot = max(range(len(run.pool.slots)), key=run.pool.load)  # one with an item queued behind
        running = next(item for generation, item, _ in run.pool.slots[slot].items if item.started)
        # From the cluster's actor table: a call to the actor would wait behind the items it is running.
        pid = ray._private.state.actors(run.pool.slots[slot].actor._actor_id.hex())["Pid"]
        killed.append((run.pool.load(slot), running.task.uri))
        os.kill(pid, signal.SIGKILL)

    options = ArchiveOptions(model=f"{bucket}/models/tiny", out=f"{bucket}/poses-crash", workers=2, segment_frames=6,
                             progress=False, infer_overrides={"batch_size": 1}, max_retries=0)
    report = run_archive([f"{bucket}/crash/"], options, on_progress=crash_a_busy_worker)
    assert killed and killed[0][0] == 2, "the killed worker had no item queued behind the running one"
    assert [v.uri for v in report.failed] == [killed[0][1]], [(v.uri, v.error) for v in report.videos]
    assert "died" in report.failed[0].error and report.workers_lost == 1
    assert sum(v.done for v in report.videos) == 3
