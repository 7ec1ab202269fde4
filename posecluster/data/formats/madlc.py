"""DeepLabCut's multi-animal (maDLC) tables: CollectedData labels and tracked pose tables, read and written.

Both have four header levels, scorer / individuals / bodyparts / coords. Each individual named in
config.yaml has the multianimalbodyparts; unique body parts sit under the individual "single" (only when
the project has any). Label tables have coords x, y and rows indexed by image path, either one string per
row or (labeled-data, video, image) tuples; pose tables after tracking have coords x, y, likelihood and one
row per frame, in HDF5 table format under key df_with_missing as DeepLabCut's own analysis files are.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from posecluster import storage
from posecluster.config import UNIQUE_INDIVIDUAL, ProjectConfig
from posecluster.data.formats import hdf5
from posecluster.data.formats.dlc import index_for, numeric_column, read_csv_table, row_path, table_uri, write_hdf
from posecluster.data.formats.poses import PoseTableWriter
from posecluster.data.multianimal import AnimalTracks, MultiAnimalLabels
from posecluster.errors import InputError

LEVELS = ["scorer", "individuals", "bodyparts", "coords"]
LABEL_COORDS = ("x", "y")
POSE_COORDS = ("x", "y", "likelihood")


def read_table(uri: str, what: str = "HDF5 table") -> pd.DataFrame:
    """A maDLC table (.h5 under its only key, or .csv) as pandas, with the four header levels checked."""
    if uri.lower().endswith(".h5"):
        with storage.local_copy(uri) as path:
            frame = hdf5.read_frame(path, uri, what=what)
    else:
        frame = read_csv_table(uri)
    if not isinstance(frame.columns, pd.MultiIndex) or list(frame.columns.names) != LEVELS:
        found = list(frame.columns.names) if isinstance(frame.columns, pd.MultiIndex) else [frame.columns.name]
        hint = " (a single-animal table: DeepLabCut's convert2_maDLC converts it)" if found == [
            "scorer", "bodyparts", "coords"] else ""
        raise InputError(uri, f"expected multi-animal header levels {LEVELS}, found {found}{hint}")
    return frame


def _one_scorer(frame: pd.DataFrame, uri: str) -> str:
    scorers = frame.columns.get_level_values("scorer").unique().tolist()
    if len(scorers) != 1:
        raise InputError(uri, f"expected one scorer, found {scorers}")
    return str(scorers[0])


def _check_names(frame: pd.DataFrame, uri: str, individuals: list[str], bodyparts: list[str],
                 unique_bodyparts: list[str], coords: tuple[str, ...]) -> None:
    """Every column must name a known individual, a body part it can have, and the coords needed."""
    found_coords = set(frame.columns.get_level_values("coords"))
    if not set(coords) <= found_coords:
        raise InputError(uri, f"coords must include {list(coords)}, found {sorted(found_coords)}")
    known = [*individuals, *([UNIQUE_INDIVIDUAL] if unique_bodyparts else [])]
    for _, animal, part, _ in frame.columns:
        if animal not in known:
            raise InputError(uri, f"unknown individual {animal!r}; config.yaml lists {known}")
        allowed = unique_bodyparts if animal == UNIQUE_INDIVIDUAL else bodyparts
        if part not in allowed:
            kind = "uniquebodyparts" if animal == UNIQUE_INDIVIDUAL else "multianimalbodyparts"
            raise InputError(uri, f"unknown body part {part!r} under {animal!r}; config.yaml's {kind} are {allowed}")


def table_to_labels(frame: pd.DataFrame, uri: str, root: str, project: ProjectConfig) -> MultiAnimalLabels:
    """Validate a maDLC label table against the project and turn it into the labels model. Columns the
    table lacks (an individual or body part added to config.yaml after labeling) are unlabeled."""
    scorer = _one_scorer(frame, uri)
    _check_names(frame, uri, project.individuals, project.bodyparts, project.unique_bodyparts, LABEL_COORDS)
    images = [row_path(label) for label in frame.index]
    present = set(frame.columns)

    def column(animal: str, part: str, coord: str) -> np.ndarray:
        key = (scorer, animal, part, coord)
        if key not in present:
            return np.full(len(frame), np.nan)
        return numeric_column(frame[key], uri, images, f"{animal}.{part}.{coord}")

    keypoints = np.full((len(frame), len(project.individuals), len(project.bodyparts), 2), np.nan)
    for i, animal in enumerate(project.individuals):
        for k, part in enumerate(project.bodyparts):
            for c, coord in enumerate(LABEL_COORDS):
                keypoints[:, i, k, c] = column(animal, part, coord)
    unique = np.full((len(frame), len(project.unique_bodyparts), 2), np.nan)
    for k, part in enumerate(project.unique_bodyparts):
        for c, coord in enumerate(LABEL_COORDS):
            unique[:, k, c] = column(UNIQUE_INDIVIDUAL, part, coord)
    # A label that is only half present (x without y) is unusable: treat both as missing.
    keypoints[np.isnan(keypoints).any(axis=-1)] = np.nan
    unique[np.isnan(unique).any(axis=-1)] = np.nan
    style = "tuple" if isinstance(frame.index, pd.MultiIndex) else "path"
    return MultiAnimalLabels(
        root=root, scorer=scorer, individuals=list(project.individuals), bodyparts=list(project.bodyparts),
        unique_bodyparts=list(project.unique_bodyparts), images=images, keypoints=keypoints,
        unique_keypoints=unique, index_styles={folder: style for folder in {img.rsplit("/", 1)[0] for img in images}},
    )


def _columns(scorer: str, individuals: list[str], bodyparts: list[str], unique_bodyparts: list[str],
             coords: tuple[str, ...]) -> pd.MultiIndex:
    tuples = [(scorer, a, p, c) for a in individuals for p in bodyparts for c in coords]
    tuples += [(scorer, UNIQUE_INDIVIDUAL, p, c) for p in unique_bodyparts for c in coords]
    return pd.MultiIndex.from_tuples(tuples, names=LEVELS)


def labels_to_table(labels: MultiAnimalLabels, rows: list[int], style: str = "path") -> pd.DataFrame:
    columns = _columns(labels.scorer, labels.individuals, labels.bodyparts, labels.unique_bodyparts, LABEL_COORDS)
    values = np.concatenate([labels.keypoints[rows].reshape(len(rows), -1),
                             labels.unique_keypoints[rows].reshape(len(rows), -1)], axis=1)
    return pd.DataFrame(values, index=index_for([labels.images[i] for i in rows], style), columns=columns)


def write_label_tables(labels: MultiAnimalLabels, root: str | None = None) -> list[str]:
    """Write one CollectedData .h5 (DLC's fixed format) + .csv per labeled-data folder; returns the URIs."""
    root = root or labels.root
    written = []
    for folder in labels.folders():
        frame = labels_to_table(labels, labels.rows_in(folder), labels.index_styles.get(folder, "path"))
        h5 = table_uri(root, folder, labels.scorer, "h5")
        write_hdf(frame, h5)
        csv = table_uri(root, folder, labels.scorer, "csv")
        storage.atomic_write_bytes(csv, frame.to_csv().encode())
        written += [h5, csv]
    return written


def tracks_to_table(tracks: AnimalTracks, start: int = 0) -> pd.DataFrame:
    """Tracks as DLC's multi-animal pose table, rows numbered from frame `start`."""
    columns = _columns(tracks.scorer, tracks.individuals, tracks.bodyparts, tracks.unique_bodyparts, POSE_COORDS)
    n = len(tracks)
    values = np.concatenate([tracks.poses.reshape(n, -1), tracks.unique_poses.reshape(n, -1)], axis=1)
    return pd.DataFrame(values, index=pd.RangeIndex(start, start + n), columns=columns)


def write_tracks(tracks: AnimalTracks, uri: str) -> None:
    """Write tracks as a maDLC pose table (.h5 table format, key df_with_missing; or .csv); atomic."""
    frame = tracks_to_table(tracks)
    if uri.endswith(".h5"):
        write_hdf(frame, uri, layout="table")
    elif uri.endswith(".csv"):
        storage.atomic_write_bytes(uri, frame.to_csv().encode())
    else:
        raise ValueError(f"{uri}: multi-animal pose tables are .h5 or .csv")


class AnimalTableWriter(PoseTableWriter):
    """Tracked rows streamed to a maDLC pose table (.h5, + .csv on request) in frame order, gaps filled with
    NaN, published whole: memory flat in video length. Each (individual, body part) and unique body part is
    one slot of the single-animal writer's rows."""

    def __init__(self, scorer: str, individuals: list[str], bodyparts: list[str], unique_bodyparts: list[str],
                 scratch: str, formats=("h5",), chunk_rows: int = 4096):
        if "parquet" in formats:
            raise ValueError("multi-animal pose tables are .h5 or .csv")
        self.columns = _columns(scorer, individuals, bodyparts, unique_bodyparts, POSE_COORDS)
        self.shape = (len(individuals), len(bodyparts))
        slots = [f"{a}/{p}" for a in individuals for p in bodyparts] + [f"{UNIQUE_INDIVIDUAL}/{p}" for p in unique_bodyparts]
        super().__init__(scorer, slots, scratch, formats, chunk_rows)

    def append_tracks(self, first_frame: int, poses: np.ndarray, unique_poses: np.ndarray | None = None) -> None:
        """poses (n, individuals, bodyparts, 3) and unique_poses (n, unique, 3) for frames first_frame.."""
        poses = np.asarray(poses, dtype=np.float64)
        n = len(poses)
        if poses.shape[1:] != (*self.shape, 3):
            raise ValueError(f"poses shape {poses.shape} does not fit (n, {self.shape[0]}, {self.shape[1]}, 3)")
        unique_slots = len(self.bodyparts) - self.shape[0] * self.shape[1]
        unique = np.full((n, unique_slots, 3), np.nan) if unique_poses is None else np.asarray(unique_poses, float)
        self.append(first_frame, np.concatenate([poses.reshape(n, -1, 3), unique.reshape(n, -1, 3)], axis=1))

    def _table(self, start: int, poses: np.ndarray) -> pd.DataFrame:
        return pd.DataFrame(poses.reshape(len(poses), -1), index=pd.RangeIndex(start, start + len(poses)),
                            columns=self.columns)


def read_tracks(uri: str) -> AnimalTracks:
    """A maDLC pose table (ours, or DeepLabCut's _el/_bx/_tr/_filtered .h5 or .csv) as AnimalTracks.
    Rows are placed at their frame numbers; frames without a row and columns the table lacks are NaN."""
    return tracks_from_frame(read_table(uri, what="pose table"), uri)


def is_animal_table(frame: pd.DataFrame) -> bool:
    """Whether a table read from a file has the multi-animal header levels (else a single-animal one)."""
    return isinstance(frame.columns, pd.MultiIndex) and list(frame.columns.names) == LEVELS


def tracks_from_frame(frame: pd.DataFrame, uri: str) -> AnimalTracks:
    """A maDLC pose table read from `uri` (its header levels checked by read_table or is_animal_table) as
    AnimalTracks. Rows are placed at their frame numbers; frames without a row and missing columns are NaN."""
    scorer = _one_scorer(frame, uri)
    animals = list(dict.fromkeys(str(a) for a in frame.columns.get_level_values("individuals")))
    individuals = [a for a in animals if a != UNIQUE_INDIVIDUAL]
    parts_of = {a: list(dict.fromkeys(str(p) for _, an, p, _ in frame.columns if an == a)) for a in animals}
    bodyparts = list(dict.fromkeys(p for a in individuals for p in parts_of[a]))
    unique_bodyparts = parts_of.get(UNIQUE_INDIVIDUAL, [])
    _check_names(frame, uri, individuals, bodyparts, unique_bodyparts, POSE_COORDS)
    frames = _frame_numbers(frame.index, uri)
    columns = _columns(scorer, individuals, bodyparts, unique_bodyparts, POSE_COORDS)
    table = frame.reindex(columns=columns)
    try:
        values = table.to_numpy(dtype=np.float64)
    except (ValueError, TypeError):
        rows = [str(r) for r in frame.index]
        for key in columns:  # find the cell to name
            numeric_column(table[key], uri, rows, ".".join(map(str, key[1:])))
        raise
    n = int(frames.max()) + 1 if len(frames) else 0
    flat = np.full((n, len(columns)), np.nan)
    flat[frames] = values
    split = len(individuals) * len(bodyparts) * 3
    return AnimalTracks(
        scorer=scorer, individuals=individuals, bodyparts=bodyparts, unique_bodyparts=unique_bodyparts,
        poses=flat[:, :split].reshape(n, len(individuals), len(bodyparts), 3),
        unique_poses=flat[:, split:].reshape(n, len(unique_bodyparts), 3),
    )


def _frame_numbers(index: pd.Index, uri: str) -> np.ndarray:
    """Row labels as frame numbers: non-negative integers, each once."""
    numbers = pd.to_numeric(pd.Series(index), errors="coerce")
    bad = numbers.isna() | (numbers < 0) | (numbers != numbers.round())
    if bad.any():
        raise InputError(uri, "rows must be numbered by frame (0, 1, 2, ...)", row=index[int(np.flatnonzero(bad)[0])])
    frames = numbers.to_numpy(dtype=np.int64)
    repeated = pd.Series(frames).duplicated()
    if repeated.any():
        raise InputError(uri, "frame listed twice", row=int(frames[int(np.flatnonzero(repeated)[0])]))
    return frames
