"""extract-frames on a multi-animal (maDLC) project from the command line, as DeepLabCut's extract_frames
fills a labeled-data folder: img<index>.png per chosen frame and a CollectedData row for each in the
four-level layout. Oracles: the tables read by pandas (and the CSV by the csv module) alone, the frames
decoded by PyAV, and the chosen indices worked out here from "the middle of n equal stretches"."""

from __future__ import annotations

import csv
from pathlib import Path

import av
import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image

from posecluster.cli.main import main
from posecluster.data.synthetic_multianimal import BODYPARTS, MultiAnimalScene, render_video, write_project

SCORER = "synthetic"
FRAMES = 12
SCENE = MultiAnimalScene(width=64, height=48, animals=2)
# Every individual's body parts, then the unique landmark under DeepLabCut's "single".
COLUMNS = [(SCORER, a, p, c) for a in ("animal1", "animal2") for p in BODYPARTS for c in "xy"] + [
    (SCORER, "single", "landmark", c) for c in "xy"]
UNIFORM_3_OF_12 = [2, 6, 10]  # the middles of [0, 4), [4, 8), [8, 12)


@pytest.fixture()
def project(tmp_path):
    return write_project(str(tmp_path / "project"), labeled_frames=2, scene=SCENE, video_frames=FRAMES)


def decoded(uri: str) -> list[np.ndarray]:
    with av.open(uri) as container:
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]


def csv_rows(path) -> tuple[list[list[str]], dict[tuple, list[str]]]:
    """(the header rows, {row index cells: value cells}) of a DLC CSV with (labeled-data, video, image) rows."""
    with open(path, newline="") as fh:
        lines = list(csv.reader(fh))
    return lines[:4], {tuple(line[:3]): line[3:] for line in lines[4:]}


def check_new_rows(folder, images: list[str], video: str) -> pd.DataFrame:
    """The folder's table has the four levels and a NaN row per image, and the PNGs are the video's frames."""
    table = pd.read_hdf(folder / f"CollectedData_{SCORER}.h5")
    assert list(table.columns.names) == ["scorer", "individuals", "bodyparts", "coords"]
    assert list(table.columns) == COLUMNS
    assert isinstance(table.index, pd.MultiIndex) and table.index.nlevels == 3
    header, rows = csv_rows(folder / f"CollectedData_{SCORER}.csv")
    assert [line[0] for line in header] == ["scorer", "individuals", "bodyparts", "coords"]
    assert [tuple(header[level][3 + 2 * k] for level in range(4)) for k in range(len(COLUMNS) // 2)] == COLUMNS[::2]
    assert sorted(rows) == sorted(table.index)  # the CSV holds the same rows as the .h5
    frames = decoded(video)
    for index in UNIFORM_3_OF_12:
        key = ("labeled-data", folder.name, f"img{index:02d}.png")  # DLC pads to the digits of the frame count
        assert key in images
        assert table.loc[key].isna().all() and rows[key] == [""] * len(COLUMNS)
        with Image.open(folder / key[2]) as image:
            np.testing.assert_array_equal(np.asarray(image.convert("RGB")), frames[index])
    return table


def test_extract_frames_adds_unlabeled_rows_to_a_labeled_madlc_folder_and_keeps_its_labels(project, capsys):
    folder_uri = f"{project.uri}/labeled-data/arena0"
    before = pd.read_hdf(f"{folder_uri}/CollectedData_{SCORER}.h5")
    assert before.notna().any(axis=None) and len(before) == 2
    video = project.videos[0].uri

    assert main(["extract-frames", video, "--project", project.uri, "--n", "3", "--method", "uniform"]) == 0
    assert "3 frames [2, 6, 10] -> labeled-data/arena0 (3 new)" in capsys.readouterr().out
    folder = Path(folder_uri)
    new = [("labeled-data", "arena0", f"img{i:02d}.png") for i in UNIFORM_3_OF_12]
    table = check_new_rows(folder, new, video)
    assert sorted(table.index) == sorted([*before.index, *new])
    pd.testing.assert_frame_equal(table.loc[before.index], before)  # the labels made before, untouched

    # A rerun writes nothing new and leaves the table as it was.
    assert main(["extract-frames", video, "--project", project.uri, "--n", "3", "--method", "uniform"]) == 0
    assert "(0 new)" in capsys.readouterr().out
    pd.testing.assert_frame_equal(pd.read_hdf(folder / f"CollectedData_{SCORER}.h5"), table)


def test_extract_frames_into_a_new_madlc_folder_creates_deeplabcuts_table(project, capsys):
    video = f"{project.uri}/videos/cage2.mp4"
    render_video(video, MultiAnimalScene(width=64, height=48, animals=2, seed=4), FRAMES)

    assert main(["extract-frames", video, "--project", project.uri, "--n", "3", "--method", "uniform"]) == 0
    assert "(3 new)" in capsys.readouterr().out
    folder = Path(project.uri) / "labeled-data" / "cage2"
    new = [("labeled-data", "cage2", f"img{i:02d}.png") for i in UNIFORM_3_OF_12]
    table = check_new_rows(folder, new, video)
    assert sorted(table.index) == new
    config = yaml.safe_load((Path(project.uri) / "config.yaml").read_text())
    assert config["video_sets"][video] == {"crop": "0, 64, 0, 48"}
    assert config["multianimalproject"] is True and config["individuals"] == ["animal1", "animal2"]
