"""One labeled-data folder's CollectedData table as a labeling tool edits it: read with a version, saved
only over the version it was read from (compare-and-swap), so two people on one folder lose nothing.

The tables are read and written by posecluster.data.formats.dlc (the project's one code path for
DeepLabCut files); the version is a hash of the stored bytes of both files (.h5 and .csv).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

import numpy as np

from posecluster import storage
from posecluster.config import ProjectConfig
from posecluster.data.formats import dlc
from posecluster.data.formats.poses import read_pose_table
from posecluster.data.labels import LabeledDataset
from posecluster.errors import InputError
from posecluster.labeling.outliers import proposals_uri
from posecluster.labeling.project_frames import folder_labels

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


class TableConflict(Exception):
    """The table changed since the client read it; nothing was written."""

    def __init__(self, uri: str, expected: str, current: str):
        super().__init__(f"{uri} was saved by someone else since you loaded it (version {expected[:12] or 'none'} "
                         f"-> {current[:12] or 'none'}); nothing was written. Reload to see their labels.")
        self.uri, self.expected, self.current = uri, expected, current


@dataclass
class FolderTable:
    project: ProjectConfig
    folder: str  # labeled-data/<video>
    images: list[str]  # every frame of the folder (PNG files and table rows), relative to the project
    labels: LabeledDataset
    version: str
    machine: dict[str, list] = field(default_factory=dict)  # image -> [[x, y, likelihood], ...] per part
    proposed: list[str] = field(default_factory=list)  # frames `posecluster outliers` proposed this iteration

    def keypoints(self) -> dict[str, list]:
        rows = {image: i for i, image in enumerate(self.labels.images)}
        out = {}
        for image in self.images:
            points = self.labels.keypoints[rows[image]] if image in rows else np.full((len(self.project.bodyparts), 2), np.nan)
            out[image] = [None if np.isnan(p).any() else [float(p[0]), float(p[1])] for p in points]
        return out


def table_version(project_uri: str, folder: str, scorer: str) -> str:
    """A hash of the folder's stored CollectedData files ('' when there is none yet)."""
    digest = hashlib.sha256()
    found = False
    for suffix in ("h5", "csv"):
        uri = dlc.table_uri(project_uri, folder, scorer, suffix)
        if storage.exists(uri):
            found = True
            digest.update(suffix.encode() + storage.read_bytes(uri))
    return digest.hexdigest() if found else ""


def check_folder(folder: str) -> None:
    parts = folder.split("/")
    if len(parts) != 2 or parts[0] != "labeled-data" or parts[1] in ("", ".", ".."):
        raise ValueError(f"{folder!r} is not a labeled-data/<video> folder")


def folder_images(project_uri: str, folder: str, labeled: list[str]) -> list[str]:
    """Every frame of the folder: its image files and the rows of its table (`labeled`), sorted."""
    folder_uri = storage.join(project_uri, folder)
    # One recursive listing (a single paginated LIST on S3); the non-recursive one asks about every entry.
    files = storage.list_files(folder_uri, suffixes=IMAGE_SUFFIXES) if storage.exists(folder_uri) else []
    prefix = folder_uri.rstrip("/") + "/"
    direct = [f for f in files if "/" not in f[len(prefix):]] if all(f.startswith(prefix) for f in files) else files
    return sorted(set(labeled) | {f"{folder}/{storage.basename(f)}" for f in direct})


def read_folder_table(project_uri: str, folder: str) -> FolderTable:
    check_folder(folder)
    project = dlc.read_project_config(storage.join(project_uri, "config.yaml"))
    version = table_version(project_uri, folder, project.scorer)
    labels = folder_labels(project_uri, project, folder)
    images = folder_images(project_uri, folder, labels.images)
    table = FolderTable(project=project, folder=folder, images=images, labels=labels, version=version)
    machine_uri = machine_labels_uri(project_uri, folder, project.iteration)
    if storage.exists(machine_uri):
        frame = read_pose_table(machine_uri)
        table.machine = machine_points(frame.index, frame.to_numpy(dtype=np.float64))
    table.proposed = proposed_frames(project_uri, folder, project.iteration)
    return table


