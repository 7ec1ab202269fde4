"""An archive's life on a real Ceph RGW over HTTPS (the issue's demonstration, at its size): 20 videos in one
job, a rerun that must skip all 20, one video replaced and computed again alone, and extract-frames twice
(the second finds nothing new and exits 0). Starts a Ceph RGW on loopback (tests/storage/rgw.py; Debian's
radosgw ceph-mon ceph-osd ceph-common), trains a small detector from scratch (or takes --model), then runs
tests/cluster/store_job.py in a process of its own with the gateway's endpoint, keys and CA.

  cd benchmarks && ../.venv/bin/python rgw_archive.py [--videos 20] [--frames 48] [--model RUN_DIR] [--http]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

from _common import ROOT, save

sys.path.insert(0, str(ROOT))


def tiny_model(folder: str) -> str:
    from posecluster.data import synthetic
    from posecluster.data.project import read_project
    from posecluster.train.loop import train
    from tests.conftest import tiny_config

    project = synthetic.write_project(f"{folder}/project", labeled_frames=32, video_frames=64,
                                      scene=synthetic.Scene(width=96, height=80, seed=3, body_length=0.4))
    labels = read_project(project.uri)
    train(tiny_config(labels.config, project.uri, epochs=12), labels.labels, f"{folder}/run")
    return f"{folder}/run"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--videos", type=int, default=20)
    parser.add_argument("--frames", type=int, default=48)
    parser.add_argument("--model", help="a trained run folder (default: train a small one from scratch)")
    parser.add_argument("--http", action="store_true", help="the gateway's HTTP endpoint instead of HTTPS")
    args = parser.parse_args()
    from tests.storage import rgw

    with tempfile.TemporaryDirectory(prefix="rgw-archive-") as work:
        started = time.monotonic()
        gateway, endpoints = rgw.start_gateway(f"{work}/ceph")
        up_s = time.monotonic() - started
        try:
            model = args.model or tiny_model(f"{work}/model")
            endpoint = endpoints.http if args.http else endpoints.https
            env = {**os.environ, "AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": rgw.ACCESS_KEY,
                   "AWS_SECRET_ACCESS_KEY": rgw.SECRET_KEY, "AWS_CA_BUNDLE": endpoints.ca_bundle}
            env.pop("RAY_ADDRESS", None)
            os.makedirs(f"{work}/job")
            command = [sys.executable, "-m", "tests.cluster.store_job", model, f"{work}/job", "--videos",
                       str(args.videos), "--frames", str(args.frames)]
            done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
            if done.returncode != 0:
                sys.exit(done.stderr[-4000:])
            report = json.loads(done.stdout.strip().splitlines()[-1])
        finally:
            gateway.stop()
    report["endpoint"] = "Ceph RGW 16 " + ("HTTP" if args.http else "HTTPS") + " on loopback"
    report["gateway_start_s"] = round(up_s, 1)
    names = [f"v{k:02d}.mp4" for k in range(args.videos)]
    checks = {
        "first job: all done": report["first"]["statuses"] == {n: "done" for n in names},
        "rerun: all skipped": report["rerun"]["statuses"] == {n: "skipped" for n in names},
        "replaced v00 computed alone": report["after_replacing_v00"]["statuses"]
        == {"v00.mp4": "done", **{n: "skipped" for n in names[1:]}},
        "second extract-frames exits 0": report["extract_second"] == 0,
    }
    report["checks"] = checks
    for name, ok in checks.items():
        print(f"{'met' if ok else 'MISSED'}: {name}")
    for step in ("first", "rerun", "after_replacing_v00"):
        print(f"{step}: exit {report[step]['code']}, {report[step]['seconds']} s")
    save("rgw_archive" + ("_http" if args.http else "_https"), report)


if __name__ == "__main__":
    main()
