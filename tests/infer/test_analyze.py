"""Single-video analysis: one DLC-compatible row per frame, from disk or S3, matching the rendered truth."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from posecluster import storage
from posecluster.data.formats.poses import read_pose_table, table_to_array
from posecluster.data.video import probe
from posecluster.infer.analyze import analyze_video
from posecluster.infer.predictor import Predictor
from posecluster.train.checkpoint import load_model

BODYPARTS = ["snout", "leftear", "rightear", "tailbase"]


@pytest.fixture(scope="module")
def predictor(trained_run):
    return Predictor(load_model(trained_run[0]))


def test_openfield_video_gives_one_row_per_frame_with_dlc_columns(trained_run, openfield_video, tmp_path):
    # The tiny model shares openfield's body parts; at 1/10 scale it runs all 2,330 frames quickly. In fp32:
    # this video is unlike the model's rendered training images, so `auto`'s per-video check sends it back to
    # fp32 after a whole reduced pass (tests/infer/test_verify.py covers that); here only rows and columns count.
    trained = load_model(trained_run[0])
    trained.config = trained.config.with_overrides({"model": {"global_scale": 0.1}, "infer": {"mixed_precision": "off"}})
    result = analyze_video(Predictor(trained), openfield_video, str(tmp_path), progress=False)
    table = pd.read_hdf(result.outputs["h5"], key="df_with_missing")
    assert len(table) == 2330 and table.index.tolist() == list(range(2330))
    assert list(table.columns.names) == ["scorer", "bodyparts", "coords"]
    assert table.columns.get_level_values("bodyparts").unique().tolist() == BODYPARTS
    assert table.columns.get_level_values("coords")[:3].tolist() == ["x", "y", "likelihood"]
    likelihood = table.xs("likelihood", axis=1, level="coords").to_numpy()
    assert np.isfinite(table.to_numpy()).all() and (0 <= likelihood).all() and (likelihood <= 1).all()
    assert result.frames_predicted == 2330 and not result.missing_frames
    assert result.outputs["h5"].endswith("m3v1mp4DLC_resnet_18_syntheticJan1shuffle1_posecluster.h5")


def test_predictions_on_a_rendered_video_match_the_truth(predictor, synthetic_project, tmp_path):
    video = synthetic_project.videos[0]
    result = analyze_video(predictor, video.uri, str(tmp_path), progress=False)
    poses = table_to_array(read_pose_table(result.outputs["h5"]), BODYPARTS)
    error = np.nanmean(np.linalg.norm(poses[..., :2] - video.truth, axis=-1))
    chance = np.mean(np.linalg.norm(video.truth - video.truth.mean(axis=0), axis=-1))  # always the mean pose
    assert error < chance / 2.5, (error, chance)


def test_s3_in_s3_out_with_csv_and_parquet_equals_local(predictor, synthetic_project, s3_bucket, tmp_path):
    video = synthetic_project.videos[0]
    remote_video = f"{s3_bucket}/archive/arena0.mp4"
    storage.atomic_upload(video.uri, remote_video)
    remote = analyze_video(predictor, remote_video, f"{s3_bucket}/poses", formats=("csv", "parquet"), progress=False)
    local = analyze_video(predictor, video.uri, str(tmp_path), progress=False)
    assert sorted(remote.outputs) == ["csv", "h5", "parquet"]
    expected = read_pose_table(local.outputs["h5"])
    for fmt in ("h5", "parquet", "csv"):
        got = read_pose_table(remote.outputs[fmt])
        np.testing.assert_allclose(got.to_numpy(), expected.to_numpy(), rtol=1e-9, err_msg=fmt)
        assert got.columns.tolist() == expected.columns.tolist()
    assert storage.exists(remote.outputs["h5"].replace(".h5", "_meta.json"))


def test_frames_the_decoder_never_produces_are_reported_and_left_empty(predictor, synthetic_project, tmp_path, monkeypatch):
    import posecluster.infer.analyze as analyze_module

    video = synthetic_project.videos[0]
    real = probe(video.uri)
    # A timestamp no packet carries stands for a frame lost to a decoding error.
    ghost = np.insert(real.pts, 10, real.pts[9] + 1)
    monkeypatch.setattr(analyze_module, "probe", lambda uri: type(real)(**{**real.__dict__, "pts": ghost, "frame_count": len(ghost),
                                                                                         "present": len(ghost)}))
    result = analyze_video(predictor, video.uri, str(tmp_path), progress=False)
    assert list(result.missing_frames) == [10]
    table = read_pose_table(result.outputs["h5"])
    assert len(table) == len(ghost) and table.iloc[10].isna().all() and table.drop(index=10).notna().all().all()
