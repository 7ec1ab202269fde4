"""DeepLabCut's label tables (``CollectedData_<scorer>.h5/.csv``) and project config, read and written.

DLC tables have MultiIndex columns scorer/bodyparts/coords; rows are image paths, either one string per
row (``labeled-data/video/img0001.png``) or a three-level tuple index (DLC >= 2.2). Both are read and
written back in the style they came in.
"""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import yaml

from posecluster import storage
from posecluster.config import ProjectConfig
from posecluster.data.formats import hdf5
from posecluster.data.labels import LabeledDataset
from posecluster.errors import InputError

LEVELS = ["scorer", "bodyparts", "coords"]
HDF_KEY = "df_with_missing"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


def read_raw_project_config(uri: str) -> dict:
    """config.yaml as DeepLabCut wrote it: every key, nothing interpreted."""
    try:
        raw = yaml.safe_load(storage.read_bytes(uri))
    except yaml.YAMLError as exc:
        raise InputError(uri, f"not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise InputError(uri, "not a YAML mapping")
    return raw


def read_project_config(uri: str) -> ProjectConfig:
    return ProjectConfig.from_dlc(read_raw_project_config(uri), source=uri)


def write_project_config(uri: str, project: ProjectConfig) -> None:
    storage.atomic_write_bytes(uri, yaml.safe_dump(project.to_dlc(), sort_keys=False).encode())


def update_project_config(uri: str, changes: dict) -> dict:
    """Change top-level keys of a DLC config.yaml in place, keeping every other key (video_sets,
    project_path, crop settings...) exactly as the user's DeepLabCut wrote it. Returns the new mapping."""
    raw = read_raw_project_config(uri)
    raw.update(changes)
    storage.atomic_write_bytes(uri, yaml.safe_dump(raw, sort_keys=False).encode())
    return raw


def read_table(uri: str) -> pd.DataFrame:
    """Read a DLC table (.h5 or .csv) as pandas, with the header checked."""
    if uri.lower().endswith(".h5"):
        with storage.local_copy(uri) as path:
            frame = hdf5.read_frame(path, uri)
    else:
        frame = read_csv_table(uri)
    if not isinstance(frame.columns, pd.MultiIndex) or frame.columns.nlevels != 3:
        raise InputError(uri, f"expected 3 header levels {LEVELS}, found {frame.columns.nlevels}")
    if list(frame.columns.names) != LEVELS:
        raise InputError(uri, f"expected header levels {LEVELS}, found {list(frame.columns.names)}")
    return frame


# First cells of the header rows DeepLabCut writes (single-animal tables lack "individuals").
HEADER_NAMES = ("scorer", "individuals", "bodyparts", "coords")


def read_csv_table(uri: str) -> pd.DataFrame:
    """A DLC CSV table: its header rows (3 single-animal, 4 multi-animal, counted by their first cells) and
    its row index, either one path column or three (labeled-data, video, image) columns."""
    text = storage.read_bytes(uri).decode("utf-8-sig")
    lines = text.splitlines()
    first = lines[0].split(",") if text else []
    if not first or first[0] != "scorer":
        raise InputError(uri, "expected a DLC header whose first row starts with 'scorer'", row=1)
    header_rows = 1
    while header_rows < min(len(lines), len(HEADER_NAMES)) and lines[header_rows].split(",")[0] in HEADER_NAMES:
        header_rows += 1
    # A tuple index leaves empty cells after 'scorer' in the header rows.
    index_cols = 1
    while index_cols < len(first) and first[index_cols] == "":
        index_cols += 1
    try:
        frame = pd.read_csv(io.StringIO(text), header=list(range(header_rows)), index_col=list(range(index_cols)))
    except (ValueError, pd.errors.ParserError) as exc:
        raise InputError(uri, f"cannot parse CSV table: {exc}") from None
    names = [None if name is None else str(name) for name in frame.index.names]
    if None not in names and row_path(tuple(names)).lower().endswith(IMAGE_SUFFIXES):
        # pandas reads a first row with no values (a frame not labeled yet) as the index's names: put it back.
        index = pd.MultiIndex.from_tuples([tuple(names)]) if index_cols > 1 else pd.Index(names)
        frame = pd.concat([pd.DataFrame(np.nan, index=index, columns=frame.columns), frame])
    if index_cols > 1:
        frame.index.names = [None] * index_cols
    else:
        frame.index.name = None
    return frame


def row_path(label) -> str:
    parts = label if isinstance(label, tuple) else (label,)
    return "/".join(str(p).replace("\\", "/") for p in parts)


def table_to_dataset(frame: pd.DataFrame, uri: str, root: str, bodyparts: list[str]) -> LabeledDataset:
    """Validate a DLC table against the project's body parts and turn it into the labels model."""
    scorers = frame.columns.get_level_values("scorer").unique().tolist()
    if len(scorers) != 1:
        raise InputError(uri, f"expected one scorer, found {scorers}")
    table_parts = frame.columns.get_level_values("bodyparts").unique().tolist()
    unknown = [b for b in table_parts if b not in bodyparts]
    if unknown:
        raise InputError(uri, f"unknown body part(s) {unknown}; config.yaml lists {bodyparts}")
    coords = set(frame.columns.get_level_values("coords"))
    if not {"x", "y"} <= coords:
        raise InputError(uri, f"coords must include x and y, found {sorted(coords)}")

    images = [row_path(label) for label in frame.index]
    keypoints = np.full((len(frame), len(bodyparts), 2), np.nan)
    for k, part in enumerate(bodyparts):
        if part not in table_parts:
            continue  # a body part added to config.yaml after labeling: unlabeled everywhere
        for c, coord in enumerate(("x", "y")):
            keypoints[:, k, c] = numeric_column(frame[(scorers[0], part, coord)], uri, images, f"{part}.{coord}")
    # A label that is only half present (x without y) is unusable: treat both as missing.
    keypoints[np.isnan(keypoints).any(axis=2)] = np.nan
    style = "tuple" if isinstance(frame.index, pd.MultiIndex) else "path"
    folders = {img.rsplit("/", 1)[0] for img in images}
    return LabeledDataset(
        root=root,
        scorer=str(scorers[0]),
        bodyparts=list(bodyparts),
        images=images,
        keypoints=keypoints,
        index_styles={f: style for f in folders},
    )


def numeric_column(column: pd.Series, uri: str, images: list[str], name: str) -> np.ndarray:
    """A label column as floats (blank = NaN); text that is not a number is an InputError naming the row."""
    values = pd.to_numeric(column, errors="coerce")
    bad = values.isna() & column.notna() & (column.astype(str).str.strip() != "")
    if bad.any():
        row = images[int(np.flatnonzero(bad.to_numpy())[0])]
        raise InputError(uri, f"{name} is not a number: {column[bad].iloc[0]!r}", row=row)
    return values.to_numpy(dtype=np.float64)


def index_for(images: list[str], style: str) -> pd.Index:
    """Rows as DLC writes them: one path string each, or (labeled-data, video, image) tuples."""
    if style == "tuple":
        return pd.MultiIndex.from_tuples([tuple(img.split("/")) for img in images])
    return pd.Index(images)


def dataset_to_table(dataset: LabeledDataset, rows: list[int], style: str = "path") -> pd.DataFrame:
    columns = pd.MultiIndex.from_product(
        [[dataset.scorer], dataset.bodyparts, ["x", "y"]], names=LEVELS
    )
    values = dataset.keypoints[rows].reshape(len(rows), -1)
    index = index_for([dataset.images[i] for i in rows], style)
    return pd.DataFrame(values, index=index, columns=columns)


def table_uri(root: str, folder: str, scorer: str, suffix: str) -> str:
    return storage.join(root, folder, f"CollectedData_{scorer}.{suffix}")


def write_tables(dataset: LabeledDataset, root: str | None = None) -> list[str]:
    """Write one CollectedData .h5 + .csv per labeled-data folder; returns the URIs written."""
    root = root or dataset.root
    written = []
    for folder in dataset.folders():
        rows = dataset.rows_in(folder)
        frame = dataset_to_table(dataset, rows, dataset.index_styles.get(folder, "path"))
        h5 = table_uri(root, folder, dataset.scorer, "h5")
        write_hdf(frame, h5)
        csv = table_uri(root, folder, dataset.scorer, "csv")
        storage.atomic_write_bytes(csv, frame.to_csv().encode())
        written += [h5, csv]
    return written


def write_hdf(frame: pd.DataFrame, uri: str, layout: str = "fixed") -> str:
    """Write a DataFrame under DLC's key df_with_missing, appearing atomically, readable by pandas 2 and 3;
    returns the written file's sha256 (hashed locally, before upload).

    DeepLabCut writes label tables (CollectedData, machinelabels) in pandas' default fixed format and
    pose tables (analysis, _filtered) in table format; callers say which.
    """
    with storage.scratch_dir() as tmp:
        local = f"{tmp}/table.h5"
        hdf5.write_frame(frame, local, key=HDF_KEY, layout=layout)
        digest = storage.file_sha256(local)
        storage.atomic_upload(local, uri)
    return digest
