"""The refine loop's tools on multi-animal (tracked `_el`) tables from the command line: filter, label-video,
plot and outliers, on a tiny rendered maDLC project and tables built here (so the truth of every value is
known without a model): what DeepLabCut 3 does with a multi-animal project's tables."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil

import av
import numpy as np
import pandas as pd
import pytest
from matplotlib import colormaps
from PIL import Image
from scipy.signal import medfilt

from posecluster import api, storage
from posecluster.cli.main import main
from posecluster.data.formats import madlc
from posecluster.data.multianimal import AnimalTracks
from posecluster.data.project import read_project
from posecluster.data.synthetic_multianimal import BODYPARTS, MultiAnimalScene, write_project
from posecluster.data.video import DecodeReport, probe, read_frames
from posecluster.infer.naming import output_base, tracked_base

SCORER = "DLC_resnet_18_syntheticJan1shuffle1_posecluster"
FRAMES = 24
SIDE = 64
INDIVIDUALS = ["animal1", "animal2", "animal3"]


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A rendered 3-animal project at 64x64 (2 labeled frames) with a 24-frame video."""
    root = tmp_path_factory.mktemp("ma-tools")
    return write_project(str(root / "project"), labeled_frames=2, video_frames=FRAMES,
                         scene=MultiAnimalScene(width=SIDE, height=SIDE))


def analysed(project, folder, poses: np.ndarray, unique: np.ndarray, model: str = "") -> str:
    """A tracked table of `poses` (frames, 3, 4, 3) and `unique` (frames, 1, 3) where `posecluster analyze`
    puts it, with the record beside it that the tools find it by; returns the table's URI."""
    video = project.videos[0].uri
    base = tracked_base(output_base(video, str(folder), SCORER))
    madlc.write_tracks(AnimalTracks(SCORER, INDIVIDUALS, list(BODYPARTS), ["landmark"], poses, unique), f"{base}.h5")
    storage.atomic_write_bytes(f"{base}_meta.json", json.dumps(
        {"video": video, "model": {"uri": model or str(folder / "no-model" / "model.pt")}}).encode())
    return f"{base}.h5"


def grid_poses(likelihood: float = 0.9) -> tuple[np.ndarray, np.ndarray]:
    """Every animal on its own row (y = 12, 30, 48), its parts 14 px apart; the landmark at (30, 58)."""
    poses = np.zeros((FRAMES, 3, 4, 3))
    for i in range(3):
        for k in range(4):
            poses[:, i, k] = [8 + 14 * k, 12 + 18 * i, likelihood]
    unique = np.tile([30.0, 58.0, likelihood], (FRAMES, 1, 1))
    return poses, unique


def individual_colours(count: int) -> np.ndarray:
    """DeepLabCut's color_by="individual": the colormap sampled evenly, one colour per individual and the
    last for the unique parts ("single")."""
    return np.round(np.asarray(colormaps["rainbow"](np.linspace(0, 1, count)))[:, :3] * 255)


def decode(uri: str) -> list[np.ndarray]:
    with av.open(uri) as container:
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]


