"""A folder holds one run's outputs per video, through the CLI: a rerun with another model removes what
the earlier run left for that video, tools that read a `_filtered` table check it came from the table
beside it, tools that read a table check it is the one its `_meta.json` describes, plots and labeled
videos record the table they were drawn from, a query that selects an object is part of its identity,
and long names stay writable."""

from __future__ import annotations

import hashlib
import json
import os
import shutil

import pytest

from posecluster import storage
from posecluster.cli.main import main
from posecluster.data.formats.poses import read_track, write_track
from posecluster.infer.naming import output_base
from posecluster.model.artifact import load_model, save_model


@pytest.fixture(scope="module")
def model_b(trained_run, tmp_path_factory) -> str:
    """Another model of the same scorer (other weights): its tables have model A's names."""
    trained = load_model(trained_run[0])
    folder = str(tmp_path_factory.mktemp("model-b") / "B")
    save_model(folder, trained.config, trained.bodyparts,
               {k: v * 1.2 if v.is_floating_point() else v for k, v in trained.state_dict.items()})
    return folder


def sha256_of(path: str) -> str:
    with open(path, "rb") as handle:
        return hashlib.sha256(handle.read()).hexdigest()


def names(folder) -> set[str]:
    return {os.path.relpath(p, folder) for p in storage.list_files(str(folder))}


def analyze(video: str, model: str, out: str, *extra: str) -> int:
    return main(["analyze", video, "--model", model, "--out", out, "--quiet", *extra])


@pytest.mark.parametrize("command", ["analyze", "infer"])
def test_a_rerun_with_another_model_leaves_none_of_the_earlier_runs_outputs(command, trained_run, model_b,
                                                                           synthetic_project, tmp_path, request):
    if command == "infer":
        request.getfixturevalue("ray_local")
    video, out = synthetic_project.videos[0].uri, str(tmp_path / "poses")
    base = output_base(video, out, load_model(trained_run[0]).scorer)
    stem = os.path.basename(base)
    assert analyze(video, trained_run[0], out, "--format", "csv") == 0  # model A, with csv
    assert main(["filter", out, "--format", "csv"]) == 0
    assert main(["label-video", out, "--out", out]) == 0
    assert main(["plot", out, "--out", out]) == 0
    before = names(out)
    assert {f"{stem}.csv", f"{stem}_filtered.h5", f"{stem}_filtered.csv", f"{stem}_labeled.mp4"} <= {
        os.path.basename(n) for n in before}
    assert any(n.startswith("plot-poses/") for n in before)
    # posecluster's plots and labeled video say which table they were drawn from (a rerun removes them).
    (plots_record,) = [n for n in before if n.startswith("plot-poses/") and n.endswith("/_source.json")]
    for record in (os.path.join(out, plots_record), f"{base}_labeled_source.json"):
        drawn_from = json.loads(storage.read_bytes(record))
        assert (drawn_from["table"], drawn_from["table_sha256"]) == (f"{stem}.h5", sha256_of(f"{base}.h5"))

    if command == "analyze":
        assert analyze(video, model_b, out) == 0  # model B, no csv
    else:
        assert main(["infer", video, "--model", model_b, "--out", out, "--workers", "1", "--quiet"]) == 0
    left = {os.path.basename(n) for n in names(out) if not n.startswith(".posecluster/")
            and n != "posecluster-manifest.json"}
    assert left == {f"{stem}.h5", f"{stem}_meta.json"}
    meta = json.loads(storage.read_bytes(f"{base}_meta.json"))
    assert model_b in json.dumps(meta["model"])
    # Nothing of A's is there to be used as B's:
    assert main(["label-video", out, "--out", str(tmp_path / "labeled"), "--filtered"]) == 1


def test_tools_refuse_a_filtered_table_made_from_another_table(analysed_video, tmp_path, capsys):
    from tests.conftest import copy_analysis

    poses = copy_analysis(analysed_video[1], tmp_path / "poses")
    project = tmp_path / "project"
    assert main(["filter", poses]) == 0
    (table,) = [p for p in storage.list_files(poses, suffixes=(".h5",)) if not p.endswith("_filtered.h5")]
    assert main(["plot", poses, "--out", str(tmp_path / "plots"), "--filtered", "--pcutoff", "0.1"]) == 0
    # Another run's poses in the table, its _filtered table left as it was (an outage, a copy by hand):
    track = read_track(table)
    track.poses[..., 0] += 5.0
    write_track(track, table)
    meta_uri = table[: -len(".h5")] + "_meta.json"  # ... with its own _meta.json
    meta = json.loads(storage.read_bytes(meta_uri))
    storage.atomic_write_bytes(meta_uri, json.dumps({**meta, "table_sha256": sha256_of(table)}).encode())
    capsys.readouterr()
    assert main(["label-video", poses, "--out", str(tmp_path / "labeled"), "--filtered"]) == 1
    assert main(["outliers", poses, "--project", str(project), "--filtered"]) == 1
    assert main(["plot", poses, "--out", str(tmp_path / "plots2"), "--filtered", "--pcutoff", "0.1"]) == 1
    printed = capsys.readouterr().out
    assert printed.count("was filtered from another table") == 3 and "run `posecluster filter`" in printed
    assert not os.path.exists(tmp_path / "labeled") or not storage.list_files(str(tmp_path / "labeled"))
    # Filtering again makes it the table's own; a _filtered table with no record is refused too.
    assert main(["filter", poses]) == 0
    assert main(["plot", poses, "--out", str(tmp_path / "plots3"), "--filtered", "--pcutoff", "0.1"]) == 0
    os.remove(table[: -len(".h5")] + "_filtered_source.json")
    assert main(["plot", poses, "--out", str(tmp_path / "plots4"), "--filtered", "--pcutoff", "0.1"]) == 1
    assert "_filtered_source.json is missing" in capsys.readouterr().out


