"""DeepLabCut label tables: lossless round-trip on the real openfield project, clear errors on bad tables."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest

from posecluster.data.formats import dlc
from posecluster.data.project import read_project
from posecluster.errors import InputError

TABLE = "labeled-data/m4s1/CollectedData_Pranav"


def test_openfield_h5_and_csv_round_trip_losslessly(openfield, storage_root):
    project = read_project(openfield)
    dlc.write_tables(project.labels, storage_root)
    from posecluster import storage

    original = pd.read_hdf(f"{openfield}/{TABLE}.h5")
    with storage.local_copy(storage.join(storage_root, f"{TABLE}.h5")) as path:
        written = pd.read_hdf(path)
    pd.testing.assert_frame_equal(original, written)
    csv_original = open(f"{openfield}/{TABLE}.csv").read()
    csv_written = storage.read_bytes(storage.join(storage_root, f"{TABLE}.csv")).decode()
    assert csv_written == csv_original


def test_csv_and_h5_give_the_same_labels(openfield):
    h5 = dlc.table_to_dataset(dlc.read_table(f"{openfield}/{TABLE}.h5"), "h5", openfield, ["snout", "leftear", "rightear", "tailbase"])
    csv = dlc.table_to_dataset(dlc.read_table(f"{openfield}/{TABLE}.csv"), "csv", openfield, ["snout", "leftear", "rightear", "tailbase"])
    assert h5.images == csv.images
    np.testing.assert_array_equal(h5.keypoints, csv.keypoints)


def _copy_project(openfield, tmp_path):
    target = tmp_path / "project"
    shutil.copytree(openfield, target, ignore=shutil.ignore_patterns("videos"))
    (target / f"{TABLE}.h5").unlink()  # edit the CSV only; the reader falls back to it
    return target


def test_empty_csv_cells_are_missing_labels_not_dropped_frames(openfield, tmp_path):
    target = _copy_project(openfield, tmp_path)
    lines = (target / f"{TABLE}.csv").read_text().splitlines()
    cells = lines[4].split(",")  # three header lines, then img0000, img0001, ...
    cells[1] = cells[2] = ""  # snout x, y of the second image
    lines[4] = ",".join(cells)
    (target / f"{TABLE}.csv").write_text("\n".join(lines) + "\n")
    labels = read_project(str(target)).labels
    assert len(labels) == 116
    assert np.isnan(labels.keypoints[1, 0]).all() and np.isfinite(labels.keypoints[1, 1:]).all()


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda lines: lines.__setitem__(1, lines[1].replace("tailbase", "tail")), r"unknown body part.*'tail'"),
        (lambda lines: lines.pop(2), "header levels"),
        (lambda lines: lines.__setitem__(5, lines[5].replace(lines[5].split(",")[3], "abc", 1)), r"row labeled-data/m4s1/img0002.png.*not a number"),
    ],
    ids=["unknown-bodypart", "missing-coords-level", "non-numeric-value"],
)
def test_malformed_tables_name_the_file_and_row(openfield, tmp_path, edit, message):
    target = _copy_project(openfield, tmp_path)
    path = target / f"{TABLE}.csv"
    lines = path.read_text().splitlines()
    edit(lines)
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(InputError, match=message) as info:
        read_project(str(target))
    assert "CollectedData_Pranav.csv" in str(info.value)


def test_missing_image_names_table_and_row(openfield, tmp_path):
    target = _copy_project(openfield, tmp_path)
    (target / "labeled-data/m4s1/img0007.png").unlink()
    with pytest.raises(InputError, match=r"CollectedData_Pranav.csv, row labeled-data/m4s1/img0007.png: image missing"):
        read_project(str(target))


def _edit_cells(target, edits: dict[tuple[int, int], str]) -> None:
    path = target / f"{TABLE}.csv"
    lines = path.read_text().splitlines()
    for (line, column), value in edits.items():
        cells = lines[line].split(",")
        cells[column] = value
        lines[line] = ",".join(cells)
    path.write_text("\n".join(lines) + "\n")


def test_labels_outside_the_pixel_extent_are_dropped_with_a_warning_naming_image_and_part(openfield, tmp_path,
                                                                                          caplog):
    target = _copy_project(openfield, tmp_path)
    # 640x480 images span [-0.5, 639.5] x [-0.5, 479.5] in DLC pixel coordinates.
    _edit_cells(target, {(3, 1): "700.5", (4, 3): "639.6", (5, 1): "-0.3", (6, 4): "479.5"})
    with caplog.at_level("WARNING"):
        labels = read_project(str(target)).labels
    assert np.isnan(labels.keypoints[0, 0]).all()  # img0000 snout: far outside
    assert np.isnan(labels.keypoints[1, 1]).all()  # img0001 leftear: a hair past the right edge
    assert labels.keypoints[2, 0, 0] == -0.3  # img0002 snout: inside the first pixel
    assert labels.keypoints[3, 1, 1] == 479.5  # img0003 leftear: on the last pixel's edge
    warned = caplog.text
    assert "img0000.png" in warned and "snout" in warned and "img0001.png" in warned and "leftear" in warned
    assert "img0002.png" not in warned and "img0003.png" not in warned


def test_duplicated_image_rows_are_refused_with_the_rows_named(openfield, tmp_path):
    target = _copy_project(openfield, tmp_path)
    path = target / f"{TABLE}.csv"
    lines = path.read_text().splitlines()
    lines.append(lines[5])  # img0002 labeled a second time at the end
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(InputError, match=r"CollectedData_Pranav.csv: 1 image\(s\) labeled more than once: "
                                         r"labeled-data/m4s1/img0002.png \(rows 3, 117\)"):
        read_project(str(target))


def test_tuple_indexed_tables_are_written_back_in_their_own_style(openfield, tmp_path):
    frame = dlc.read_table(f"{openfield}/{TABLE}.h5")
    frame.index = pd.MultiIndex.from_tuples([tuple(p.split("/")) for p in frame.index])
    labels = dlc.table_to_dataset(frame, "t.h5", str(tmp_path), ["snout", "leftear", "rightear", "tailbase"])
    assert labels.images[0] == "labeled-data/m4s1/img0000.png"
    dlc.write_tables(labels)
    again = pd.read_hdf(tmp_path / f"{TABLE}.h5")
    pd.testing.assert_frame_equal(frame, again)
    reread = dlc.read_table(str(tmp_path / f"{TABLE}.csv"))
    assert reread.index.nlevels == 3


@pytest.mark.parametrize("style", ["path", "tuple"])
@pytest.mark.parametrize("animals", [False, True])
def test_a_csv_whose_first_frame_is_not_labeled_yet_keeps_that_row(tmp_path, style, animals):
    """pandas reads a header-following row with no values as the index's names; an empty CollectedData
    (frames extracted, none labeled) starts with such rows, and none may be lost."""
    from posecluster.data.formats import madlc

    images = ["labeled-data/v/img0.png", "labeled-data/v/img1.png", "labeled-data/v/img2.png"]
    if animals:
        columns = pd.MultiIndex.from_tuples([("s", a, "nose", c) for a in ("m1", "m2") for c in "xy"],
                                            names=["scorer", "individuals", "bodyparts", "coords"])
    else:
        columns = pd.MultiIndex.from_product([["s"], ["nose", "tail"], ["x", "y"]], names=dlc.LEVELS)
    values = np.full((3, 4), np.nan)
    values[2] = [1.0, 2.0, 3.0, 4.0]
    index = pd.MultiIndex.from_tuples([tuple(i.split("/")) for i in images]) if style == "tuple" else pd.Index(images)
    path = tmp_path / "CollectedData_s.csv"
    pd.DataFrame(values, index=index, columns=columns).to_csv(path)  # as DeepLabCut writes it
    table = madlc.read_table(str(path)) if animals else dlc.read_table(str(path))
    assert [dlc.row_path(row) for row in table.index] == images
    np.testing.assert_array_equal(table.to_numpy(dtype=float), values)
