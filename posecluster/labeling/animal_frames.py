"""Frames written into a multi-animal (maDLC) project for labeling: PNGs in labeled-data/<video>/ plus rows
in the folder's CollectedData_<scorer> table in DeepLabCut's four-level layout (scorer / individuals /
bodyparts / coords, unique body parts under `single`), empty or pre-filled with proposed labels.
project_frames.py is the single-animal counterpart; folder_kinds.py picks one per project."""

from __future__ import annotations

import numpy as np

from posecluster import storage
from posecluster.config import ProjectConfig
from posecluster.data.formats import dlc, madlc
from posecluster.data.multianimal import MultiAnimalLabels
from posecluster.labeling.project_frames import rows_of_folder, write_new_frames

NEW_TABLE_INDEX = "tuple"  # (labeled-data, video, image) rows: what DeepLabCut 2.2+ and napari-deeplabcut write


def _labels(project_uri: str, project: ProjectConfig, images: list[str], keypoints: np.ndarray,
            unique: np.ndarray, index_styles: dict[str, str]) -> MultiAnimalLabels:
    return MultiAnimalLabels(root=project_uri, scorer=project.scorer, individuals=list(project.individuals),
                             bodyparts=list(project.bodyparts), unique_bodyparts=list(project.unique_bodyparts),
                             images=images, keypoints=keypoints, unique_keypoints=unique, index_styles=index_styles)


def animal_folder_labels(project_uri: str, project: ProjectConfig, folder: str) -> MultiAnimalLabels:
    """The folder's current maDLC table (h5, else csv), or an empty one that will be written with
    (labeled-data, video, image) rows."""
    for suffix in ("h5", "csv"):
        uri = dlc.table_uri(project_uri, folder, project.scorer, suffix)
        if storage.exists(uri):
            labels = madlc.table_to_labels(madlc.read_table(uri), uri, project_uri, project)
            rows_of_folder(uri, labels.images, folder)
            return labels
    animals, parts, unique = len(project.individuals), len(project.bodyparts), len(project.unique_bodyparts)
    return _labels(project_uri, project, [], np.zeros((0, animals, parts, 2)), np.zeros((0, unique, 2)),
                   {folder: NEW_TABLE_INDEX})


def add_animal_frames(project_uri: str, project: ProjectConfig, folder: str, frames: dict[str, np.ndarray],
                      keypoints: np.ndarray | None = None, unique: np.ndarray | None = None) -> list[str]:
    """Write `frames` ({relative image path: RGB}) and give each a row in the folder's maDLC CollectedData
    table (.h5 and .csv): NaN (to be labeled), or `keypoints` (n, individuals, K, 2) and `unique` (n, U, 2)
    as initial labels. Rows that exist are left alone (a rerun never erases labeling work), and so is the
    way the table indexes its rows. Returns the image paths that were new."""
    current = animal_folder_labels(project_uri, project, folder)
    new = write_new_frames(project_uri, frames, current.images)
    if not new:
        return []
    n = len(frames)
    shape = (n, len(project.individuals), len(project.bodyparts), 2)
    keypoints = np.full(shape, np.nan) if keypoints is None else np.asarray(keypoints, np.float64)
    unique = np.full((n, len(project.unique_bodyparts), 2), np.nan) if unique is None else np.asarray(unique, np.float64)
    position = {name: i for i, name in enumerate(frames)}
    rows = [position[name] for name in new]
    added = _labels(project_uri, project, new, keypoints[rows], unique[rows],
                    dict(current.index_styles) or {folder: NEW_TABLE_INDEX})
    merged = MultiAnimalLabels.concat([current, added]) if len(current) else added
    by_name = sorted(range(len(merged)), key=lambda i: merged.images[i])
    madlc.write_label_tables(merged.subset(by_name), project_uri)
    return new