def machine_labels_uri(project_uri: str, folder: str, iteration: int) -> str:
    """DeepLabCut's machinelabels-iter<N>.h5: the predictions behind the frames `outliers` proposed."""
    return storage.join(project_uri, folder, f"machinelabels-iter{iteration}.h5")


def machine_points(rows, values: np.ndarray) -> dict[str, list]:
    """{image: [[x, y, likelihood] per slot, None where missing]} of a machine-labels table's rows."""
    return {dlc.row_path(image): [[None if np.isnan(v) else float(v) for v in point] for point in row.reshape(-1, 3)]
            for image, row in zip(rows, values)}


def proposed_frames(project_uri: str, folder: str, iteration: int) -> list[str]:
    """The frames `posecluster outliers` proposed in this iteration (outliers-iter<N>.json), sorted."""
    record_uri = proposals_uri(project_uri, folder, iteration)
    if not storage.exists(record_uri):
        return []
    return sorted(json.loads(storage.read_bytes(record_uri)).get("frames", {}))


def save_folder_table(project_uri: str, folder: str, keypoints: dict[str, list], expected_version: str) -> str:
    """Write the labels of `keypoints` ({image: [[x, y] or None per body part]}) into the folder's
    CollectedData_<scorer>.h5/.csv, keeping every other row, if the table is still at `expected_version`.
    Returns the new version; raises TableConflict (nothing written) when the table changed meanwhile.
    The caller serialises saves of one folder within a process; across processes the window is the
    time between the version check and the write."""
    check_folder(folder)
    project = dlc.read_project_config(storage.join(project_uri, "config.yaml"))
    current = table_version(project_uri, folder, project.scorer)
    if current != expected_version:
        raise TableConflict(dlc.table_uri(project_uri, folder, project.scorer, "h5"), expected_version, current)
    labels = folder_labels(project_uri, project, folder)
    rows = {image: i for i, image in enumerate(labels.images)}
    parts = len(project.bodyparts)
    new_images, new_points = [], []
    for image, points in keypoints.items():
        array = _points(image, points, parts)
        if not (image.startswith(folder + "/") and "/" not in image[len(folder) + 1:]):
            raise InputError(image, f"is not a frame of {folder}")
        if image in rows:
            labels.keypoints[rows[image]] = array
            continue
        if not storage.exists(storage.join(project_uri, image)):
            raise InputError(storage.join(project_uri, image), "no such frame in the folder")
        new_images.append(image)
        new_points.append(array)
    if new_images:
        added = LabeledDataset(root=project_uri, scorer=project.scorer, bodyparts=list(project.bodyparts),
                               images=new_images, keypoints=np.stack(new_points),
                               index_styles=dict(labels.index_styles) or {folder: "path"})
        labels = LabeledDataset.concat([labels, added]) if len(labels) else added
    labels = labels.subset(sorted(range(len(labels)), key=lambda i: labels.images[i]))
    dlc.write_tables(labels, project_uri)
    return table_version(project_uri, folder, project.scorer)


def _points(image: str, points, parts: int) -> np.ndarray:
    """[[x, y] | None, ...] from JSON -> (parts, 2) float array with NaN for a missing part."""
    if not isinstance(points, list) or len(points) != parts:
        raise InputError(image, f"expected a list of {parts} points (one per body part, null when not visible)")
    out = np.full((parts, 2), np.nan)
    for k, point in enumerate(points):
        if point is None:
            continue
        if (not isinstance(point, list) or len(point) != 2
                or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in point)):
            raise InputError(image, f"body part {k}: expected [x, y] numbers or null, got {point!r}")
        if not all(np.isfinite(point)):
            raise InputError(image, f"body part {k}: coordinates must be finite, got {point!r}")
        out[k] = point
    return out
