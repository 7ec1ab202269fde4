"""What `analyze` and `infer` take as videos, through the CLI: inputs that name no video are an error that
says what was looked at, and a presigned (query-string) URL is a video."""

from __future__ import annotations

import json
import os

import pytest

from posecluster import storage
from posecluster.cli.main import main
from posecluster.infer.naming import output_base
from posecluster.train.checkpoint import load_model


@pytest.fixture
def nothing_to_analyze(tmp_path) -> dict[str, tuple[str, str]]:
    """Inputs that name no video -> what the error must say about each."""
    (tmp_path / "empty").mkdir()
    others = tmp_path / "not-videos"
    others.mkdir()
    (others / "notes.csv").write_text("a,b\n")
    (others / "frame.png").write_bytes(b"\x89PNG")
    (tmp_path / "list.txt").write_text("# nothing listed yet\n\n")
    return {"empty folder": (str(tmp_path / "empty"), "empty"),
            "folder of other files": (str(others), "2 files, 0 of them videos"),
            "empty list": (str(tmp_path / "list.txt"), "a list naming 0 URIs")}


@pytest.mark.parametrize("command", ["analyze", "infer"])
@pytest.mark.parametrize("case", ["empty folder", "folder of other files", "empty list"])
def test_inputs_that_name_no_video_are_an_error_saying_what_was_looked_at(command, case, nothing_to_analyze,
                                                                          trained_run, tmp_path, capsys):
    source, held = nothing_to_analyze[case]
    out = tmp_path / "poses"
    code = main([command, source, "--model", trained_run[0], "--out", str(out), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "no video" in err and source in err
    if command == "analyze":
        assert held in err and ".mp4" in err
    assert not out.exists() or not storage.list_files(str(out), suffixes=(".h5",))


def test_a_presigned_url_is_analysed_as_a_video(trained_run, synthetic_project, s3_bucket, tmp_path, capsys):
    import boto3

    storage.atomic_upload(synthetic_project.videos[0].uri, f"{s3_bucket}/videos/mouse.mp4")
    client = boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"])
    url = client.generate_presigned_url("get_object", ExpiresIn=600,
                                        Params={"Bucket": s3_bucket.removeprefix("s3://"), "Key": "videos/mouse.mp4"})
    assert "Signature=" in url.split("?", 1)[1]
    out = str(tmp_path / "poses")
    assert main(["analyze", url, "--model", trained_run[0], "--out", out, "--quiet"]) == 0
    base = output_base(url, out, load_model(trained_run[0]).scorer)
    assert base.endswith("/videos/mouse" + load_model(trained_run[0]).scorer)
    assert storage.exists(f"{base}.h5")
    meta = json.loads(storage.read_bytes(f"{base}_meta.json"))
    assert meta["frames"] == 64 and url.split("Signature=")[1][:12] not in json.dumps(meta)
