"""What a job started from the browser runs: for every kind, an argument list that posecluster's own
command-line parser takes, with every location confined to the caller's prefixes and every value checked;
a field that could smuggle a shell command stays one quoted argument (fast: no Ray, no server)."""

from __future__ import annotations

import shlex

import pytest

from posecluster.cli.main import build_parser
from posecluster.serve.access import Caller
from posecluster.serve.launch import build_launch, log_progress, readable_log
from posecluster.serve.paths import PathRefused, Scope

ROOT = "s3://facility"
LAB = Scope(ROOT, Caller("alice", ("smith",)))
KINDS = {
    "extract-frames": {"project": "smith/proj", "videos": "smith/videos/a.mp4", "method": "uniform", "n": 5},
    "train": {"project": "smith/proj", "out": "smith/runs/r1", "epochs": 2, "batch_size": 4, "backbone": "resnet18",
              "weights": "none", "ensemble": 3, "global_scale": 0.5, "crop": 64},
    "evaluate": {"run": "smith/runs/r1", "project": "smith/proj"},
    "infer": {"videos": "smith/videos", "model": "smith/runs/r1", "out": "smith/poses", "segment_frames": 500,
              "workers": 2, "gpus_per_worker": 1, "csv": True},
    "outliers": {"poses": "smith/poses", "project": "smith/proj", "n": 10, "algorithms": ["jump", "uncertain"]},
    "merge": {"project": "smith/proj"},
}


@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_is_a_posecluster_command_its_parser_takes(kind):
    launch = build_launch(LAB, {"kind": kind, **KINDS[kind]})
    assert launch.argv[0] == "posecluster" and launch.argv[1:3] == ["--confine", f"{ROOT}/smith"]
    args = build_parser().parse_args(launch.argv[1:])
    assert args.command == kind and args.confine == [f"{ROOT}/smith"]  # the job carries the lab's scope
    locations = [v for k, v in vars(args).items() if k != "confine" for v in (v if isinstance(v, list) else [v])
                 if isinstance(v, str) and v.startswith("s3://")]
    assert locations and all(v.startswith(f"{ROOT}/smith/") for v in locations), locations
    assert launch.location.startswith("smith/")
    assert shlex.split(shlex.join(launch.argv)) == launch.argv


def test_every_job_carries_the_callers_prefixes_and_the_token_the_root():
    jones = Scope(ROOT, Caller("bob", ("jones", "shared/videos")))
    for kind in KINDS:
        fields = {k: v.replace("smith/", "jones/") if isinstance(v, str) else v for k, v in KINDS[kind].items()}
        args = build_parser().parse_args(build_launch(jones, {"kind": kind, **fields}).argv[1:])
        assert args.confine == [f"{ROOT}/jones", f"{ROOT}/shared/videos"]
    token = Scope(ROOT, Caller("token", ("",)))
    assert build_parser().parse_args(build_launch(token, {"kind": "merge", "project": "smith/proj"}).argv[1:]).confine == [ROOT]


def test_the_fields_mean_what_the_form_says():
    train = build_parser().parse_args(build_launch(LAB, {"kind": "train", **KINDS["train"]}).argv[1:])
    assert (train.epochs, train.batch_size, train.backbone, train.weights, train.ensemble) == (2, 4, "resnet18", "none", 3)
    assert sorted(train.overrides) == ["augment.crop_size=[64,64]", "model.global_scale=0.5"]
    infer = build_parser().parse_args(build_launch(LAB, {"kind": "infer", **KINDS["infer"]}).argv[1:])
    assert (infer.segment_frames, infer.workers, infer.gpus_per_worker, infer.format) == (500, 2, 1.0, ["csv"])


@pytest.mark.parametrize("fields, error", [
    ({"kind": "merge", "project": "jones/proj"}, PathRefused),
    ({"kind": "merge", "project": "smith/../jones/proj"}, PathRefused),
    ({"kind": "merge", "project": "s3://other/proj"}, PathRefused),
    ({"kind": "merge", "project": "smith/proj; rm -rf $(x)"}, None),  # a strange folder name, one quoted argument
    ({"kind": "rm", "project": "smith/proj"}, ValueError),
    ({"kind": "train", "project": "smith/proj", "out": "smith/r", "epochs": "2; reboot"}, ValueError),
    ({"kind": "train", "project": "smith/proj", "out": "smith/r", "epochs": 0}, ValueError),
    ({"kind": "train", "project": "smith/proj", "out": "smith/r", "backbone": "vit"}, ValueError),
    ({"kind": "train", "project": "smith/proj", "out": "smith/r", "global_scale": "nan"}, ValueError),
    ({"kind": "outliers", "poses": "smith/poses", "project": "smith/proj", "algorithms": ["--help"]}, ValueError),
    ({"kind": "infer", "videos": "smith/v", "model": "smith/m", "out": "smith/o", "csv": "yes"}, ValueError),
])
def test_a_field_outside_the_lab_or_out_of_range_is_refused(fields, error):
    if error is None:
        launch = build_launch(LAB, fields)
        assert launch.argv[-1] == f"{ROOT}/smith/proj; rm -rf $(x)" and "'" in shlex.join(launch.argv)
        return
    with pytest.raises(error):
        build_launch(LAB, fields)


