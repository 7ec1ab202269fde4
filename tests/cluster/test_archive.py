"""Archive runs on a real local Ray against a moto S3 server: correctness, faults, resume."""

from __future__ import annotations

import numpy as np
import pytest

from posecluster import storage
from posecluster.cli.main import main
from posecluster.cluster.archive import ArchiveOptions, run_archive
from posecluster.data import synthetic
from posecluster.data.formats.poses import read_pose_table
from posecluster.infer.analyze import analyze_video
from posecluster.infer.predictor import Predictor
from posecluster.train.checkpoint import load_model, save_model


@pytest.fixture(scope="module")
def archive(ray_local, trained_run, openfield_video, tmp_path_factory):
    """A bucket with a model and videos: three rendered (two share a name) and DeepLabCut's openfield."""
    import boto3
    import os
    import uuid

    bucket = f"archive-{uuid.uuid4().hex[:8]}"
    boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"]).create_bucket(Bucket=bucket)
    root = f"s3://{bucket}"
    trained = load_model(trained_run[0])
    # Small input so openfield's 2,330 frames at 640x480 run in seconds on CPU.
    config = trained.config.with_overrides({"model": {"global_scale": 0.15}, "infer": {"batch_size": 16}})
    save_model(f"{root}/models/tiny", config, trained.bodyparts, trained.state_dict)
    local = tmp_path_factory.mktemp("videos")
    for name, seed in (("day1/a.mp4", 1), ("day1/b.mp4", 2), ("day2/a.mp4", 3)):
        path = str(local / name.replace("/", "_"))
        synthetic.render_video(path, synthetic.Scene(width=96, height=80, seed=seed), 70, gop=15)
        storage.atomic_upload(path, f"{root}/videos/{name}")
    storage.atomic_upload(openfield_video, f"{root}/videos/openfield/m3v1mp4.mp4")
    return root


def options(root: str, out: str, **extra) -> ArchiveOptions:
    return ArchiveOptions(model=f"{root}/models/tiny", out=f"{root}/{out}", workers=2, segment_frames=20,
                          progress=False, **extra)


def tables(report) -> dict[str, np.ndarray]:
    return {v.uri: read_pose_table(v.outputs["h5"]).to_numpy() for v in report.videos if v.status == "done"}


@pytest.fixture(scope="module")
def clean_run(archive):
    return run_archive([f"{archive}/videos/"], options(archive, "poses-clean"))


def test_every_video_gets_one_table_identical_to_the_single_video_predictor(archive, clean_run, tmp_path):
    report = clean_run
    assert [v.status for v in report.videos] == ["done"] * 4, [(v.uri, v.error) for v in report.videos]
    openfield = next(v for v in report.videos if v.uri.endswith("m3v1mp4.mp4"))
    assert len(openfield.segments) > 1 and openfield.frames == 2330
    bucket = archive.removeprefix("s3://")
    scorer = load_model(f"{archive}/models/tiny").scorer
    assert openfield.outputs["h5"] == f"{archive}/poses-clean/{bucket}/videos/openfield/m3v1mp4{scorer}.h5"
    assert {v.outputs["h5"].split(f"/poses-clean/{bucket}/videos/")[1].split("DLC_")[0] for v in report.videos} == {
        "day1/a", "day1/b", "day2/a", "openfield/m3v1mp4"}
    predictor = Predictor(load_model(f"{archive}/models/tiny"))
    for video in report.videos:
        single = analyze_video(predictor, video.uri, str(tmp_path), progress=False)
        expected = read_pose_table(single.outputs["h5"])
        got = read_pose_table(video.outputs["h5"])
        assert got.index.tolist() == list(range(video.frames))
        assert got.columns.tolist() == expected.columns.tolist()
        np.testing.assert_allclose(got.to_numpy(), expected.to_numpy(), rtol=1e-4, atol=1e-3)
    manifest = storage.read_bytes(f"{archive}/poses-clean/posecluster-manifest.json").decode()
    assert '"status": "finished"' in manifest and report.job_id in manifest


