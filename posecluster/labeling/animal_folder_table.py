"""One labeled-data folder of a multi-animal (maDLC) project as a labeling tool edits it: the folder's
CollectedData table in DeepLabCut's four-level layout (scorer / individuals / bodyparts / coords, unique
body parts under `single`), read with a version and saved only over the version it was read from, as
folder_table does for single-animal projects.

A frame's labels travel as one flat list of slots, [[x, y] | None, ...], in `animal_slots` order (each
individual's body parts in config order, then the unique body parts), so the per-frame merge of the web
app compares them as it compares a single-animal frame's list.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from posecluster import storage
from posecluster.config import UNIQUE_INDIVIDUAL, ProjectConfig
from posecluster.data.formats import dlc, madlc
from posecluster.data.multianimal import MultiAnimalLabels
from posecluster.errors import InputError
from posecluster.labeling.animal_frames import NEW_TABLE_INDEX, animal_folder_labels
from posecluster.labeling.folder_table import (
    TableConflict, check_folder, folder_images, machine_labels_uri, machine_points, proposed_frames, table_version,
)


def animal_slots(project: ProjectConfig) -> list[tuple[str, str]]:
    """(individual, body part) of every point a frame can hold, in the order of a frame's flat list."""
    slots = [(animal, part) for animal in project.individuals for part in project.bodyparts]
    return slots + [(UNIQUE_INDIVIDUAL, part) for part in project.unique_bodyparts]


@dataclass
class AnimalFolderTable:
    project: ProjectConfig
    folder: str  # labeled-data/<video>
    images: list[str]  # every frame of the folder (image files and table rows), relative to the project
    labels: MultiAnimalLabels
    version: str
    machine: dict[str, list] = field(default_factory=dict)  # image -> [[x, y, likelihood] | nulls per slot]
    proposed: list[str] = field(default_factory=list)  # frames `posecluster outliers` proposed this iteration

    def labeled_frames(self) -> int:
        """Frames with at least one point (of any individual or unique body part)."""
        if not len(self.labels):
            return 0
        placed = ~np.isnan(self.labels.keypoints).all(axis=(1, 2, 3))
        return int((placed | ~np.isnan(self.labels.unique_keypoints).all(axis=(1, 2))).sum())

    def keypoints(self) -> dict[str, list]:
        """{image: [[x, y] | None per slot]} for every frame of the folder (None where not labeled)."""
        rows = {image: i for i, image in enumerate(self.labels.images)}
        out = {}
        for image in self.images:
            if image in rows:
                i = rows[image]
                flat = np.concatenate([self.labels.keypoints[i].reshape(-1, 2), self.labels.unique_keypoints[i]])
            else:
                flat = np.full((len(animal_slots(self.project)), 2), np.nan)
            out[image] = [None if np.isnan(p).any() else [float(p[0]), float(p[1])] for p in flat]
        return out


def read_animal_folder_table(project_uri: str, folder: str) -> AnimalFolderTable:
    check_folder(folder)
    project = dlc.read_project_config(storage.join(project_uri, "config.yaml"))
    version = table_version(project_uri, folder, project.scorer)
    labels = animal_folder_labels(project_uri, project, folder)
    table = AnimalFolderTable(project=project, folder=folder, images=folder_images(project_uri, folder, labels.images),
                              labels=labels, version=version)
    machine_uri = machine_labels_uri(project_uri, folder, project.iteration)
    if storage.exists(machine_uri):
        table.machine = animal_machine_labels(machine_uri, project)
    table.proposed = proposed_frames(project_uri, folder, project.iteration)
    return table


def animal_machine_labels(uri: str, project: ProjectConfig) -> dict[str, list]:
    """machinelabels-iter<N>.h5 of a multi-animal project (the tracked table's rows of the proposed frames,
    as animal_outliers writes it and DeepLabCut reads it) as {image: [[x, y, likelihood] per slot]} in
    animal_slots order; a slot the table lacks is missing."""
    frame = madlc.read_table(uri, what="machine labels")
    scorers = frame.columns.get_level_values("scorer").unique().tolist()
    if len(scorers) != 1:
        raise InputError(uri, f"expected one scorer, found {scorers}")
    columns = pd.MultiIndex.from_tuples([(scorers[0], animal, part, coord) for animal, part in animal_slots(project)
                                         for coord in madlc.POSE_COORDS], names=madlc.LEVELS)
    try:
        values = frame.reindex(columns=columns).to_numpy(dtype=np.float64)
    except (ValueError, TypeError):
        raise InputError(uri, "machine labels must be numbers") from None
    return machine_points(frame.index, values)


def save_animal_folder_table(project_uri: str, folder: str, keypoints: dict[str, list], expected_version: str) -> str:
    """Write `keypoints` ({image: flat list in animal_slots order}) into the folder's maDLC
    CollectedData_<scorer>.h5/.csv, keeping every other row, if the table is still at `expected_version`.
    Returns the new version; TableConflict (nothing written) when the table changed meanwhile."""
    check_folder(folder)
    project = dlc.read_project_config(storage.join(project_uri, "config.yaml"))
    current = table_version(project_uri, folder, project.scorer)
    if current != expected_version:
        raise TableConflict(dlc.table_uri(project_uri, folder, project.scorer, "h5"), expected_version, current)
    labels = animal_folder_labels(project_uri, project, folder)
    rows = {image: i for i, image in enumerate(labels.images)}
    animals, parts = len(project.individuals), len(project.bodyparts)
    new_images, new_points, new_unique = [], [], []
    for image, points in keypoints.items():
        flat = _flat_points(image, points, len(animal_slots(project)))
        per_animal, unique = flat[:animals * parts].reshape(animals, parts, 2), flat[animals * parts:]
        if not (image.startswith(folder + "/") and "/" not in image[len(folder) + 1:]):
            raise InputError(image, f"is not a frame of {folder}")
        if image in rows:
            labels.keypoints[rows[image]] = per_animal
            labels.unique_keypoints[rows[image]] = unique
            continue
        if not storage.exists(storage.join(project_uri, image)):
            raise InputError(storage.join(project_uri, image), "no such frame in the folder")
        new_images.append(image)
        new_points.append(per_animal)
        new_unique.append(unique)
    if new_images:
        added = MultiAnimalLabels(root=project_uri, scorer=project.scorer, individuals=list(project.individuals),
                                  bodyparts=list(project.bodyparts), unique_bodyparts=list(project.unique_bodyparts),
                                  images=new_images, keypoints=np.stack(new_points), unique_keypoints=np.stack(new_unique),
                                  index_styles=dict(labels.index_styles) or {folder: NEW_TABLE_INDEX})
        labels = MultiAnimalLabels.concat([labels, added]) if len(labels) else added
    labels = labels.subset(sorted(range(len(labels)), key=lambda i: labels.images[i]))
    madlc.write_label_tables(labels, project_uri)
    return table_version(project_uri, folder, project.scorer)


def _flat_points(image: str, points, slots: int) -> np.ndarray:
    """[[x, y] | None per slot] -> (slots, 2) with NaN for a point not placed; the web app checked the
    names and the image bounds, this keeps the file sane for any other caller."""
    if not isinstance(points, list) or len(points) != slots:
        raise InputError(image, f"expected {slots} points (each individual's body parts, then the unique ones)")
    out = np.full((slots, 2), np.nan)
    for k, point in enumerate(points):
        if point is None:
            continue
        if (not isinstance(point, list) or len(point) != 2
                or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in point)
                or not all(np.isfinite(point))):
            raise InputError(image, f"point {k}: expected finite [x, y] or null, got {point!r}")
        out[k] = point
    return out
