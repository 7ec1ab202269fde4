"""Per-video commands over several analyses run as Ray tasks; a broken table fails alone."""

from __future__ import annotations

import glob

from posecluster.cli.main import main
from posecluster.data.formats.poses import read_track
from tests.conftest import copy_analysis


def test_filtering_an_archive_of_analyses_runs_per_video_and_isolates_a_broken_table(ray_local, analysed_video, tmp_path, capsys):
    good = copy_analysis(analysed_video[1], tmp_path / "poses" / "day1")
    bad = copy_analysis(analysed_video[1], tmp_path / "poses" / "day2")
    (broken,) = [t for t in glob.glob(f"{bad}/*.h5") if not t.endswith("_filtered.h5")]
    with open(broken, "wb") as handle:
        handle.write(b"this is not an HDF5 file")
    assert main(["filter", str(tmp_path / "poses"), "--method", "spline"]) == 1
    out = capsys.readouterr().out
    assert f"FAILED {broken}" in out and "not a readable pose table" in out
    (filtered,) = glob.glob(f"{good}/*_filtered.h5")
    assert len(read_track(filtered)) == 90
    assert not glob.glob(f"{bad}/*_filtered.h5")
