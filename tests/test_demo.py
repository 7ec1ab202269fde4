from __future__ import annotations

import pytest

from posecluster.demo import run_demo


def test_demo_runs_end_to_end_on_rendered_data(tmp_path):
    report = run_demo(str(tmp_path / "demo"), labeled_frames=12, epochs=1, video_frames=20, progress=False)
    assert report.video_frames == 20 and report.video_fps > 0
    assert report.pose_table.endswith(".h5") and len(report.lines()) == 8


@pytest.mark.slow
def test_demo_detector_learns_far_below_chance(tmp_path):
    """The README's demo as shipped (about 100 s on 2 cores)."""
    report = run_demo(str(tmp_path / "demo"), progress=False)
    assert report.test_error_px < report.chance_error_px / 5, report.lines()
    assert report.video_error_px < report.chance_error_px / 5, report.lines()
