"""An archive run with an ensemble model: members on each decoded segment, the EKS table per video."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("eks", reason="the `ensemble` extra (ensemble-kalman-smoother) is not installed")

from posecluster.cluster.archive import ArchiveOptions, run_archive  # noqa: E402
from posecluster.data.formats.poses import read_track  # noqa: E402
from posecluster.infer.analyze import analyze_video  # noqa: E402
from posecluster.infer.predictor import Predictor  # noqa: E402
from posecluster.train.checkpoint import load_model  # noqa: E402


def test_archive_with_an_ensemble_writes_smoothed_and_member_tables(ray_local, ensemble_folder, analysed_video,
                                                                    tmp_path):
    video = analysed_video[0]
    options = ArchiveOptions(model=ensemble_folder, out=str(tmp_path / "poses"), workers=1, segment_frames=30,
                             progress=False)
    report = run_archive([video.uri], options)
    [done] = report.videos
    assert done.status == "done", done.error
    # Member 1 run on the shared batches across segments equals member 1 analysed on its own.
    alone = analyze_video(Predictor(load_model(f"{ensemble_folder}/member-1")), video.uri, str(tmp_path / "alone"),
                          progress=False)
    np.testing.assert_allclose(read_track(done.outputs["member1"]).poses, read_track(alone.outputs["h5"]).poses,
                               atol=1e-3)
    smoothed = read_track(done.outputs["h5"]).poses
    members = np.stack([read_track(done.outputs[f"member{k}"]).poses for k in range(3)])
    assert smoothed.shape == members.shape[1:] and np.isfinite(smoothed).all()
    np.testing.assert_allclose(smoothed[..., 2], members[..., 2].mean(0), atol=1e-5)
