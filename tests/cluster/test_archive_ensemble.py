"""An archive run with an ensemble folder: K members on each decoded segment, the EKS table per video."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("eks", reason="the `ensemble` extra (ensemble-kalman-smoother) is not installed")

from posecluster import api  # noqa: E402
from posecluster.cluster.archive import ArchiveOptions, run_archive  # noqa: E402
from posecluster.data.formats.poses import read_pose_table, read_track  # noqa: E402
from posecluster.infer.analyze import analyze_video  # noqa: E402
from posecluster.infer.predictor import Predictor  # noqa: E402
from posecluster.model.artifact import load_model  # noqa: E402


def test_archive_on_an_ensemble_matches_analyze_and_each_member_alone(ray_local, ensemble_folder, analysed_video,
                                                                     tmp_path):
    video = analysed_video[0]
    ensemble = ensemble_folder
    options = ArchiveOptions(model=ensemble, out=str(tmp_path / "archive"), workers=2, segment_frames=20,
                             progress=False)
    report = run_archive([video.uri], options)
    [done] = report.videos
    assert done.status == "done", done.error
    assert len(done.segments) > 2  # the video was cut into segments, joined and smoothed as one track
    assert {"h5", "ensemble_variance", "member0", "member1", "member2"} <= set(done.outputs)

    # Each member, run on the shared batches segment by segment, equals that member analysed on its own.
    alone = analyze_video(Predictor(load_model(f"{ensemble}/member-1")), video.uri, str(tmp_path / "alone"),
                          progress=False)
    np.testing.assert_allclose(read_track(done.outputs["member1"]).poses, read_track(alone.outputs["h5"]).poses,
                               atol=1e-3)
    # The smoothed table and its variance are what `analyze` writes for the same ensemble (one pass).
    [whole] = api.analyze([video.uri], ensemble, str(tmp_path / "analyze"), progress=False)
    np.testing.assert_allclose(read_track(done.outputs["h5"]).poses, read_track(whole.outputs["h5"]).poses,
                               atol=1e-2)
    np.testing.assert_allclose(read_pose_table(done.outputs["ensemble_variance"]).to_numpy(),
                               read_pose_table(whole.outputs["ensemble_variance"]).to_numpy(), rtol=1e-2, atol=1e-2)
    meta = json.loads(open(done.outputs["h5"].removesuffix(".h5") + "_meta.json").read())
    assert [m["uri"] for m in meta["ensemble"]["members"]] == [f"{ensemble}/member-{k}/model.pt" for k in range(3)]
    assert meta["scorer"].endswith("_ensemble3") and meta["frames"] == len(video.truth)