def test_filter_smooths_each_individuals_columns_as_a_median_filter_and_records_its_source(project, tmp_path,
                                                                                             capsys):
    truth = project.videos[0].truth  # animal1 leaves the frame: NaN stretches in its columns
    rng = np.random.default_rng(1)
    poses = truth.poses.copy()
    poses[..., :2] += rng.normal(0, 2.0, poses[..., :2].shape)
    poses[..., 2] = np.where(np.isnan(poses[..., 0]), np.nan, rng.uniform(0.5, 1.0, poses.shape[:3]))
    unique = truth.unique_poses + np.concatenate([rng.normal(0, 2.0, (FRAMES, 1, 2)), np.zeros((FRAMES, 1, 1))], -1)
    table = analysed(project, tmp_path / "poses", poses, unique)
    assert main(["filter", str(tmp_path / "poses"), "--format", "csv", "--window", "5"]) == 0
    filtered = table[: -len(".h5")] + "_filtered.h5"
    assert filtered.endswith("_el_filtered.h5") and f"-> {filtered}" in capsys.readouterr().out

    raw, out = pd.read_hdf(table, "df_with_missing"), pd.read_hdf(filtered, "df_with_missing")
    assert list(out.columns.names) == ["scorer", "individuals", "bodyparts", "coords"]
    assert out.columns.equals(raw.columns) and out.index.equals(raw.index)
    compared = changed = 0
    for column in raw.columns:
        series, got = raw[column].to_numpy(), out[column].to_numpy()
        if column[-1] == "likelihood":
            np.testing.assert_array_equal(got, series)
            continue
        assert np.isnan(got[np.isnan(series)]).all()  # absent stays absent
        # Rows whose whole 5-frame window is inside the table and present: scipy's medfilt is the oracle.
        whole = np.array([2 <= i < FRAMES - 2 and np.isfinite(series[i - 2: i + 3]).all() for i in range(FRAMES)])
        np.testing.assert_allclose(got[whole], medfilt(series, 5)[whole], rtol=0, atol=1e-9, err_msg=str(column))
        compared += int(whole.sum())
        changed += int((np.abs(got - series)[whole] > 0.1).sum())
    assert compared > 300 and changed > compared / 2
    csv = pd.read_csv(filtered[: -len(".h5")] + ".csv", header=[0, 1, 2, 3], index_col=0)
    np.testing.assert_allclose(csv.to_numpy(), out.to_numpy(), rtol=1e-12)
    record = json.loads(storage.read_bytes(table[: -len(".h5")] + "_filtered_source.json"))
    with open(table, "rb") as handle:
        assert record["table"] == os.path.basename(table)
        assert record["table_sha256"] == hashlib.sha256(handle.read()).hexdigest()
    assert record["outputs"] == sorted([os.path.basename(filtered), os.path.basename(filtered)[:-3] + ".csv"])
    # A tracked table has no parquet form (DeepLabCut's are .h5 and .csv): refused by name, nothing written.
    assert main(["filter", str(tmp_path / "poses"), "--format", "parquet"]) == 1
    assert "not parquet" in capsys.readouterr().out and not os.path.exists(filtered[:-3] + ".parquet")


def test_label_video_colours_each_individual_and_the_filtered_table_moves_the_markers(project, tmp_path):
    poses, unique = grid_poses()
    poses[:, 1, 2, 2] = 0.1  # animal2's body: below the p-cutoff, not drawn
    poses[12, 0, 0, 1] += 8.0  # animal1's nose jumps for one frame: the median filter puts it back
    analysed(project, tmp_path / "poses", poses, unique)
    out = tmp_path / "labeled"
    assert main(["label-video", str(tmp_path / "poses"), "--out", str(out), "--pcutoff", "0.5", "--radius", "4"]) == 0
    (labeled,) = [p for p in storage.list_files(str(out)) if p.endswith("_el_labeled.mp4")]
    frames = decode(labeled)
    original = dict(read_frames(probe(project.videos[0].uri), 0, FRAMES, DecodeReport()))
    assert len(frames) == FRAMES and frames[0].shape == (SIDE, SIDE, 3)
    colours = individual_colours(4)

    def patch(image, x, y):
        return image[y - 1: y + 2, x - 1: x + 2].reshape(-1, 3).astype(float).mean(axis=0)

    checked = {"drawn": 0, "hidden": 0}
    for f in range(FRAMES):
        points = [(i, poses[f, i, k]) for i in range(3) for k in range(4)] + [(3, unique[f, 0])]
        for owner, (x, y, likelihood) in points:
            x, y = int(round(x)), int(round(y))
            got, before = patch(frames[f], x, y), patch(original[f], x, y)
            if likelihood < 0.5:
                assert np.abs(got - before).mean() < 20, (f, x, y, got, before)
                checked["hidden"] += 1
            elif np.abs(before - colours[owner]).mean() > 60:  # a marker on its own colour cannot be told
                assert np.abs(got - colours[owner]).mean() < 40, (f, owner, x, y, got, colours[owner])
                checked["drawn"] += 1
    assert checked["drawn"] > 150 and checked["hidden"] == FRAMES

    assert main(["filter", str(tmp_path / "poses")]) == 0
    assert main(["label-video", str(tmp_path / "poses"), "--out", str(out), "--pcutoff", "0.5", "--radius", "4",
                 "--filtered"]) == 0
    (filtered,) = [p for p in storage.list_files(str(out)) if p.endswith("_el_filtered_labeled.mp4")]
    frame = decode(filtered)[12]
    at_track, at_jump = patch(frame, 8, 12), patch(frame, 8, 20)
    assert np.abs(at_track - colours[0]).mean() < 40 and np.abs(at_jump - colours[0]).mean() > 60
    assert np.abs(patch(frames[12], 8, 20) - colours[0]).mean() < 40  # the raw table's video has the jump


