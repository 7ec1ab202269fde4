"""Archive jobs at scale, on a real local Ray against the moto S3 server: streaming planning, metrics on
the driver's endpoint, `posecluster status`, storage outages, the pinned model, resume by request."""

from __future__ import annotations

import json
import socket
import urllib.request

import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from posecluster import storage
from posecluster.cli.main import main
from posecluster.cluster.archive import ArchiveOptions, run_archive
from posecluster.cluster.manifest import iter_records
from posecluster.data import synthetic
from posecluster.data.formats.poses import read_pose_table
from posecluster.data.video import DecodeReport, probe, read_frames
from posecluster.infer.predictor import Predictor
from posecluster.model.artifact import load_model, save_model

VIDEOS = 6
FRAMES = 40


@pytest.fixture(scope="module")
def bucket(ray_local, trained_run, tmp_path_factory):
    """Six small rendered videos and a copy of the session's model (tests replace it)."""
    import os
    import uuid

    import boto3

    name = f"scale-{uuid.uuid4().hex[:8]}"
    boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"]).create_bucket(Bucket=name)
    root = f"s3://{name}"
    trained = load_model(trained_run[0])
    save_model(f"{root}/models/tiny", trained.config, trained.bodyparts, trained.state_dict)
    local = tmp_path_factory.mktemp("scale-videos")
    for i in range(VIDEOS):
        path = str(local / f"v{i}.mp4")
        synthetic.render_video(path, synthetic.Scene(width=96, height=80, seed=20 + i), FRAMES, gop=10)
        storage.atomic_upload(path, f"{root}/videos/cage{i % 2}/v{i}.mp4")
    return root


def options(root: str, out: str, model: str = "models/tiny", **extra) -> ArchiveOptions:
    # The CLI job's batch size: tables compare exactly (batch size moves values at float rounding).
    return ArchiveOptions(model=f"{root}/{model}", out=f"{root}/{out}", workers=2, segment_frames=20,
                          progress=False, infer_overrides={"batch_size": 4}, **extra)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def scrape(port: int) -> dict[str, float]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    return {s.name + "".join(f"{{{k}={v}}}" for k, v in sorted(s.labels.items()) if k != "le"): s.value
            for family in text_string_to_metric_families(text) for s in family.samples if "le" not in s.labels}


@pytest.fixture(scope="module")
def cli_run(bucket):
    """`posecluster infer --metrics-port` on the local Ray; the endpoint scraped after the job."""
    from posecluster import metrics

    port = free_port()
    try:
        code = main(["infer", f"{bucket}/videos/", "--model", f"{bucket}/models/tiny", "--out", f"{bucket}/poses",
                     "--workers", "2", "--segment-frames", "20", "--batch-size", "4", "--quiet",
                     "--metrics-port", str(port)])
        scraped = scrape(port)
    finally:
        metrics.use(metrics.NullExporter())
    summary = json.loads(storage.read_bytes(f"{bucket}/poses/posecluster-manifest.json"))
    records = list(iter_records(f"{bucket}/poses", summary["job_id"]))
    return code, scraped, summary, records


def tables(out: str, records: list[dict]) -> dict[str, np.ndarray]:
    return {r["uri"]: read_pose_table(r["outputs"]["h5"]).to_numpy() for r in records if "outputs" in r}


def test_segments_finish_while_videos_are_still_being_planned(cli_run):
    code, _, summary, records = cli_run
    assert code == 0 and summary["status"] == "finished"
    assert [r["status"] for r in records] == ["done"] * VIDEOS
    # Each small video is planned (fetched, probed, cut) by the worker that runs it, and segments are
    # predicted as soon as their video is planned: a segment is done before the last video is planned.
    assert min(r["first_segment"] for r in records) < max(r["planned"] for r in records), records
    assert 0 < summary["first_table_s"] <= min(r["t"] for r in records)