def test_a_table_published_after_its_meta_was_written_is_refused_by_the_tools(analysed_video, tmp_path, capsys):
    """An outage between a rerun's table and its `_meta.json` (simulated: the table replaced, the meta
    left): the meta's model would be credited with other poses, so every tool refuses, naming both files.
    Plots and labeled videos written elsewhere record the table they were drawn from, so they can be told."""
    from tests.conftest import copy_analysis

    poses = copy_analysis(analysed_video[1], tmp_path / "poses")
    (table,) = storage.list_files(poses, suffixes=(".h5",))
    meta_uri = table[: -len(".h5")] + "_meta.json"
    assert json.loads(storage.read_bytes(meta_uri))["table_sha256"] == sha256_of(table)
    assert main(["plot", poses, "--out", str(tmp_path / "plots"), "--pcutoff", "0.1"]) == 0
    assert main(["label-video", poses, "--out", str(tmp_path / "labeled")]) == 0
    drawn = [p for p in storage.list_files(str(tmp_path)) if p.endswith("_source.json") and "/poses/" not in p]
    assert len(drawn) == 2
    for record in drawn:
        assert json.loads(storage.read_bytes(record))["table_sha256"] == sha256_of(table)

    track = read_track(table)
    track.poses[..., 1] += 3.0
    write_track(track, table)
    capsys.readouterr()
    assert main(["filter", poses]) == 1
    assert main(["label-video", poses, "--out", str(tmp_path / "labeled2")]) == 1
    assert main(["plot", poses, "--out", str(tmp_path / "plots2"), "--pcutoff", "0.1"]) == 1
    printed = capsys.readouterr().out
    said = f"{table}: is not the table that {os.path.basename(meta_uri)} beside it describes"
    assert printed.count(said) == 3 and "posecluster analyze" in printed
    assert not os.path.exists(table[: -len(".h5")] + "_filtered.h5")
    assert not os.path.exists(tmp_path / "labeled2") and not os.path.exists(tmp_path / "plots2")
    # The drawings made before say which table they came from: not this one any more.
    assert all(json.loads(storage.read_bytes(r))["table_sha256"] != sha256_of(table) for r in drawn)


@pytest.mark.slow  # two analyses of a video (~20 s on a loaded machine)
def test_a_rerun_that_fails_to_publish_its_table_leaves_no_earlier_meta_beside_it(trained_run, synthetic_project,
                                                                                  tmp_path):
    """The earlier `_meta.json` goes before the new table is published: a rerun stopped in between (here:
    the table's name taken by a folder) leaves no record that would vouch for the table there."""
    video, out = synthetic_project.videos[0].uri, str(tmp_path / "poses")
    base = output_base(video, out, load_model(trained_run[0]).scorer)
    assert analyze(video, trained_run[0], out) == 0
    os.remove(f"{base}.h5")
    os.makedirs(f"{base}.h5/blocked")
    assert analyze(video, trained_run[0], out) != 0
    assert not os.path.exists(f"{base}_meta.json")