def test_label_video_draws_the_models_skeleton_within_each_animal_only(project, tmp_path):
    from tests.cluster.test_archive_multianimal import untrained_model

    model, _ = untrained_model(str(tmp_path), MultiAnimalScene(width=SIDE, height=SIDE))  # its project's skeleton
    poses, unique = grid_poses()
    analysed(project, tmp_path / "poses", poses, unique, model)
    videos = {}
    for name, extra in (("bones", ["--skeleton"]), ("plain", [])):
        assert main(["label-video", str(tmp_path / "poses"), "--out", str(tmp_path / name), "--radius", "4",
                     *extra]) == 0
        (videos[name],) = [np.asarray(decode(p), float) for p in storage.list_files(str(tmp_path / name), (".mp4",))]
    difference = np.abs(videos["bones"] - videos["plain"]).mean(axis=-1).mean(axis=0)  # (y, x) over frames
    for y in (12, 30, 48):  # nose-head, head-body, body-tailbase of each animal: white bones
        assert all(difference[y, x] > 25 for x in (15, 29, 43)), difference[y - 1: y + 2, 13:46].round()
    for x in (8, 22, 36, 50):  # between two animals' parts: nothing
        assert difference[21, x] < 15 and difference[39, x] < 15, (difference[21], difference[39])


def test_the_web_apps_frame_view_draws_a_tracked_table_in_its_individuals_colours(project, tmp_path):
    poses, unique = grid_poses()
    table = analysed(project, tmp_path / "poses", poses, unique)
    png = api.pose_frame_image(table, project.videos[0].uri, 5, pcutoff=0.5)
    with Image.open(io.BytesIO(png)) as image:
        drawn = np.asarray(image.convert("RGB"))
    colours = individual_colours(4)
    for i in range(3):
        for k in range(4):
            np.testing.assert_array_equal(drawn[12 + 18 * i, 8 + 14 * k], colours[i])  # a marker's centre
    np.testing.assert_array_equal(drawn[58, 30], colours[3])
    with Image.open(io.BytesIO(api.trajectory_image(table, 0.5, "arena0"))) as image:
        assert image.format == "PNG" and image.width > 300


def test_plot_writes_deeplabcuts_four_plots_per_individual(project, tmp_path):
    truth = project.videos[0].truth
    table = analysed(project, tmp_path / "poses", truth.poses, truth.unique_poses)
    assert main(["plot", table, "--out", str(tmp_path / "plots"), "--pcutoff", "0.5"]) == 0
    folder = storage.join(str(tmp_path / "plots"), "plot-poses", os.path.dirname(project.videos[0].uri).lstrip("/"),
                          "arena0")
    # DeepLabCut's plot_trajectories names a multi-animal table's plots <plot><individual>.png
    expected = {f"{plot}{animal}.png" for plot in ("trajectory", "plot", "plot-likelihood", "hist")
                for animal in [*INDIVIDUALS, "single"]}
    # ... and beside them posecluster's record of the table they were drawn from
    assert {os.path.basename(p) for p in storage.list_files(folder)} == expected | {"_source.json"}
    assert json.loads(storage.read_bytes(storage.join(folder, "_source.json")))["table"] == os.path.basename(table)
    pictures = {}
    for animal in INDIVIDUALS:
        with Image.open(io.BytesIO(storage.read_bytes(storage.join(folder, f"trajectory{animal}.png")))) as image:
            assert image.format == "PNG" and image.width > 300
            pictures[animal] = np.asarray(image.convert("L"))
    assert len({p.tobytes() for p in pictures.values()}) == 3  # each shows its own animal


