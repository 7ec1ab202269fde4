"""A facility's life with one --out over the years, through the real CLI on the moto S3 server: jobs over
other folders, reruns with other models, tables edited or deleted by hand, a cleaned cache, videos that
change during a job, presigned URLs. Every table must hold its own video's poses from the model the job
names, and every skip must be earned."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest

from posecluster import storage
from posecluster.cli.main import main
from posecluster.cluster.archive import ArchiveOptions, run_archive
from posecluster.cluster.manifest import iter_records, read_summary
from posecluster.data import synthetic
from posecluster.data.formats.poses import read_pose_table
from posecluster.infer.naming import output_base
from posecluster.model.artifact import load_model, save_model

FRAMES = {"day1": 24, "day2": 36}


@pytest.fixture(scope="module")
def lab(ray_local, trained_run, tmp_path_factory):
    """A bucket with two models of one scorer (A, and B with other weights) and day1/, day2/ folders that
    both hold a `mouse.mp4` (of different lengths)."""
    import os
    import uuid

    import boto3

    name = f"lab-{uuid.uuid4().hex[:8]}"
    boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"]).create_bucket(Bucket=name)
    root = f"s3://{name}"
    trained = load_model(trained_run[0])
    save_model(f"{root}/models/A", trained.config, trained.bodyparts, trained.state_dict)
    shifted = {k: v * 1.5 if v.is_floating_point() else v for k, v in trained.state_dict.items()}
    save_model(f"{root}/models/B", trained.config, trained.bodyparts, shifted)
    local = tmp_path_factory.mktemp("lab-videos")
    for day, frames in FRAMES.items():
        path = str(local / f"{day}.mp4")
        synthetic.render_video(path, synthetic.Scene(width=96, height=80, seed=frames), frames, gop=12)
        storage.atomic_upload(path, f"{root}/videos/{day}/mouse.mp4")
    return root


def infer(root: str, *inputs: str, model: str = "A", out: str = "poses", extra: tuple = ()) -> tuple[int, list[dict]]:
    code = main(["infer", *[f"{root}/{i}" for i in inputs], "--model", f"{root}/models/{model}", "--out",
                 f"{root}/{out}", "--workers", "2", "--segment-frames", "12", "--batch-size", "4", "--quiet", *extra])
    summary = read_summary(f"{root}/{out}")
    return code, list(iter_records(f"{root}/{out}", summary["job_id"]))


def table_of(root: str, day: str, out: str = "poses") -> str:
    scorer = load_model(f"{root}/models/A").scorer
    return output_base(f"{root}/videos/{day}/mouse.mp4", f"{root}/{out}", scorer) + ".h5"


def poses(uri: str) -> np.ndarray:
    return read_pose_table(uri).to_numpy()


def test_jobs_over_day1_then_day2_into_one_out_keep_two_tables_and_each_rerun_skips(lab):
    code1, first = infer(lab, "videos/day1/")
    code2, second = infer(lab, "videos/day2/")
    assert code1 == code2 == 0 and [r["status"] for r in first + second] == ["done", "done"]
    day1, day2 = table_of(lab, "day1"), table_of(lab, "day2")
    assert day1 != day2 and len(poses(day1)) == FRAMES["day1"] and len(poses(day2)) == FRAMES["day2"]
    for day in FRAMES:
        code, again = infer(lab, f"videos/{day}/")
        assert code == 0 and [r["status"] for r in again] == ["skipped"]
        meta = json.loads(storage.read_bytes(table_of(lab, day)[: -len(".h5")] + "_meta.json"))
        assert meta["video"] == f"{lab}/videos/{day}/mouse.mp4" and meta["frames"] == FRAMES[day]


def test_model_a_then_b_then_a_gives_each_run_its_own_models_poses(lab):
    _, a_first = infer(lab, "videos/day1/", out="poses-ab")
    table = table_of(lab, "day1", "poses-ab")
    a_poses = poses(table)
    _, b_run = infer(lab, "videos/day1/", model="B", out="poses-ab")
    assert [(r["status"], r.get("recomputed")) for r in b_run] == [("done", "model changed")]
    b_poses = poses(table)
    assert not np.allclose(a_poses, b_poses, equal_nan=True)
    _, a_again = infer(lab, "videos/day1/", out="poses-ab")
    # A's cached segments rebuild A's table: no inference, and never "skipped" over B's table.
    assert [(r["status"], r.get("recomputed"), r["computed"]) for r in a_again] == [
        ("done", "the table there holds another model's poses", 0)]
    np.testing.assert_array_equal(poses(table), a_poses)
    meta = json.loads(storage.read_bytes(table[: -len(".h5")] + "_meta.json"))
    assert meta["model"]["sha256"] == load_model(f"{lab}/models/A").sha256


def test_a_table_edited_or_deleted_by_hand_is_written_again(lab):
    infer(lab, "videos/day2/", out="poses-hand")
    table = table_of(lab, "day2", "poses-hand")
    original = storage.read_bytes(table)
    storage.atomic_write_bytes(table, original[:-64] + b"\0" * 64)  # someone edited the file
    _, edited = infer(lab, "videos/day2/", out="poses-hand")
    assert [(r["status"], r.get("recomputed")) for r in edited] == [("done", "table changed since it was written")]
    np.testing.assert_array_equal(poses(table), read_pose_table_bytes(original))
    storage.remove(table)
    _, deleted = infer(lab, "videos/day2/", out="poses-hand")
    assert [(r["status"], r.get("recomputed")) for r in deleted] == [("done", "table missing")]
    np.testing.assert_array_equal(poses(table), read_pose_table_bytes(original))


def read_pose_table_bytes(data: bytes) -> np.ndarray:
    import tempfile

    with tempfile.NamedTemporaryFile(suffix=".h5") as fh:
        fh.write(data)
        fh.flush()
        return poses(fh.name)


def test_adding_a_format_after_the_segment_cache_was_deleted_computes_the_video_again(lab):
    infer(lab, "videos/day1/", out="poses-cache")
    table = table_of(lab, "day1", "poses-cache")
    before = poses(table)
    storage.remove(f"{lab}/poses-cache/.posecluster/segments", recursive=True)  # cleaned to save space
    code, records = infer(lab, "videos/day1/", out="poses-cache", extra=("--format", "csv"))
    assert code == 0 and [(r["status"], r.get("recomputed")) for r in records] == [("done", "segment cache missing")]
    assert records[0]["computed"] > 0
    np.testing.assert_array_equal(poses(table), before)
    np.testing.assert_allclose(poses(table[: -len(".h5")] + ".csv"), before, rtol=1e-6)


def test_another_videos_table_is_never_overwritten_by_a_later_job(lab):
    """cam/mouse.mp4 in one job, cam/mouse.avi (the same table name) in a later one: refused by name."""
    storage.atomic_write_bytes(f"{lab}/cam/mouse.mp4", storage.read_bytes(f"{lab}/videos/day1/mouse.mp4"))
    storage.atomic_write_bytes(f"{lab}/cam/mouse.avi", storage.read_bytes(f"{lab}/videos/day2/mouse.mp4"))
    code, records = infer(lab, "cam/mouse.mp4", out="poses-cam")
    assert code == 0 and records[0]["status"] == "done"
    table = records[0]["outputs"]["h5"]
    before = poses(table)
    code, records = infer(lab, "cam/mouse.avi", out="poses-cam")
    assert code == 1 and records[0]["status"] == "failed"
    assert "would overwrite the pose table of" in records[0]["error"] and "cam/mouse.mp4" in records[0]["error"]
    np.testing.assert_array_equal(poses(table), before)


def test_a_video_replaced_after_planning_fails_alone_and_the_next_run_takes_the_new_one(lab):
    """Planned (probed) as one version, replaced before its segments are decoded: no row of the new
    version may land in a table planned from the old one."""
    prefix = f"{lab}/changing"
    for day in FRAMES:
        storage.atomic_write_bytes(f"{prefix}/{day}.mp4", storage.read_bytes(f"{lab}/videos/{day}/mouse.mp4"))
    replaced = []

    def replace_day2(run) -> None:
        if not replaced and run.report.segments_computed >= 1:
            storage.atomic_write_bytes(f"{prefix}/day2.mp4", storage.read_bytes(f"{lab}/videos/day1/mouse.mp4"))
            replaced.append(True)

    options = ArchiveOptions(model=f"{lab}/models/A", out=f"{lab}/poses-changing", workers=1, segment_frames=12,
                             progress=False, small_video_bytes=0)  # every video planned by a task, then streamed
    report = run_archive([f"{prefix}/day1.mp4", f"{prefix}/day2.mp4"], options, on_progress=replace_day2)
    statuses = {v.uri.rsplit("/", 1)[1]: (v.status, v.error) for v in report.videos}
    assert replaced and statuses["day1.mp4"][0] == "done"
    assert statuses["day2.mp4"][0] == "failed" and "changed during the job" in statuses["day2.mp4"][1]
    again = run_archive([f"{prefix}/day1.mp4", f"{prefix}/day2.mp4"], options)
    assert {v.uri.rsplit("/", 1)[1]: v.status for v in again.videos} == {"day1.mp4": "skipped", "day2.mp4": "done"}
    assert again.videos[1].frames == FRAMES["day1"]  # the new content


def test_presigned_urls_never_reach_a_manifest_a_meta_file_or_a_log(lab, capsys, caplog):
    import os

    import boto3

    bucket = lab.removeprefix("s3://")
    client = boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"])
    url = client.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "videos/day1/mouse.mp4"},
                                        ExpiresIn=600)
    signature = url.split("Signature=")[1].split("&")[0]
    broken = client.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "videos/none.mp4"},
                                           ExpiresIn=600)
    with caplog.at_level(logging.INFO):
        code = main(["infer", url, broken, "--model", f"{lab}/models/A", "--out", f"{lab}/poses-presigned",
                     "--workers", "1", "--quiet"])
    printed = capsys.readouterr()
    assert code == 1  # the missing one fails, by name
    summary = read_summary(f"{lab}/poses-presigned")
    records = list(iter_records(f"{lab}/poses-presigned", summary["job_id"]))
    assert sorted(r["status"] for r in records) == ["done", "failed"]
    done = next(r for r in records if r["status"] == "done")
    meta = storage.read_bytes(done["outputs"]["h5"][: -len(".h5")] + "_meta.json").decode()
    written = [json.dumps(summary), json.dumps(records), meta, printed.out, printed.err, caplog.text]
    for text in written:
        assert signature not in text
    assert "Signature=***" in json.dumps(records)
    # The table's place does not depend on the signature: a newly signed URL finds it done.
    again = client.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "videos/day1/mouse.mp4"},
                                          ExpiresIn=900)
    code = main(["infer", again, "--model", f"{lab}/models/A", "--out", f"{lab}/poses-presigned", "--workers", "1",
                 "--quiet"])
    summary = read_summary(f"{lab}/poses-presigned")
    assert code == 0 and summary["counts"] == {"skipped": 1}


def test_a_hostile_done_record_is_never_trusted(lab):
    """A done record rewritten by someone else (a huge frame count, bounds that do not tile) and the
    table deleted: the video is computed again, not failed and not skipped."""
    infer(lab, "videos/day2/", out="poses-hostile")
    table = table_of(lab, "day2", "poses-hostile")
    before = poses(table)
    records = storage.list_files(f"{lab}/poses-hostile/.posecluster/done", suffixes=(".json",))
    assert len(records) == 1
    storage.atomic_write_bytes(records[0], json.dumps({"frames": 10**12, "bounds": [[0, 5], [9, 10**12]]}).encode())
    storage.atomic_write_bytes(f"{lab}/poses-hostile/.posecluster/done/not-a-record.json", b"<script>")
    storage.remove(table)
    code, rerun = infer(lab, "videos/day2/", out="poses-hostile")
    assert code == 0 and rerun[0]["status"] == "done" and "recomputed" in rerun[0]
    np.testing.assert_array_equal(poses(table), before)


def test_names_with_spaces_and_hashes_keep_their_own_tables(lab):
    """OBS names recordings '2024-01-05 10-30-00.mkv'; folders like 'cage#2' exist: every character of a
    key is part of the video's place."""
    names = ["rec/2024-01-05 10-30-00.mp4", "rec/2024-01-05 14-00-00.mp4", "cage#2/a.mp4", "cage#3/a.mp4"]
    sources = ["day1", "day2", "day1", "day2"]
    for name, day in zip(names, sources):
        storage.atomic_write_bytes(f"{lab}/named/{name}", storage.read_bytes(f"{lab}/videos/{day}/mouse.mp4"))
    code, records = infer(lab, "named/", out="poses-named")
    assert code == 0 and sorted(r["status"] for r in records) == ["done"] * 4
    tables = {r["uri"].split("/named/")[1]: r["outputs"]["h5"] for r in records}
    assert len(set(tables.values())) == 4
    for name, day in zip(names, sources):
        assert len(poses(tables[name])) == FRAMES[day]
    code, again = infer(lab, "named/", out="poses-named")
    assert [r["status"] for r in again] == ["skipped"] * 4


def test_a_table_with_no_record_is_computed_again_and_says_so(lab):
    """A table at the video's place that no job recorded (an older posecluster's, copied there by hand)."""
    scorer = load_model(f"{lab}/models/A").scorer
    base = output_base(f"{lab}/videos/day1/mouse.mp4", f"{lab}/poses-norecord", scorer)
    storage.atomic_write_bytes(f"{base}.h5", b"a table written by hand")
    code, records = infer(lab, "videos/day1/", out="poses-norecord")
    assert code == 0 and records[0]["status"] == "done"
    assert records[0]["recomputed"] == "a table without its _meta.json"
    assert len(poses(f"{base}.h5")) == FRAMES["day1"]
    for record in storage.list_files(f"{lab}/poses-norecord/.posecluster/done", suffixes=(".json",)):
        storage.remove(record)  # the table and its _meta.json stay, their done record is gone
    code, records = infer(lab, "videos/day1/", out="poses-norecord")
    assert code == 0 and records[0]["recomputed"] == "a table and its _meta.json with no done record of them"
