"""Analysis results still work after the poses folder (or the video) moved."""

from __future__ import annotations

import json
import shutil

from posecluster import api
from posecluster.analysis.filtering import FilterOptions
from posecluster.data.formats.poses import read_track
from posecluster.infer.analyze import analyze_video
from posecluster.infer.predictor import Predictor
from posecluster.train.checkpoint import load_model
from posecluster.viz.labeled_video import LabelOptions


def test_a_copied_poses_folder_is_found_by_its_tables_not_the_recorded_paths(analysed_video, tmp_path):
    _video, poses = analysed_video
    copy = tmp_path / "downloaded"
    shutil.copytree(poses, copy)  # _meta.json still names the original folder
    for meta in copy.glob("*_meta.json"):
        record = json.loads(meta.read_text())
        record["outputs"] = {fmt: f"demo-output/poses/gone.{fmt}" for fmt in record["outputs"]}
        meta.write_text(json.dumps(record))
    outcomes = api.filter_poses([str(copy)], FilterOptions())
    assert not any(o.error for o in outcomes)
    assert all(o.outputs["h5"].startswith(str(copy)) for o in outcomes)
    assert len(read_track(outcomes[0].outputs["h5"])) == 90


def test_a_moved_video_is_named_with_video_or_reported_clearly(analysed_video, tmp_path):
    video, poses = analysed_video
    copy = tmp_path / "poses"
    shutil.copytree(poses, copy)
    moved = tmp_path / "archive" / "trial7.mp4"
    moved.parent.mkdir()
    shutil.copy(video.uri, moved)
    for meta in copy.glob("*_meta.json"):
        record = json.loads(meta.read_text())
        record["video"] = str(tmp_path / "old-place" / "trial7.mp4")
        meta.write_text(json.dumps(record))
    failed = api.label_videos([str(copy)], str(tmp_path / "labeled"), LabelOptions(), pcutoff=0.5)
    assert failed[0].error and "old-place/trial7.mp4 is not there any more" in failed[0].error
    assert "--video" in failed[0].error
    done = api.label_videos([str(copy)], str(tmp_path / "labeled"), LabelOptions(), pcutoff=0.5, videos=[str(moved)])
    assert not done[0].error and done[0].outputs["frames"] == 90


def test_analysis_records_absolute_locations(synthetic_project, tmp_path, monkeypatch):
    from posecluster.data.formats.dlc import read_project_config
    from posecluster.model.pose_model import PoseModel
    from posecluster.train.checkpoint import save_model
    from tests.conftest import tiny_config

    project = read_project_config(f"{synthetic_project.uri}/config.yaml")
    config = tiny_config(project, synthetic_project.uri)
    untrained = PoseModel(config.model, len(config.project.bodyparts))  # any weights: only names matter here
    save_model(str(tmp_path / "run"), config, config.project.bodyparts, untrained.state_dict())
    monkeypatch.chdir(tmp_path)
    shutil.copy(synthetic_project.videos[0].uri, tmp_path / "clip.mp4")
    predictor = Predictor(load_model(str(tmp_path / "run")))
    result = analyze_video(predictor, "clip.mp4", "poses", progress=False)
    meta = json.loads((tmp_path / "poses" / f"clip{predictor.scorer}_meta.json").read_text())
    assert meta["video"] == str(tmp_path / "clip.mp4") and result.video == meta["video"]
    assert meta["outputs"]["h5"] == str(tmp_path / "poses" / f"clip{predictor.scorer}.h5")
    monkeypatch.chdir("/")  # another working directory (a Ray worker's) still finds table and video
    outcomes = api.label_videos([str(tmp_path / "poses")], str(tmp_path / "labeled"), LabelOptions(), pcutoff=0.5)
    assert not outcomes[0].error and outcomes[0].outputs["frames"] == result.frames