def test_a_worker_killed_mid_run_changes_nothing_in_the_outputs(archive, clean_run):
    import ray

    killed = []

    def kill_a_busy_worker(run):  # one with an item in flight, so that something must be redone
        busy = [i for i in range(len(run.pool.slots)) if run.pool.load(i) > 0]
        if not killed and busy:
            ray.kill(run.pool.slots[busy[0]].actor)
            killed.append(True)

    # The rendered videos only (12 segments): openfield's 117 segments add minutes and nothing to this test.
    rendered = [f"{archive}/videos/day1/", f"{archive}/videos/day2/"]
    report = run_archive(rendered, options(archive, "poses-killed"), on_progress=kill_a_busy_worker)
    assert killed and len(report.videos) == 3 and all(v.status == "done" for v in report.videos)
    assert any(s.attempts > 1 for v in report.videos for s in v.segments)  # something was retried
    clean = tables(clean_run)
    for uri, table in tables(report).items():
        np.testing.assert_array_equal(table, clean[uri])


def test_a_corrupt_object_fails_alone_with_the_decoders_message(archive, capsys):
    prefix = f"{archive}/mixed"
    for name in ("day1/a.mp4", "day1/b.mp4"):
        storage.atomic_write_bytes(f"{prefix}/{name}", storage.read_bytes(f"{archive}/videos/{name}"))
    storage.atomic_write_bytes(f"{prefix}/broken.mp4", b"\x00\x00\x00\x18ftypmp42" + b"garbage" * 500)
    code = main(["infer", f"{prefix}/", "--model", f"{archive}/models/tiny", "--out", f"{archive}/poses-mixed",
                 "--workers", "2", "--segment-frames", "20", "--quiet"])
    printed = capsys.readouterr().out
    assert code == 1
    assert "2 done, 0 already done, 1 failed" in printed
    assert "FAILED " + f"{prefix}/broken.mp4: InputError" in printed and "not a readable video" in printed
    manifest = storage.read_bytes(f"{archive}/poses-mixed/posecluster-manifest.json").decode()
    assert "broken.mp4" in manifest and "not a readable video" in manifest


@pytest.mark.slow  # the suite's 15-minute budget; reruns are covered by test_archive_reruns and test_archive_stores
def test_a_rerun_after_an_interrupted_job_recomputes_nothing_that_was_done(archive):
    videos = [f"{archive}/videos/day1/", f"{archive}/videos/day2/"]
    interrupted_after = 3

    def interrupt(run):
        if run.report.segments_computed >= interrupted_after:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_archive(videos, options(archive, "poses-resume"), on_progress=interrupt)
    segments = f"{archive}/poses-resume/.posecluster/segments"
    done_before = len(storage.list_files(segments, suffixes=(".npz",)))
    assert done_before >= interrupted_after
    second = run_archive(videos, options(archive, "poses-resume"))
    done_after = len(storage.list_files(segments, suffixes=(".npz",)))
    assert done_after == 9  # three videos of three segments each
    assert second.segments_computed == done_after - done_before  # nothing done before was done again
    assert all(v.status in ("done", "skipped") for v in second.videos)
    third = run_archive(videos, options(archive, "poses-resume"))
    assert [v.status for v in third.videos] == ["skipped"] * 3 and third.segments_computed == 0

    # A changed video (same URI, new content) is recomputed; the others are not.
    original = storage.read_bytes(f"{archive}/videos/day2/a.mp4")
    storage.atomic_write_bytes(f"{archive}/videos/day2/a.mp4", storage.read_bytes(f"{archive}/videos/day1/b.mp4"))
    fourth = run_archive(videos, options(archive, "poses-resume"))
    assert {v.uri.split("/videos/")[1]: (v.status, v.recomputed) for v in fourth.videos} == {
        "day1/a.mp4": ("skipped", ""), "day1/b.mp4": ("skipped", ""), "day2/a.mp4": ("done", "video changed")}
    storage.atomic_write_bytes(f"{archive}/videos/day2/a.mp4", original)
