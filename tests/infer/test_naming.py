"""Where outputs go: a pure function of the video's own URI and --out, so same-named videos in different
folders never share an output, whatever job names them, in any command."""

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
    # The video's own folder, mirrored under --out.
    assert [t.removeprefix(out + "/") for t in tables] == [
        f"{str(_root).strip('/')}/videos/{day}/mouse{read_track(t).scorer}.h5" for day, t in zip(("day1", "day2"), tables)]
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


def test_a_videos_output_place_depends_on_that_video_alone():
    day1, day2 = "s3://lab/v/day1/mouse.mp4", "s3://lab/v/day2/mouse.mp4"
    # The same video gets the same place whichever other videos a job lists.
    alone = naming.output_bases([day1], "s3://out", "DLC_x")
    together = naming.output_bases([day1, day2], "s3://out", "DLC_x")
    assert alone[day1] == together[day1] == "s3://out/lab/v/day1/mouseDLC_x"
    assert together[day2] == "s3://out/lab/v/day2/mouseDLC_x"
    assert naming.output_base("/data/cam/mouse.avi", "/poses", "DLC_x") == "/poses/data/cam/mouseDLC_x"
    assert naming.output_base("file:///data/cam/mouse.avi", "/poses", "DLC_x") == "/poses/data/cam/mouseDLC_x"
    # Every character of a key is the video's (OBS's '2024-01-05 10-30-00.mkv', a folder 'cage#2').
    assert naming.output_base("s3://lab/rec/2024-01-05 10-30-00.mkv", "s3://out", "D") == (
        "s3://out/lab/rec/2024-01-05 10-30-00D")
    assert naming.output_base("s3://lab/cage#2/a.mp4", "s3://out", "D") != naming.output_base(
        "s3://lab/cage#3/a.mp4", "s3://out", "D")
    # What only grants access (a presigned query, user info) is not part of the place.
    presigned = "https://store.example/lab/v/mouse.mp4?X-Amz-Signature=abc&X-Amz-Credential=k"
    assert naming.output_base(presigned, "s3://out", "D") == "s3://out/store.example/lab/v/mouseD"
    assert naming.output_base("s3://key:secret@lab/v/mouse.mp4", "s3://out", "D") == "s3://out/lab/v/mouseD"
    # Folder names that would climb out of --out are dropped, never followed.
    assert naming.output_base("s3://lab/../../etc/mouse.mp4", "s3://out", "D") == "s3://out/lab/etc/mouseD"
    assert naming.labeled_video_uri(day1, "s3://p/x/mouseDLC_x.h5", "s3://lab-out") == (
        "s3://lab-out/lab/v/day1/mouseDLC_x_labeled.mp4")
    assert naming.plot_folder(day2, "s3://lab-out") == "s3://lab-out/plot-poses/lab/v/day2/mouse"


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


def test_a_later_analysis_never_overwrites_another_videos_table(trained_run, tmp_path):
    """mouse.mp4 analysed, then mouse.avi of the same folder in another command: the same table name,
    so the second is refused by name and the first table stays."""
    from posecluster.errors import InputError

    folder = tmp_path / "videos" / "cam"
    for suffix, frames in (("mp4", 6), ("avi", 9)):
        synthetic.render_video(str(folder / f"mouse.{suffix}"), synthetic.Scene(seed=2, **SCENE), frames)
    out = str(tmp_path / "poses")
    first = api.analyze([str(folder / "mouse.mp4")], trained_run[0], out, progress=False)
    with pytest.raises(InputError, match=r"mouse\.avi.*would overwrite the pose table of .*mouse\.mp4"):
        api.analyze([str(folder / "mouse.avi")], trained_run[0], out, progress=False)
    assert len(read_track(first[0].outputs["h5"])) == 6
    again = api.analyze([str(folder / "mouse.mp4")], trained_run[0], out, progress=False)  # its own: rewritten
    assert again[0].outputs == first[0].outputs


def test_every_name_the_code_derives_from_a_base_is_in_namings_one_list():
    """Grep the package for every `<something>_<suffix>.<ext>` literal that names a file beside a table:
    each must be one of naming.DERIVED_SUFFIXES (or a multi-animal base's `_el` + one), so the limit on a
    base's length leaves room for it."""
    import pathlib
    import re

    root = pathlib.Path(naming.__file__).parents[1]
    literal = re.compile(r"[\"'](?:\{[^}\"']*\})?(_[A-Za-z_]*(?:\{k\})?\.(?:h5|csv|parquet|json|npz|mp4|pickle|\{fmt\}))[\"']")
    found = {m.group(1) for path in root.rglob("*.py") for m in literal.finditer(path.read_text())}
    found = {s.replace("{k}", "<k>") for s in found}
    found = {s.replace("{fmt}", fmt) for s in found for fmt in naming.FORMATS}
    assert {"_meta.json", "_filtered.h5", "_member<k>.h5", "_ensemble_variance.h5", "_tracklets.npz"} <= found
    listed = set(naming.DERIVED_SUFFIXES) | {naming.TRACKED_SUFFIX + s for s in naming.DERIVED_SUFFIXES}
    # DeepLabCut's `_meta.pickle` (data.formats.dlc_metadata) is named after the table without `_el` or
    # `_filtered`: shorter than what the limit leaves room for.
    assert len("_meta.pickle") < len(naming.LONGEST_DERIVED_SUFFIX)
    # `_source.json`: the plots folder's record (a whole name inside `plot-poses/<video>/`), and what a
    # labeled video's record appends to its `_labeled` name (listed whole as `_labeled_source.json`).
    assert {"_labeled_source.json", "_filtered_labeled_source.json"} <= listed
    assert found - listed == {"_meta.pickle", "_source.json"}


def test_a_base_is_refused_when_its_longest_derived_name_exceeds_255_bytes():
    scorer = "DLC_resnet50_x"
    fits = "é" * ((255 - len(scorer) - len("_el_filtered_labeled_source.json")) // 2)  # two bytes a character
    place = naming.Mirrored("/out")
    base = place.base(f"/v/{fits}.mp4", scorer)
    longest = naming.storage.basename(base) + naming.LONGEST_DERIVED_SUFFIX
    assert len(longest.encode()) in (254, 255)
    with pytest.raises(naming.InputError, match=r"over a file name's limit of 255 bytes") as refused:
        naming.Destfolder("/out").base(f"/v/{fits}éé.mp4", scorer)
    assert f"{fits}éé.mp4" in str(refused.value) and "rename the video" in str(refused.value)
    # The pose table itself would fit: it is the derived names that do not.
    assert len(f"{fits}éé{scorer}.h5".encode()) < 255
