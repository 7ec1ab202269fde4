"""The Jobs page's reading of archive manifests: jobs found anywhere under the root, per-video rows a page
at a time, counts from the summary. The manifests are written by the archive's own ManifestWriter from
records this test makes up, so the oracle is that list of records (no Ray, no S3: fast)."""

from __future__ import annotations

import time
from urllib.parse import urlencode

import pytest
from starlette.testclient import TestClient

from posecluster import storage
from posecluster.serve import create_app
from tests.serve.conftest import LOCAL, TOKEN, made_up_records, write_job

BIG = "20261125-100000-aaaaaa"
SMALL = "20261125-110000-bbbbbb"
BROKEN = "20261125-090000-cccccc"


@pytest.fixture(scope="module")
def jobs_root(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("jobs-root"))
    big = made_up_records(120)
    write_job(storage.join(root, "lab", "poses"), BIG, big, pending=5, flushes=3)
    write_job(root, SMALL, made_up_records(1), pending=0, flushes=1)  # a job whose output is the root itself
    storage.atomic_write_bytes(storage.join(root, "old", ".posecluster", "jobs", BROKEN, "summary.json"), b"{not json")
    storage.atomic_write_bytes(storage.join(root, "notes", "summary.json"), b"{}")  # not a job
    with TestClient(create_app(root, TOKEN), base_url=LOCAL, headers={"X-Posecluster-Token": TOKEN}) as client:
        yield client, big


def videos(client, job: dict, **params) -> dict:
    response = client.get("/api/jobs/videos?" + urlencode({"out": job["out_path"], "job": job["job_id"], **params}))
    assert response.status_code == 200, response.text
    return response.json()


def test_jobs_anywhere_under_the_root_are_listed_newest_first_and_a_broken_one_hides_none(jobs_root):
    client, _ = jobs_root
    jobs = client.get("/api/jobs").json()["jobs"]
    assert [j["job_id"] for j in jobs] == [SMALL, BIG, BROKEN]
    small, big, broken = jobs
    assert small["out_path"] == "" and big["out_path"] == "lab/poses"
    assert broken["status"] == "unreadable" and BROKEN in broken["error"]
    assert (big["videos_total"], big["videos_finished"], big["videos_pending"]) == (125, 120, 5)
    assert (big["videos_done"], big["videos_done_with_warnings"], big["videos_failed"]) == (96, 12, 12)
    assert big["status"] == "running" and big["fps"] == 500.0 and big["model"] == "s3://lab/models/m"
    assert videos(client, small)["videos"][0]["video"] == "s3://lab/videos/v000.mp4"


def test_a_jobs_videos_come_a_page_at_a_time_each_once_in_finishing_order(jobs_root):
    client, records = jobs_root
    big = client.get("/api/jobs").json()["jobs"][1]
    seen = []
    for offset in range(0, 150, 50):
        page = videos(client, big, offset=offset, limit=50)
        assert page["total"] == 120 and len(page["videos"]) == min(50, max(0, 120 - offset))
        seen += [v["video"] for v in page["videos"]]
    assert seen == [r["uri"] for r in records]


def test_missing_frames_and_errors_show_per_video_and_filter_by_status(jobs_root):
    client, records = jobs_root
    big = client.get("/api/jobs").json()["jobs"][1]
    warned = videos(client, big, status="done-with-warnings", limit=500)
    assert warned["total"] == 12 and [v["video"] for v in warned["videos"]] == [
        r["uri"] for r in records if r["status"] == "done-with-warnings"]
    assert {(v["missing"], v["missing_frames"]) for v in warned["videos"]} == {("3-5,9", 4)}
    failed = videos(client, big, status="failed", offset=10)
    assert failed["total"] == 12 and [v["error"] for v in failed["videos"]] == [  # locations outside the root hidden
        r["error"].replace(r["uri"], "<hidden path>") for r in records if r["status"] == "failed"][10:]
    done = videos(client, big, status="done", limit=1)["videos"][0]
    assert (done["segments"], done["segments_computed"], done["outputs"]["h5"]["path"]) == (2, 2, None)  # outside the root
    assert videos(client, big, status="pending")["videos"] == []


def test_a_new_job_is_listed_within_the_shared_answers_lifetime(tmp_path):
    """/api/jobs is computed once and shared; a job that appears afterwards shows up once the answer expires."""
    from posecluster.serve.jobs import JOBS_ANSWER_TTL_S

    root = str(tmp_path)
    write_job(storage.join(root, "a"), BIG, made_up_records(1), pending=0, flushes=1)
    with TestClient(create_app(root, TOKEN), base_url=LOCAL, headers={"X-Posecluster-Token": TOKEN}) as client:
        assert [j["job_id"] for j in client.get("/api/jobs").json()["jobs"]] == [BIG]
        write_job(storage.join(root, "b"), SMALL, made_up_records(1), pending=0, flushes=1)
        deadline = time.monotonic() + JOBS_ANSWER_TTL_S + 5
        while len(client.get("/api/jobs").json()["jobs"]) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert [j["job_id"] for j in client.get("/api/jobs").json()["jobs"]] == [SMALL, BIG]
