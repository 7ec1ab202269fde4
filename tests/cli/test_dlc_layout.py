"""DeepLabCut's own layout when asked, through the CLI: `analyze` without --out writes beside each video,
`--layout dlc` flat in --out (DeepLabCut's destfolder), and a clash of stems is refused by the video that
`_meta.json` names, never overwritten (the same video reached through another path is no clash); the
archive layout stays the default of --out, and DeepLabCut's own plots beside a video survive a rerun."""

from __future__ import annotations

import json
import logging
import os
import shutil

from posecluster import storage
from posecluster.cli.main import main
from posecluster.model.artifact import load_model


def two_mice(synthetic_project, tmp_path) -> tuple[str, str]:
    for day in ("day1", "day2"):
        (tmp_path / "videos" / day).mkdir(parents=True)
        shutil.copy(synthetic_project.videos[0].uri, tmp_path / "videos" / day / "mouse.mp4")
    return str(tmp_path / "videos" / "day1" / "mouse.mp4"), str(tmp_path / "videos" / "day2" / "mouse.mp4")


def test_without_out_the_table_is_beside_the_video_and_with_dlc_layout_flat_in_out(trained_run, synthetic_project,
                                                                                    tmp_path, capsys):
    day1, day2 = two_mice(synthetic_project, tmp_path)
    scorer = load_model(trained_run[0]).scorer
    assert main(["analyze", day1, day2, "--model", trained_run[0], "--quiet"]) == 0
    for video in (day1, day2):
        base = video[: -len(".mp4")] + scorer
        assert storage.exists(f"{base}.h5")
        assert json.loads(storage.read_bytes(f"{base}_meta.json"))["video"] == video

    dest = str(tmp_path / "poses")
    assert main(["analyze", day1, "--model", trained_run[0], "--out", dest, "--layout", "dlc", "--quiet"]) == 0
    assert [p[len(dest) + 1:] for p in storage.list_files(dest)] == [f"mouse{scorer}.h5", f"mouse{scorer}_meta.json"]
    written = storage.read_bytes(f"{dest}/mouse{scorer}.h5")
    # day2's mouse.mp4 has the same stem: refused, in one command and in a later one, and day1's table kept.
    capsys.readouterr()
    assert main(["analyze", day1, day2, "--model", trained_run[0], "--out", dest + "2", "--layout", "dlc",
                 "--quiet"]) == 2
    assert "would write the same pose table" in capsys.readouterr().err
    assert main(["analyze", day2, "--model", trained_run[0], "--out", dest, "--layout", "dlc", "--quiet"]) == 2
    assert f"would overwrite the pose table of {day1}" in capsys.readouterr().err
    assert storage.read_bytes(f"{dest}/mouse{scorer}.h5") == written
    # --out alone keeps the archive layout: each video's folder mirrored under it, so day1 and day2 never meet.
    mirrored = str(tmp_path / "archive")
    assert main(["analyze", day1, day2, "--model", trained_run[0], "--out", mirrored, "--quiet"]) == 0
    assert len(storage.list_files(mirrored, suffixes=(".h5",))) == 2


def test_the_same_video_through_a_symlinked_folder_is_no_clash_and_deeplabcuts_plots_survive(
        trained_run, tmp_path, capsys, caplog):
    from posecluster.data import synthetic

    scene = synthetic.Scene(width=96, height=80, seed=11, body_length=0.4)
    day1 = synthetic.render_video(str(tmp_path / "videos" / "day1" / "mouse.mp4"), scene, 16).uri  # short: cheap
    folder = os.path.dirname(day1)
    scorer = load_model(trained_run[0]).scorer
    # DeepLabCut's plot_trajectories made these beside the video: no record of posecluster's.
    dlc_plots = os.path.join(folder, "plot-poses", "mouse")
    os.makedirs(dlc_plots)
    with open(os.path.join(dlc_plots, "trajectory.png"), "wb") as handle:
        handle.write(b"\x89PNG\r\n\x1a\n drawn by DeepLabCut")
    assert main(["analyze", day1, "--model", trained_run[0], "--quiet"]) == 0
    mounted = tmp_path / "mounted"
    os.symlink(folder, mounted)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="posecluster"):
        assert main(["analyze", str(mounted / "mouse.mp4"), "--model", trained_run[0], "--quiet"]) == 0
    meta = json.loads(storage.read_bytes(os.path.join(folder, f"mouse{scorer}_meta.json")))
    assert meta["video"] == str(mounted / "mouse.mp4")
    assert os.listdir(dlc_plots) == ["trajectory.png"]
    # (named by the path this run reached it through)
    assert f"{mounted / 'plot-poses' / 'mouse'}: left in place, with no record of which table" in caplog.text
    # Another video with the same name (other frames, another size) is refused, the table kept.
    other = tmp_path / "elsewhere" / "mouse.mp4"
    synthetic.render_video(str(other), scene, 20)
    table = storage.read_bytes(os.path.join(folder, f"mouse{scorer}.h5"))
    capsys.readouterr()
    assert main(["analyze", str(other), "--model", trained_run[0], "--out", folder, "--layout", "dlc", "--quiet"]) == 2
    assert f"would overwrite the pose table of {mounted / 'mouse.mp4'}" in capsys.readouterr().err
    assert storage.read_bytes(os.path.join(folder, f"mouse{scorer}.h5")) == table
    # Nor is a different file of the same size and mtime (as `cp -p`, rsync -a or an archive restore leave
    # them) the same video: a local file is the same only as the same file.
    lookalike = tmp_path / "restored" / "mouse.mp4"
    lookalike.parent.mkdir()
    data = bytearray(storage.read_bytes(day1))
    data[len(data) // 2] ^= 0xFF
    lookalike.write_bytes(bytes(data))
    stat = os.stat(day1)
    os.utime(lookalike, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert main(["analyze", str(lookalike), "--model", trained_run[0], "--out", folder, "--layout", "dlc",
                 "--quiet"]) == 2
    assert storage.read_bytes(os.path.join(folder, f"mouse{scorer}.h5")) == table
