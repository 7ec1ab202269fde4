"""maDLC tables against independent oracles: a maDLC CSV from sleap-io's public test data (as DeepLabCut
wrote it), DeepLabCut's documented layout (4 header levels, unique body parts under "single", HDF5 key
df_with_missing, table format for pose tables), and DeepLabCut 3.0.2's own reference .h5 attributes."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from posecluster.data.formats import dlc, madlc
from posecluster.data.multianimal import AnimalTracks
from posecluster.data.project import read_project, write_project
from posecluster.errors import InputError
from tests.data.test_hdf5_compat import LABELS_REF, POSES_REF, _assert_like_reference, _layout, reference  # noqa: F401

SLEAP = Path(__file__).resolve().parent / "fixtures" / "sleap_io_madlc"
SLEAP_CSV = SLEAP / "labeled-data" / "PrL-3_09072020" / "CollectedData_JohnDoe.csv"
FOLDER = "labeled-data/PrL-3_09072020"


@pytest.fixture()
def sleap_project(tmp_path) -> str:
    root = tmp_path / "project"
    shutil.copytree(SLEAP, root)
    return str(root)


def test_sleap_io_madlc_project_reads_individuals_parts_and_unique_parts(sleap_project):
    project = read_project(sleap_project, check_images=False)  # the images are not in the fixture
    config, labels = project.config, project.labels
    assert config.multianimal and config.identity is False
    assert config.individuals == [f"pup{i}" for i in range(1, 8)]
    assert config.bodyparts == ["pup_snout", "pup_neck", "pup_body", "pup_tailbase"]
    assert config.unique_bodyparts[:2] == ["nest", "moth_nose"] and len(config.unique_bodyparts) == 8
    assert labels.images[0] == f"{FOLDER}/img00424.png"
    assert labels.keypoints.shape == (4, 7, 4, 2) and labels.unique_keypoints.shape == (4, 8, 2)
    # Values as the CSV has them (row img00424: pup1 labeled, the other pups not; nest under "single").
    np.testing.assert_allclose(labels.keypoints[0, 0, 0], [308.9066667, 216.6824645])
    np.testing.assert_allclose(labels.keypoints[0, 0, 3], [308.9066667, 151.8483412])
    np.testing.assert_allclose(labels.unique_keypoints[0, 0], [851.6266667, 214.9763033])
    np.testing.assert_allclose(labels.unique_keypoints[2, 7], [967.68, 506.7298578])
    assert labels.animals_present().sum(axis=1).tolist() == [1, 2, 3, 1]
    np.testing.assert_allclose(labels.keypoints[2, 1, 0], [896, 162.0853081])
    assert np.isnan(labels.keypoints[3, 0, 0]).all() and not np.isnan(labels.keypoints[3, 0, 1]).any()
    assert labels.index_styles == {FOLDER: "tuple"}


def test_written_label_tables_keep_deeplabcuts_header_and_index(sleap_project, tmp_path):
    project = read_project(sleap_project, check_images=False)
    out = str(tmp_path / "written")
    write_project(project, out)
    written = Path(out) / FOLDER / "CollectedData_JohnDoe.csv"
    original = SLEAP_CSV.read_text().splitlines()
    ours = written.read_text().splitlines()
    assert ours[:4] == original[:4]  # scorer/individuals/bodyparts/coords rows, byte for byte
    assert [line.split(",")[:3] for line in ours[4:]] == [line.split(",")[:3] for line in original[4:]]
    # Every cell DeepLabCut's pandas would read, equal (896 may be written 896.0).
    theirs = pd.read_csv(SLEAP_CSV, header=[0, 1, 2, 3], index_col=[0, 1, 2])
    pd.testing.assert_frame_equal(pd.read_csv(written, header=[0, 1, 2, 3], index_col=[0, 1, 2]), theirs)
    h5 = pd.read_hdf(Path(out) / FOLDER / "CollectedData_JohnDoe.h5", key="df_with_missing")
    assert list(h5.columns.names) == madlc.LEVELS and h5.index.nlevels == 3
    np.testing.assert_array_equal(h5.to_numpy(), theirs.to_numpy())
    assert h5.columns[-1] == ("JohnDoe", "single", "moth_tailbase", "y")


def test_label_h5_has_the_group_attributes_of_deeplabcuts_own(reference, sleap_project, tmp_path):  # noqa: F811
    project = read_project(sleap_project, check_images=False)
    write_project(project, str(tmp_path / "w"))
    ours = _layout(tmp_path / "w" / FOLDER / "CollectedData_JohnDoe.h5")
    _assert_like_reference(ours, _layout(reference / LABELS_REF), compare_nodes=False)


def test_path_indexed_rows_are_read_and_written_as_one_path_string(sleap_project, tmp_path):
    labels = read_project(sleap_project, check_images=False).labels
    labels.index_styles = {FOLDER: "path"}
    frame = madlc.labels_to_table(labels, list(range(len(labels))), "path")
    csv = tmp_path / "CollectedData_JohnDoe.csv"
    csv.write_text(frame.to_csv())
    assert csv.read_text().splitlines()[4].startswith(f"{FOLDER}/img00424.png,308.9066667,")
    config = read_project(sleap_project, check_images=False).config
    back = madlc.table_to_labels(madlc.read_table(str(csv)), str(csv), sleap_project, config)
    assert back.images == labels.images and back.index_styles == {FOLDER: "path"}
    np.testing.assert_array_equal(back.keypoints, labels.keypoints)


def _edit_csv(path: Path, line: int, old: str, new: str) -> None:
    lines = path.read_text().splitlines()
    assert old in lines[line]
    lines[line] = lines[line].replace(old, new, 1)
    path.write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize("line, old, new, message", [
    (1, "pup7", "pup8", "unknown individual 'pup8'"),
    (2, "pup_snout", "pup_ear", "unknown body part 'pup_ear' under 'pup1'"),
    (1, "single", "pup7", "unknown body part 'nest' under 'pup7'"),
    (6, "287.1802514", "12.5px", "row labeled-data/PrL-3_09072020/img08248.png: pup1.pup_snout.x is not a number"),
])
def test_bad_label_tables_name_the_file_and_what_is_wrong(sleap_project, line, old, new, message):
    table = Path(sleap_project) / FOLDER / "CollectedData_JohnDoe.csv"
    _edit_csv(table, line, old, new)
    with pytest.raises(InputError, match=message) as caught:
        read_project(sleap_project, check_images=False)
    assert str(table) in str(caught.value)


def test_a_single_animal_table_in_a_madlc_project_says_how_to_convert_it(sleap_project):
    table = Path(sleap_project) / FOLDER / "CollectedData_JohnDoe.csv"
    lines = table.read_text().splitlines()
    table.write_text("\n".join(lines[:1] + lines[2:]) + "\n")  # drop the individuals row
    with pytest.raises(InputError, match="convert2_maDLC"):
        read_project(sleap_project, check_images=False)


def _tracks(frames: int = 6) -> AnimalTracks:
    rng = np.random.default_rng(1)
    poses = rng.uniform(0, 100, size=(frames, 2, 3, 3))
    poses[2, 1] = np.nan  # animal 2 absent in frame 2
    return AnimalTracks("DLC_resnet50_testOct30shuffle1_snapshot_200", ["mouse1", "mouse2"], ["nose", "head", "tail"],
                        ["landmark"], poses, rng.uniform(0, 100, size=(frames, 1, 3)))


def test_tracked_pose_tables_have_deeplabcuts_multi_animal_layout(reference, tmp_path):  # noqa: F811
    tracks = _tracks()
    uri = str(tmp_path / "videoDLC_resnet50_testOct30shuffle1_snapshot_200_el.h5")
    madlc.write_tracks(tracks, uri)
    frame = pd.read_hdf(uri)  # as DeepLabCut's load_analyzed_data reads it: no key
    assert list(frame.columns.names) == ["scorer", "individuals", "bodyparts", "coords"]
    assert frame.columns.get_level_values("individuals").unique().tolist() == ["mouse1", "mouse2", "single"]
    assert frame.columns[0] == (tracks.scorer, "mouse1", "nose", "x") and frame.columns[2][3] == "likelihood"
    assert frame.index.tolist() == list(range(6))
    np.testing.assert_array_equal(frame[(tracks.scorer, "mouse2", "tail", "y")].to_numpy(), tracks.poses[:, 1, 2, 1])
    np.testing.assert_array_equal(frame[(tracks.scorer, "single", "landmark", "likelihood")], tracks.unique_poses[:, 0, 2])
    _assert_like_reference(_layout(uri), _layout(reference / POSES_REF))


def test_a_table_as_deeplabcuts_stitcher_writes_it_is_read_as_tracks(tmp_path):
    # DeepLabCut's stitcher: key "tracks", rows reindexed to every frame up to the last, "single" joined last.
    columns = pd.MultiIndex.from_product([["DLC_x"], ["ind1", "ind2"], ["snout", "tail"], ["x", "y", "likelihood"]],
                                         names=["scorer", "individuals", "bodyparts", "coords"])
    values = np.arange(4 * 12, dtype=float).reshape(4, 12)
    df = pd.DataFrame(values, columns=columns, index=range(1, 5)).reindex(range(5))
    path = tmp_path / "videoDLC_x_el.h5"
    df.to_hdf(path, key="tracks", format="table", mode="w")
    tracks = madlc.read_tracks(str(path))
    assert tracks.individuals == ["ind1", "ind2"] and tracks.bodyparts == ["snout", "tail"]
    assert tracks.unique_bodyparts == [] and tracks.poses.shape == (5, 2, 2, 3)
    assert not tracks.animals_present()[0].any()
    np.testing.assert_array_equal(tracks.poses[1, 1, 0], [6, 7, 8])  # ind2 snout, first row


def test_tracks_csv_has_four_header_rows_and_frame_numbers(tmp_path):
    uri = str(tmp_path / "videoDLC_el.csv")
    madlc.write_tracks(_tracks(), uri)
    lines = Path(uri).read_text().splitlines()
    assert [line.split(",")[0] for line in lines[:5]] == ["scorer", "individuals", "bodyparts", "coords", "0"]
    assert lines[3].split(",")[1:4] == ["x", "y", "likelihood"]
    back = madlc.read_tracks(uri)
    np.testing.assert_allclose(back.poses, _tracks().poses)
    np.testing.assert_allclose(back.unique_poses, _tracks().unique_poses)


def test_a_pose_table_with_text_in_a_cell_names_the_frame(tmp_path):
    uri = tmp_path / "bad_el.csv"
    madlc.write_tracks(_tracks(), str(uri))
    lines = uri.read_text().splitlines()
    cells = lines[7].split(",")
    cells[1] = "oops"
    lines[7] = ",".join(cells)
    uri.write_text("\n".join(lines) + "\n")
    with pytest.raises(InputError, match=r"row 3: mouse1\.nose\.x is not a number"):
        madlc.read_tracks(str(uri))


def test_single_animal_tables_are_still_read_by_the_single_animal_reader(tmp_path):
    with pytest.raises(InputError, match="expected 3 header levels"):
        dlc.read_table(str(SLEAP_CSV))


def test_streamed_tracks_equal_the_whole_table_with_gaps_as_nan(tmp_path):
    tracks = _tracks(8)
    expected = tracks.poses.copy()
    expected[3:5] = np.nan  # frames 3 and 4 never appended
    writer = madlc.AnimalTableWriter(tracks.scorer, tracks.individuals, tracks.bodyparts, tracks.unique_bodyparts,
                                     str(tmp_path), formats=("h5", "csv"), chunk_rows=2)
    writer.append_tracks(0, tracks.poses[:3], tracks.unique_poses[:3])
    writer.append_tracks(5, tracks.poses[5:], tracks.unique_poses[5:])
    published = writer.publish(str(tmp_path / "out" / "videoDLC_x_el"))
    writer.close()
    frame = pd.read_hdf(published["h5"])  # no key, as DeepLabCut reads it
    assert list(frame.columns.names) == madlc.LEVELS and frame.index.tolist() == list(range(8))
    np.testing.assert_array_equal(frame.drop(columns="single", level="individuals").to_numpy().reshape(8, 2, 3, 3),
                                  expected)
    csv = madlc.read_tracks(published["csv"])
    np.testing.assert_array_equal(csv.poses, expected)
    assert np.isnan(csv.unique_poses[3:5]).all() and not np.isnan(csv.unique_poses[5:]).any()
