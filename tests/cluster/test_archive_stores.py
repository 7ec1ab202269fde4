"""The archive's life on real object stores: a job, a rerun that skips everything, a replaced video
computed again alone, and a second extract-frames that finds nothing new, through the real CLI and a Ray of
its own (tests/cluster/store_job.py) on a Ceph RGW over HTTP and HTTPS (and a facility's endpoint when
POSECLUSTER_TEST_S3_* name one). moto's runs of the same life are tests/cluster/test_archive_reruns.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import STORES, store_named

REPO = Path(__file__).resolve().parents[2]


# The job's life on a real server over HTTPS, as facilities run it; over plain HTTP every storage contract test
# runs on RGW too, so the whole job there is in the slow run only (it costs ~40 s of the suite's budget).
@pytest.mark.parametrize("store_name", [pytest.param(name, marks=pytest.mark.slow) if name == "rgw-http" else name
                                        for name in STORES if name != "moto"])
def test_a_job_its_rerun_a_replaced_video_and_a_second_extraction_on_a_real_store(store_name, request, trained_run,
                                                                                   tmp_path):
    store = store_named(request, store_name)
    env = {**os.environ, **{k: v for k, v in store.env().items() if v is not None}}
    if store.ca_bundle is None:
        env.pop("AWS_CA_BUNDLE", None)
    env.pop("RAY_ADDRESS", None)  # a Ray of its own, whose workers start with this store's environment
    command = [sys.executable, "-m", "tests.cluster.store_job", trained_run[0], str(tmp_path), "--videos", "4",
               "--frames", "24"] + (["--bucket", store.bucket] if store.bucket else [])
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=480)
    assert done.returncode == 0, done.stderr[-4000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    names = [f"v{k:02d}.mp4" for k in range(4)]
    assert report["multipart_etag"].endswith("-1")  # v01 went up in parts: its done record pins it all the same
    first, rerun, after = report["first"], report["rerun"], report["after_replacing_v00"]
    assert first["code"] == 0 and first["statuses"] == {n: "done" for n in names}, first
    assert set(first["frames"].values()) == {24}
    assert rerun["code"] == 0 and rerun["statuses"] == {n: "skipped" for n in names}, rerun
    assert after["code"] == 0 and after["statuses"] == {"v00.mp4": "done", **{n: "skipped" for n in names[1:]}}, after
    assert after["frames"]["v00.mp4"] == 36  # the replacement's own length
    assert report["extract_first"] == 0 and report["extract_second"] == 0 and report["extract_rows"] == 4
