"""Per-video commands over several analyses run as Ray tasks; a broken table fails alone."""

from __future__ import annotations

import glob
import json

from posecluster.cli.main import main
from posecluster.data.formats.poses import read_track
from tests.conftest import copy_analysis


def test_filtering_an_archive_of_analyses_runs_per_video_and_isolates_a_broken_table(ray_local, analysed_video, tmp_path, capsys):
    good = copy_analysis(analysed_video[1], tmp_path / "poses" / "day1")
    bad = copy_analysis(analysed_video[1], tmp_path / "poses" / "day2")
    (broken,) = [t for t in glob.glob(f"{bad}/*.h5") if not t.endswith("_filtered.h5")]
    with open(broken, "wb") as handle:
        handle.write(b"this is not an HDF5 file")
    # As an older posecluster's _meta.json (no table sha256): the table itself must be found unreadable.
    meta_file = broken[: -len(".h5")] + "_meta.json"
    with open(meta_file) as handle:
        meta = json.load(handle)
    meta.pop("table_sha256")
    with open(meta_file, "w") as handle:
        json.dump(meta, handle)
    assert main(["filter", str(tmp_path / "poses"), "--method", "spline"]) == 1
    out = capsys.readouterr().out
    assert f"FAILED {broken}" in out and "not a readable pose table" in out
    (filtered,) = glob.glob(f"{good}/*_filtered.h5")
    assert len(read_track(filtered)) == 90
    assert not glob.glob(f"{bad}/*_filtered.h5")
