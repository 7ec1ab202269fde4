"""A lab-A job fed each kind of cross-lab reference, through the real command line (and Ray for infer):
refused with an error naming the location, the file that named it and the scope; nothing written; lab
B's bytes never in lab A's outputs (issue 28: one lab never reaches another's data)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import pytest
import yaml

from posecluster.cli.main import main
from posecluster.data import synthetic
from posecluster.model.artifact import load_model, save_model
from tests.conftest import copy_finished_run
from tests.labeling.test_extract import empty_project


def snapshot(folder: Path) -> dict[str, str]:
    """Every file under `folder` (links not followed) -> sha256: what a job wrote, changed or removed."""
    out = {}
    for dirpath, _, files in os.walk(folder):
        for name in files:
            path = Path(dirpath) / name
            out[str(path)] = "link" if path.is_symlink() else hashlib.sha256(path.read_bytes()).hexdigest()
    return out


@pytest.fixture
def labs(tmp_path, trained_run):
    """root/a and root/b, each with a video, a project and a trained run; root/outside beside the root."""
    root = tmp_path / "root"
    for lab, seed in (("a", 5), ("b", 6)):
        (root / lab / "videos").mkdir(parents=True)
        synthetic.render_video(str(root / lab / "videos" / "clip.mp4"), synthetic.Scene(96, 80, seed=seed,
                                                                                        body_length=0.4), 24, gop=12)
        empty_project(str(root / lab / "project"))
        copy_finished_run(trained_run[0], root / lab / "models" / "run1")
    (root / "b" / "project" / "labeled-data" / "clip").mkdir(parents=True)
    (root / "b" / "project" / "labeled-data" / "clip" / "img000.png").write_bytes(b"LAB-B-LABELS")
    (tmp_path / "outside").mkdir()
    return root


def refused(args: list[str], scope: Path, capsys, *, location: str, named_by: str | None = None, code: int = 2) -> str:
    """Run the job confined to `scope`; it must fail with the naming error: the whole job (exit 2) when its
    inputs are refused, one item of it (exit 1, the others go on) when that item's reads or writes are."""
    before = snapshot(scope.parent)
    exit_code = main(["--confine", str(scope), *args])
    printed = capsys.readouterr()
    err = printed.err + printed.out
    assert exit_code == code, err
    assert "outside this job's scope" in err and location in err and str(scope) in err, err
    if named_by is not None:
        assert f"named in {named_by}" in err, err
    assert snapshot(scope.parent) == before  # nothing written, in either lab
    return err


def test_a_video_list_naming_another_labs_video(labs, capsys):
    a, b = labs / "a", labs / "b"
    listing = a / "videos.txt"
    listing.write_text(f"{a}/videos/clip.mp4\n{b}/videos/clip.mp4\n")
    for command in (["extract-frames", str(listing), "--project", str(a / "project"), "--n", "2"],
                    ["analyze", str(listing), "--model", str(a / "models" / "run1"), "--out", str(a / "poses"), "--quiet"]):
        refused(command, a, capsys, location=f"{b}/videos/clip.mp4", named_by=str(listing))
    # A file outside the served root, named by a list, is refused alike.
    listing.write_text(f"{labs.parent}/outside/clip.mp4\n")
    refused(["extract-frames", str(listing), "--project", str(a / "project")], a, capsys,
            location=f"{labs.parent}/outside/clip.mp4", named_by=str(listing))


def test_an_archive_job_on_ray_refuses_a_list_naming_another_labs_video(labs, ray_local, capsys):
    a, b = labs / "a", labs / "b"
    listing = a / "archive.txt"
    listing.write_text(f"{b}/videos/clip.mp4\n")
    refused(["infer", str(listing), "--model", str(a / "models" / "run1"), "--out", str(a / "poses"), "--quiet"],
            a, capsys, location=f"{b}/videos/clip.mp4", named_by=str(listing))
    # Its output folder linked outside the root: nothing is written there.
    os.symlink(labs.parent / "outside", a / "linked-poses")
    err = refused(["infer", str(a / "videos"), "--model", str(a / "models" / "run1"), "--out", str(a / "linked-poses"),
                   "--quiet"], a, capsys, location=str(a / "linked-poses"))
    assert "symbolic link" in err and os.listdir(labs.parent / "outside") == []
    # The same job on the lab's own videos runs confined through the planners, actors and joins on Ray.
    assert main(["--confine", str(a), "infer", str(a / "videos"), "--model", str(a / "models" / "run1"),
                 "--out", str(a / "poses"), "--quiet"]) == 0, capsys.readouterr()
    assert len(list((a / "poses").rglob("clip*.h5"))) == 1


def test_evaluate_without_a_project_does_not_follow_model_pt_into_another_lab(labs, capsys):
    a, b = labs / "a", labs / "b"
    shutil.copytree(labs.parent / "root" / "a" / "project", b / "project2")  # lab B's project, with labels
    trained = load_model(str(a / "models" / "run1"))
    save_model(str(a / "models" / "pointed"), trained.config.model_copy(update={"project_uri": str(b / "project")}),
               trained.bodyparts, trained.state_dict)
    refused(["evaluate", str(a / "models" / "pointed")], a, capsys, location=str(b / "project"),
            named_by=str(a / "models" / "pointed" / "model.pt"))
    assert not (a / "models" / "pointed" / "evaluation").exists()