def test_progress_and_logs_are_read_as_a_person_reads_them():
    log = "train:  10%|#  | 2/20 [00:01<00:09]\rtrain:  50%|##  | 10/20 [00:05<00:05]\r\x1b[32mdone\x1b[0m\n"
    assert log_progress(log) == {"done": 10, "total": 20, "unit": "steps"}
    assert readable_log(log) == "done\n"
    assert log_progress("no bar here") is None


def test_a_cluster_that_does_not_answer_is_a_503_not_a_crash(tmp_path):
    import socket

    from starlette.testclient import TestClient

    from posecluster.serve import ServeOptions, create_app
    from tests.serve.conftest import LOCAL, TOKEN

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]  # nothing listens here once the probe closes
    app = create_app(str(tmp_path), TOKEN, ServeOptions(ray_address=f"http://127.0.0.1:{closed}"))
    with TestClient(app, base_url=LOCAL, headers={"X-Posecluster-Token": TOKEN}) as client:
        listed = client.get("/api/runs")
        assert listed.status_code == 503 and "does not answer" in listed.json()["error"]
        (tmp_path / "p").mkdir()
        started = client.post("/api/runs", json={"kind": "merge", "project": "p"})
        assert started.status_code == 503
    with TestClient(create_app(str(tmp_path), TOKEN), base_url=LOCAL, headers={"X-Posecluster-Token": TOKEN}) as client:
        assert client.get("/api/runs").json() == {"enabled": False, "jobs": [], "reason": client.get("/api/runs").json()["reason"]}
        assert client.post("/api/runs", json={"kind": "merge", "project": "p"}).status_code == 503


@pytest.mark.slow
def test_serving_a_folder_with_a_private_ray_head_stops_the_head_on_sigterm(tmp_path):
    """`posecluster serve ROOT --local-ray`: the browser's jobs have a cluster, and a SIGTERM (what a
    container runtime sends) leaves no Ray process behind (uvicorn re-raises the signal after its own
    graceful shutdown)."""
    import signal
    import subprocess
    import sys
    import time

    import httpx
    import psutil

    process = subprocess.Popen([sys.executable, "-m", "posecluster", "serve", str(tmp_path), "--local-ray", "--token", "t0k"],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        lines = []
        while not any("private Ray head" in line for line in lines) and process.poll() is None:
            lines.append(process.stdout.readline())
        base = next(line.strip().split("/?token=")[0] for line in lines if "?token=" in line)
        head = next(line.split("(")[1].split(",")[0] for line in lines if "private Ray head" in line)
        assert httpx.get(f"{base}/api/runs", headers={"Authorization": "Bearer t0k"}, timeout=60).json()["enabled"]
        port = head.rsplit(":", 1)[1]
        ray = [p for p in psutil.process_iter(["cmdline"]) if f"--dashboard-port={port}" in " ".join(p.info["cmdline"] or [])]
        assert ray, "the head runs"
        process.send_signal(signal.SIGTERM)
        process.wait(60)
        time.sleep(2)
        assert not [p for p in ray if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    finally:
        if process.poll() is None:
            process.kill()


WRONG_VALUES = [["train"], {"kind": "train"}, True, 1.5, -1, 10**20, "x" * 3000, None, "", [None], [["jump"]], float("nan")]


def test_a_malformed_job_request_is_a_400_with_a_message_never_a_500(tmp_path):
    """Every field of every kind given every wrong JSON type, and bodies that are not JSON objects: a 400
    naming what is wrong. Without Ray, a request that passes every check is a 503 (it was understood)."""
    import json

    from starlette.testclient import TestClient

    from posecluster.serve import create_app
    from tests.serve.conftest import LOCAL, TOKEN

    bodies = [b"{not json", b"[1, 2]", b'"train"', b"null", b"", b"\xff\xfe", b'{"kind": ["train"]}', b'{"kind": {}}', b"{}",
              b'{"kind": "train", "epochs": 1' + b"0" * 500 + b"}"]
    for kind, fields in KINDS.items():
        for key in ("kind", *fields):
            for wrong in WRONG_VALUES:
                bodies.append(json.dumps({"kind": kind, **fields, key: wrong}).encode())
    statuses = {}
    with TestClient(create_app(str(tmp_path), TOKEN), base_url=LOCAL, headers={"X-Posecluster-Token": TOKEN}) as client:
        for body in bodies:
            response = client.post("/api/runs", content=body, headers={"Content-Type": "application/json"})
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
            assert response.status_code in (400, 503), (body[:200], response.status_code, response.text)
            assert response.json()["error"], body[:200]
        kind_list = client.post("/api/runs", json={"kind": ["train"]})
        assert kind_list.status_code == 400 and "kind: one of" in kind_list.json()["error"]
        not_an_object = client.post("/api/runs", json=["train"])
        assert not_an_object.status_code == 400 and "JSON object" in not_an_object.json()["error"]
    assert statuses[400] > 300 and statuses[503] > 10, statuses  # both kinds of answer were exercised