def test_a_query_that_selects_an_object_is_part_of_its_identity(trained_run, synthetic_project, tmp_path,
                                                                   s3_bucket):
    """Two versions of one key, reached by presigned URLs with their versionId: two videos, two tables;
    a new signature of the same version finds the same table."""
    import boto3

    bucket = s3_bucket.removeprefix("s3://")
    client = boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"])
    client.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    from posecluster.data import synthetic

    short = tmp_path / "short.mp4"
    synthetic.render_video(str(short), synthetic.Scene(width=96, height=80, seed=11, body_length=0.4), 20)
    versions = []
    for source in (synthetic_project.videos[0].uri, str(short)):
        with open(source, "rb") as fh:
            versions.append(client.put_object(Bucket=bucket, Key="v/mouse.mp4", Body=fh.read())["VersionId"])

    def url(version: str, expires: int = 600) -> str:
        return client.generate_presigned_url("get_object", ExpiresIn=expires,
                                             Params={"Bucket": bucket, "Key": "v/mouse.mp4", "VersionId": version})

    out = str(tmp_path / "poses")
    urls = [url(v) for v in versions]
    assert main(["analyze", *urls, "--model", trained_run[0], "--out", out, "--quiet"]) == 0
    metas = storage.list_files(out, suffixes=("_meta.json",))
    assert len(metas) == 2
    assert sorted(json.loads(storage.read_bytes(m))["frames"] for m in metas) == [20, 64]
    # Each record names its version in clear (what reopens that object), never the signature.
    recorded = [json.loads(storage.read_bytes(m))["video"] for m in metas]
    assert sorted(storage.selecting_query(v) for v in recorded) == sorted(f"versionId={v}" for v in versions)
    assert not [v for v in recorded for u in urls if u.split("Signature=")[1].split("&")[0] in v]
    assert storage.canonical_uri(url(versions[0])) != storage.canonical_uri(url(versions[1]))
    assert storage.canonical_uri(url(versions[0])) == storage.canonical_uri(url(versions[0], 900))
    assert main(["analyze", url(versions[0], 900), "--model", trained_run[0], "--out", out, "--quiet"]) == 0
    assert len(storage.list_files(out, suffixes=("_meta.json",))) == 2


def test_a_long_video_name_that_fits_is_analysed_and_filtered(trained_run, synthetic_project, tmp_path):
    """A stem of 170+ bytes whose longest derived name (a tracked table's `_el_filtered_labeled_source.json`) is
    exactly 255 bytes (the limit): every name fits, and so must the names written on the way
    (`<name>.tmp-<uuid>` did not); `filter` and `label-video` write theirs."""
    scorer = load_model(trained_run[0]).scorer
    stem = "m" * (255 - len(f"{scorer}_el_filtered_labeled_source.json".encode()))
    assert len(stem) >= 170
    video = tmp_path / "videos" / f"{stem}.mp4"
    video.parent.mkdir()
    shutil.copy(synthetic_project.videos[0].uri, video)
    out = str(tmp_path / "poses")
    assert analyze(str(video), trained_run[0], out, "--format", "csv") == 0
    base = output_base(str(video), out, scorer)
    assert storage.exists(base + "_meta.json")
    assert main(["filter", out, "--format", "csv", "--format", "parquet"]) == 0
    assert main(["label-video", out, "--out", out, "--filtered"]) == 0
    assert {os.path.basename(base) + s for s in ("_filtered.h5", "_filtered.parquet", "_filtered_source.json",
                                                   "_filtered_labeled.mp4")} <= {os.path.basename(n) for n in names(out)}
    assert not [n for n in names(out) if ".tmp-" in n]


def test_a_video_name_too_long_for_a_derived_name_is_refused_before_inference(trained_run, synthetic_project,
                                                                                tmp_path, capsys):
    """One byte more (a two-byte character for a one-byte one): `<stem><scorer>.h5` and `_meta.json`
    would fit, `_filtered_labeled.mp4` would not; the video is refused by name before a frame is predicted."""
    scorer = load_model(trained_run[0]).scorer
    stem = "m" * (255 - len(f"{scorer}_el_filtered_labeled_source.json".encode()) - 1) + "é"
    assert len(f"{stem}{scorer}_meta.json".encode()) < 255
    video = tmp_path / "videos" / f"{stem}.mp4"
    video.parent.mkdir()
    shutil.copy(synthetic_project.videos[0].uri, video)
    out = str(tmp_path / "poses")
    capsys.readouterr()
    assert analyze(str(video), trained_run[0], out) != 0
    printed = "".join(capsys.readouterr())
    assert stem in printed and "256 bytes" in printed and "limit of 255 bytes" in printed
    assert "rename the video" in printed
    assert not os.path.exists(out) or not names(out)


def test_infer_refuses_a_video_name_too_long_for_a_derived_name_at_planning(trained_run, synthetic_project,
                                                                              tmp_path, ray_local):
    scorer = load_model(trained_run[0]).scorer
    stem = "m" * (256 - len(f"{scorer}_el_filtered_labeled_source.json".encode()))
    video = tmp_path / "videos" / f"{stem}.mp4"
    video.parent.mkdir()
    shutil.copy(synthetic_project.videos[0].uri, video)
    out = str(tmp_path / "poses")
    assert main(["infer", str(video), "--model", trained_run[0], "--out", out, "--workers", "1", "--quiet"]) == 1
    from posecluster.cluster.manifest import read_summary

    failures = json.dumps(read_summary(out)["failures"], ensure_ascii=False)
    assert "over a file name's limit of 255 bytes" in failures and stem in failures
    assert not [n for n in names(out) if n.endswith((".h5", ".npz"))]  # nothing predicted