def test_an_ensemble_member_in_another_lab(labs, capsys):
    a, b = labs / "a", labs / "b"
    (a / "models" / "ens").mkdir()
    (a / "models" / "ens" / "ensemble.json").write_text(json.dumps(
        {"members": [{"folder": "../run1"}, {"folder": "../../../b/models/run1"}]}))
    err = refused(["analyze", str(a / "videos" / "clip.mp4"), "--model", str(a / "models" / "ens"),
                   "--out", str(a / "poses"), "--quiet"], a, capsys, location="b/models/run1",
                  named_by=str(a / "models" / "ens" / "ensemble.json"))
    assert "../../../b/models/run1" in err  # the member as the manifest names it


def test_a_project_whose_video_sets_name_another_labs_video(labs, capsys):
    a, b = labs / "a", labs / "b"
    config = a / "project" / "config.yaml"
    raw = yaml.safe_load(config.read_text())
    raw["video_sets"] = {f"{b}/videos/clip.mp4": {"crop": "0, 96, 0, 80"}}
    config.write_text(yaml.safe_dump(raw))
    refused(["extract-frames", str(a / "videos" / "clip.mp4"), "--project", str(a / "project"), "--n", "2"],
            a, capsys, location=f"{b}/videos/clip.mp4", named_by=str(config))


def test_extract_frames_never_writes_through_a_link_into_another_labs_labeled_data(labs, capsys):
    a, b = labs / "a", labs / "b"
    (a / "project" / "labeled-data").mkdir()
    os.symlink(b / "project" / "labeled-data" / "clip", a / "project" / "labeled-data" / "clip")
    before_b = snapshot(b)
    err = refused(["extract-frames", str(a / "videos" / "clip.mp4"), "--project", str(a / "project"), "--n", "2"],
                  a, capsys, location=str(a / "project" / "labeled-data" / "clip"), code=1)  # the video fails alone
    assert "symbolic link" in err
    assert snapshot(b) == before_b and os.listdir(b / "project" / "labeled-data" / "clip") == ["img000.png"]


def test_an_output_folder_linked_outside_the_root_is_never_written(labs, capsys):
    a = labs / "a"
    os.symlink(labs.parent / "outside", a / "poses")
    err = refused(["analyze", str(a / "videos" / "clip.mp4"), "--model", str(a / "models" / "run1"),
                   "--out", str(a / "poses"), "--quiet"], a, capsys, location=str(a / "poses"))
    assert "symbolic link" in err
    assert os.listdir(labs.parent / "outside") == []


def test_the_same_jobs_inside_the_scope_still_run(labs, capsys):
    """The scope is not a wall around everything: a lab's own list, models and project work as before."""
    a = labs / "a"
    (a / "videos.txt").write_text(f"{a}/videos/clip.mp4\n")
    assert main(["--confine", str(a), "extract-frames", str(a / "videos.txt"), "--project", str(a / "project"),
                 "--method", "uniform", "--n", "2"]) == 0
    assert len(list((a / "project" / "labeled-data" / "clip").glob("*.png"))) == 2
    assert main(["--confine", str(a), "analyze", str(a / "videos.txt"), "--model", str(a / "models" / "run1"),
                 "--out", str(a / "poses"), "--quiet"]) == 0
    assert list((a / "poses").rglob("*.h5"))


def test_an_analysis_record_naming_another_labs_video(labs, capsys):
    """A `_meta.json` is data: the video (or model) it names must lie in the job's scope too."""
    a, b = labs / "a", labs / "b"
    (a / "poses").mkdir()
    record = a / "poses" / "clipDLC_meta.json"
    record.write_text(json.dumps({"video": f"{b}/videos/clip.mp4", "model": str(a / "models" / "run1")}))
    refused(["outliers", str(a / "poses"), "--project", str(a / "project"), "--n", "2"], a, capsys,
            location=f"{b}/videos/clip.mp4", named_by=str(record))


def test_on_an_object_store_a_lab_a_job_never_reads_lab_bs_objects(s3_bucket, trained_run, tmp_path, capsys):
    """The same doors on S3 (moto): a .txt list in lab A naming lab B's video, a neighbour's key beside the
    scope's folder (`.../a` vs `.../ab`), and a key with `..` that would climb out of it; refused naming the
    location, nothing written under either lab, and lab B's bytes in no output, message or log."""
    from posecluster import storage

    local = str(tmp_path / "clip.mp4")
    synthetic.render_video(local, synthetic.Scene(96, 80, seed=5, body_length=0.4), 24, gop=12)
    for lab in ("a", "ab"):
        storage.atomic_upload(local, f"{s3_bucket}/{lab}/videos/clip.mp4")
    storage.atomic_write_bytes(f"{s3_bucket}/ab/secret.txt", b"LAB-AB-SECRET")
    trained = load_model(trained_run[0])
    save_model(f"{s3_bucket}/a/models/run1", trained.config, trained.bodyparts, trained.state_dict)
    a = f"{s3_bucket}/a"
    for video in (f"{s3_bucket}/ab/videos/clip.mp4", f"{s3_bucket}/a/../ab/videos/clip.mp4"):
        storage.atomic_write_bytes(f"{a}/videos.txt", f"{video}\n".encode())
        before = storage.list_files(s3_bucket)
        code = main(["--confine", a, "analyze", f"{a}/videos.txt", "--model", f"{a}/models/run1", "--out",
                     f"{a}/poses", "--quiet"])
        printed = capsys.readouterr()
        err = printed.err + printed.out
        assert code == 2 and "outside this job's scope" in err and f"named in {a}/videos.txt" in err, err
        assert storage.list_files(s3_bucket) == before and "LAB-AB-SECRET" not in err
