"""Same-named videos in different folders never overwrite each other's outputs, in any command."""

from __future__ import annotations

import glob

import av
import pytest

from posecluster import api
from posecluster.data import synthetic
from posecluster.data.formats.poses import read_track
from posecluster.infer import naming
from posecluster.viz.labeled_video import LabelOptions

SCENE = dict(width=96, height=80, body_length=0.4)


@pytest.fixture(scope="module")
def two_mice(trained_run, tmp_path_factory):
    """day1/mouse.mp4 (20 frames) and day2/mouse.mp4 (30 frames), analysed into one folder."""
    root = tmp_path_factory.mktemp("same-names")
    for day, frames in (("day1", 20), ("day2", 30)):
        synthetic.render_video(str(root / "videos" / day / "mouse.mp4"), synthetic.Scene(seed=frames, **SCENE), frames)
    out = str(root / "poses")
    api.analyze([str(root / "videos")], trained_run[0], out, progress=False)
    return root, out


def test_analyze_keeps_same_named_videos_apart(two_mice):
    _root, out = two_mice
    tables = sorted(p for p in glob.glob(f"{out}/**/*.h5", recursive=True))
    assert [t.split("/poses/")[1].split("/")[0] for t in tables] == ["day1", "day2"]
    # Each table has its own video's frame count: neither replaced the other.
    assert sorted(len(read_track(t)) for t in tables) == [20, 30]


def test_label_video_and_plot_keep_same_named_videos_apart(ray_local, two_mice, tmp_path):  # two videos: Ray tasks
    _root, out = two_mice
    outcomes = api.label_videos([out], str(tmp_path / "labeled"), LabelOptions(), pcutoff=0.1)
    assert not any(o.error for o in outcomes)
    labeled = sorted(glob.glob(str(tmp_path / "labeled" / "**" / "*_labeled.mp4"), recursive=True))
    assert len(labeled) == 2
    counts = []
    for uri in labeled:
        with av.open(uri) as container:
            counts.append(sum(1 for _ in container.decode(video=0)))
    assert sorted(counts) == [20, 30]

    plotted = api.plot_poses([out], str(tmp_path / "plots"), pcutoff=0.1)
    assert not any(o.error for o in plotted)
    folders = {o.outputs["trajectory.png"].rsplit("/", 2)[0] for o in plotted}
    assert len(folders) == 2


def test_the_archive_names_outputs_by_the_same_rule():
    from posecluster.cluster import schedule

    videos = ["s3://lab/v/day1/mouse.mp4", "s3://lab/v/day2/mouse.mp4"]
    assert schedule.relative_names is naming.relative_names
    bases = naming.output_bases(videos, "s3://out", "DLC_x")
    assert bases == {videos[0]: "s3://out/day1/mouseDLC_x", videos[1]: "s3://out/day2/mouseDLC_x"}


def test_videos_that_would_share_a_table_are_refused_before_any_work(trained_run, tmp_path):
    """day1/mouse.mp4 and day1/mouse.avi map to one `mouse<scorer>.h5`: analyze names both, writes nothing."""
    from posecluster.errors import InputError

    folder = tmp_path / "videos" / "day1"
    for suffix in ("mp4", "avi"):
        synthetic.render_video(str(folder / f"mouse.{suffix}"), synthetic.Scene(seed=1, **SCENE), 4)
    out = tmp_path / "poses"
    with pytest.raises(InputError, match=r"mouse\.(avi|mp4).*same pose table as .*mouse\.(avi|mp4)"):
        api.analyze([str(tmp_path / "videos")], trained_run[0], str(out), progress=False)
    assert not out.exists() or not list(out.rglob("*.h5"))
    bases = {"s3://v/a.mp4": "s3://o/aX", "s3://v/a.avi": "s3://o/aX", "s3://v/b.mp4": "s3://o/bX"}
    assert naming.collisions(bases) == {"s3://v/a.avi": "s3://v/a.mp4"}