def test_outliers_put_the_frames_where_an_animal_jumped_or_was_unsure_into_the_madlc_project_and_merge_takes_them(
        project, tmp_path, capsys):
    truth = project.videos[0].truth
    poses = truth.poses.copy()
    poses[..., 2] = np.where(np.isnan(poses[..., 0]), np.nan, 0.9)
    poses[9, 1, 0, :2] += 15.0  # animal2's nose jumps away at frame 9 and back at frame 10
    poses[15, 2, 2, 2] = 0.005  # animal3 is unsure of its body at frame 15
    table = analysed(project, tmp_path / "poses", poses, truth.unique_poses)
    copy = tmp_path / "project"
    shutil.copytree(project.uri, copy)
    assert main(["outliers", table, "--project", str(copy), "--epsilon", "10", "--n", "10"]) == 0
    assert "3 candidate frames, 3 written for labeling: [9, 10, 15]" in capsys.readouterr().out
    folder = copy / "labeled-data" / "arena0"
    # DeepLabCut's image names: img + the frame index padded to the digits of the frame count.
    for index in (9, 10, 15):
        with Image.open(folder / f"img{index:02d}.png") as image:
            assert image.size == (SIDE, SIDE)
    collected = pd.read_hdf(folder / "CollectedData_synthetic.h5")
    assert list(collected.columns.names) == ["scorer", "individuals", "bodyparts", "coords"]
    assert set(collected.columns.get_level_values("coords")) == {"x", "y"}
    rows = {row[-1] if isinstance(row, tuple) else row.rsplit("/", 1)[-1]: row for row in collected.index}
    assert {"img09.png", "img10.png", "img15.png"} <= set(rows) and len(rows) == 5  # with the 2 labeled before
    row = collected.loc[rows["img09.png"]]
    np.testing.assert_allclose([row[("synthetic", "animal2", "nose", c)] for c in "xy"], poses[9, 1, 0, :2])
    assert np.isnan(collected.loc[rows["img15.png"]][("synthetic", "animal3", "body", "x")])  # unsure: not proposed
    np.testing.assert_allclose(collected.loc[rows["img15.png"]][("synthetic", "single", "landmark", "x")],
                               truth.unique_poses[15, 0, 0])
    machine = pd.read_hdf(folder / "machinelabels-iter0.h5")
    assert list(machine.columns.names) == ["scorer", "individuals", "bodyparts", "coords"] and len(machine) == 3
    assert machine.loc[machine.index[2]][(SCORER, "animal3", "body", "likelihood")] == 0.005
    proposals = json.loads((folder / "outliers-iter0.json").read_text())["frames"]
    assert [proposals[f"labeled-data/arena0/img{i:02d}.png"]["reasons"] for i in (9, 10, 15)] == [
        ["jump:animal2"], ["jump:animal2"], ["uncertain:animal3"]]

    # A labeler puts animal2's nose back where it was (DeepLabCut's tools write the table as pandas does);
    # merge tells the corrected frame from the two accepted as proposed, and the project reads as before.
    collected.loc[rows["img09.png"], [("synthetic", "animal2", "nose", c) for c in "xy"]] = truth.poses[9, 1, 0, :2]
    collected.to_hdf(folder / "CollectedData_synthetic.h5", key="df_with_missing", mode="w")
    assert main(["merge", str(copy)]) == 0
    assert "labeled-data/arena0: 3 proposed, 1 corrected, 2 accepted as predicted" in capsys.readouterr().out
    assert "iteration: 1" in (copy / "config.yaml").read_text()
    assert len(read_project(str(copy)).labels) == 5