def test_the_metrics_endpoint_of_the_cli_shows_the_whole_job(cli_run):
    _, scraped, summary, records = cli_run
    frames = VIDEOS * FRAMES
    assert scraped["posecluster_frames_processed_total"] == frames
    assert scraped["posecluster_videos_total{status=done}"] == VIDEOS
    segments = sum(len(r["cuts"]) - 1 for r in records)
    assert scraped["posecluster_segments_total{status=done}"] == segments
    batches = sum(-(-(b - a) // 4) for r in records for a, b in zip(r["cuts"], r["cuts"][1:]))
    assert scraped["posecluster_infer_seconds_count"] == batches  # one observation per batch of 4
    assert scraped["posecluster_decode_wait_seconds_count"] == batches
    assert scraped["posecluster_write_seconds_count"] == segments
    assert scraped["posecluster_infer_seconds_sum"] > 0 and scraped["posecluster_frames_per_second"] > 0


def test_tables_match_a_plain_sequential_decode_through_the_predictor(bucket, cli_run, trained_run):
    _, _, _, records = cli_run
    predictor = Predictor(load_model(f"{bucket}/models/tiny"),
                          load_model(f"{bucket}/models/tiny").config.infer.with_overrides({"batch_size": 4}))
    record = records[0]
    info = probe(record["uri"])
    frames = np.stack([f for _, f in read_frames(info, 0, info.frame_count, DecodeReport())])
    expected = predictor.predict(frames).reshape(len(frames), -1)
    got = read_pose_table(record["outputs"]["h5"]).to_numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-3)


def test_status_shows_progress_and_failures_from_the_manifest(bucket, cli_run, capsys):
    _, _, summary, _ = cli_run
    broken = f"{bucket}/broken-run"
    storage.atomic_write_bytes(f"{bucket}/broken/bad.mp4", b"\x00\x00\x00\x18ftypmp42" + b"garbage" * 200)
    storage.atomic_write_bytes(f"{bucket}/broken/good.mp4", storage.read_bytes(f"{bucket}/videos/cage0/v0.mp4"))
    assert run_archive([f"{bucket}/broken/"], options(bucket, "broken-run")).failed
    capsys.readouterr()
    assert main(["status", broken]) == 1
    printed = capsys.readouterr().out
    assert "videos: 2 of 2 finished: 1 done, 0 done-with-warnings, 0 skipped, 1 failed" in printed
    assert f"FAILED {bucket}/broken/bad.mp4: InputError" in printed and "not a readable video" in printed
    assert main(["status", f"{bucket}/poses", "--job", summary["job_id"], "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["counts"] == {"done": VIDEOS} and status["frames_computed"] == VIDEOS * FRAMES


def test_a_rerun_that_adds_a_format_writes_it_from_cached_segments(bucket, cli_run):
    _, _, _, records = cli_run
    report = run_archive([f"{bucket}/videos/"], options(bucket, "poses", formats=("csv",)))
    assert report.segments_computed == 0 and report.workers == 0  # no inference at all
    assert all(v.status == "done" and "csv" in v.outputs for v in report.videos)
    for video in report.videos:
        import pandas as pd

        csv = pd.read_csv(video.outputs["csv"], header=[0, 1, 2], index_col=0).to_numpy()
        np.testing.assert_allclose(csv, read_pose_table(video.outputs["h5"]).to_numpy(), rtol=1e-6)
    again = run_archive([f"{bucket}/videos/"], options(bucket, "poses", formats=("csv",)))
    assert [v.status for v in again.videos] == ["skipped"] * VIDEOS


@pytest.mark.slow  # the suite's 15-minute budget; pinned model bytes are refused in tests/model/test_quantize and test_ensemble_pinning
def test_a_model_replaced_mid_job_is_refused_and_the_job_keeps_the_pinned_one(bucket, cli_run, trained_run):
    import ray

    storage.atomic_write_bytes(f"{bucket}/models/pinned/model.pt", storage.read_bytes(f"{bucket}/models/tiny/model.pt"))
    trained = load_model(trained_run[0])
    changed = {k: v + 0.5 if v.is_floating_point() else v for k, v in trained.state_dict.items()}
    replaced: list[bool] = []

    def replace_model_and_kill_a_worker(run) -> None:
        if not replaced:
            # Every worker has loaded the pinned model before it is replaced (a worker still starting
            # would refuse too, leaving none: that is the next test's case, not this one's).
            ray.get([slot.actor.__ray_ready__.remote() for slot in run.pool.slots if slot.actor is not None])
            save_model(f"{bucket}/models/pinned", trained.config, trained.bodyparts, changed)
            ray.kill(run.pool.slots[0].actor)  # its replacement must load the model again: and refuses
            replaced.append(True)

    report = run_archive([f"{bucket}/videos/cage0/"], options(bucket, "poses-pinned", model="models/pinned"),
                         on_progress=replace_model_and_kill_a_worker)
    # The killed worker's replacement refuses when it starts; on a fast machine the surviving worker may
    # finish the job before the replacement is needed, so the refusal is also checked directly below.
    assert replaced and report.refused_workers <= 1
    from posecluster.cluster.actors import SegmentWorker
    from posecluster.model.artifact import PinnedModel

    late = SegmentWorker.remote(PinnedModel(report.model["uri"], report.model["sha256"]), {}, 1)
    with pytest.raises(ray.exceptions.RayActorError, match="changed since the job started"):
        ray.get(late.__ray_ready__.remote())
    assert all(v.status == "done" for v in report.videos)
    _, _, _, clean = cli_run
    pinned_tables = tables("", [{"uri": v.uri, "outputs": v.outputs} for v in report.videos])
    assert len(pinned_tables) == VIDEOS // 2
    for uri, table in pinned_tables.items():
        np.testing.assert_array_equal(table, tables("", clean)[uri])
    meta = json.loads(storage.read_bytes(report.videos[0].outputs["h5"][: -len(".h5")] + "_meta.json"))
    assert meta["model"]["sha256"] == report.model["sha256"] != load_model(f"{bucket}/models/pinned").sha256
