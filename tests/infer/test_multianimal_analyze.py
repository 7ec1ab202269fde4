"""posecluster analyze on a multi-animal model: its stored tracklets are reused only while they pass their
checks, and the tools of the refine loop take the tracked tables it writes."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest

from posecluster import storage
from posecluster.cli.main import main
from posecluster.data.formats import dlc
from posecluster.data.synthetic_multianimal import MultiAnimalScene, project_config, render_video
from posecluster.infer.multianimal_store import read_pieces
from posecluster.infer.naming import output_base, tracked_base, tracklets_file
from tests.cluster.test_archive_multianimal import untrained_model

SCENE = MultiAnimalScene(width=80, height=64)


@pytest.fixture(scope="module")
def analysed(tmp_path_factory):
    """Two 5-frame videos analysed by an untrained multi-animal model: (model, videos, poses folder, bases)."""
    root = tmp_path_factory.mktemp("ma-analyze")
    model, scorer = untrained_model(str(root), SCENE)
    videos = [render_video(f"{root}/videos/arena{i}.mp4", SCENE, 5).uri for i in range(2)]
    out = f"{root}/poses"
    assert main(["analyze", *videos, "--model", model, "--out", out, "--quiet"]) == 0
    return model, videos, out, [tracked_base(output_base(video, out, scorer)) for video in videos]


def test_damaged_stored_tracklets_are_predicted_again_and_the_other_videos_reuse_theirs(analysed, tmp_path):
    model, videos, first, first_bases = analysed
    out = str(tmp_path / "poses")
    shutil.copytree(first, out)
    bases = [base.replace(first, out, 1) for base in first_bases]
    tables = [pd.read_hdf(f"{base}.h5", "df_with_missing") for base in bases]
    # The first video's stored tracklets damaged on disk, the key that says what they were made from intact:
    # a frame's detection count no longer matches the detections stored.
    stored = tracklets_file(bases[0])
    with np.load(stored, allow_pickle=False) as data:
        arrays = {name: data[name] for name in data.files}
    arrays["piece00000/counts"][3] += 2
    with open(stored, "wb") as handle:
        np.savez(handle, **arrays)

    assert main(["analyze", *videos, "--model", model, "--out", out, "--quiet"]) == 0
    reused = [json.loads(storage.read_bytes(f"{base}_meta.json"))["tracklets_file"]["reused"] for base in bases]
    assert reused == [False, True]
    for base, table in zip(bases, tables):
        pd.testing.assert_frame_equal(pd.read_hdf(f"{base}.h5", "df_with_missing"), table)
    assert len(list(read_pieces([stored]))) == 1  # written whole again


def test_the_refine_tools_take_the_tracked_table_analyze_wrote(analysed, tmp_path, capsys):
    _, videos, first, bases = analysed
    poses = str(tmp_path / "poses")
    shutil.copytree(first, poses)
    table = f"{bases[0].replace(first, poses, 1)}.h5"
    project = str(tmp_path / "project")
    dlc.write_project_config(f"{project}/config.yaml", project_config(SCENE))
    assert main(["filter", table, "--format", "csv"]) == 0
    assert main(["label-video", table, "--out", str(tmp_path / "labeled"), "--skeleton", "--filtered"]) == 0
    assert main(["outliers", table, "--project", project, "--filtered", "--algorithm", "uncertain",
                 "--p-bound", "1.01"]) == 0  # every detected part is "unsure": here the landmark in each frame
    printed = capsys.readouterr().out
    assert "5 frames ->" in printed and "_el_filtered_labeled.mp4" in printed
    assert "5 candidate frames, 5 written for labeling: [0, 1, 2, 3, 4]" in printed
    collected = pd.read_hdf(f"{project}/labeled-data/arena0/CollectedData_synthetic.h5")
    assert list(collected.columns.names) == ["scorer", "individuals", "bodyparts", "coords"] and len(collected) == 5


def test_a_rerun_with_other_tracking_settings_links_again_and_records_them(analysed, tmp_path):
    model, videos, first, first_bases = analysed
    out = str(tmp_path / "poses")
    shutil.copytree(first, out)
    base = first_bases[0].replace(first, out, 1)
    before = json.loads(storage.read_bytes(f"{base}_meta.json"))["animals"]
    # A link gate wider than the frame: every detection links to one of the next frame's (the untrained
    # model's detections jump further than the default 15 px), so tracking finds fewer tracklets.
    assert main(["analyze", videos[0], "--model", model, "--out", out, "--quiet",
                 "--set", "infer.tracking.max_link_px=1000"]) == 0
    meta = json.loads(storage.read_bytes(f"{base}_meta.json"))
    assert meta["tracklets_file"]["reused"] is False  # linked with other settings: not the stored tracklets
    assert meta["animals"]["tracking_config"]["max_link_px"] == 1000.0
    assert meta["animals"]["tracking_config"]["enter_px"] == before["tracking_config"]["enter_px"]  # the rest kept
    assert meta["animals"]["tracking"]["tracklets"] < before["tracking"]["tracklets"]
