"""A DeepLabCut project read by URI: config.yaml plus every labeled-data/<video>/CollectedData table."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from posecluster import storage
from posecluster.config import ProjectConfig
from posecluster.data.formats import dlc
from posecluster.data.images import image_size
from posecluster.data.labels import LabeledDataset
from posecluster.errors import InputError


@dataclass
class Project:
    uri: str
    config: ProjectConfig
    labels: LabeledDataset


def find_label_tables(uri: str, scorer: str) -> list[str]:
    """One table per labeled-data folder: the scorer's .h5, else its .csv."""
    labeled = storage.join(uri, "labeled-data")
    if not storage.exists(labeled):
        return []
    by_folder: dict[str, dict[str, str]] = {}
    for found in storage.list_files(labeled, suffixes=(".h5", ".csv")):
        name = storage.basename(found)
        if name.rsplit(".", 1)[0] != f"CollectedData_{scorer}":
            continue
        by_folder.setdefault(storage.parent(found), {})[name.rsplit(".", 1)[1].lower()] = found
    return [tables.get("h5") or tables["csv"] for _, tables in sorted(by_folder.items())]


def read_project(uri: str, check_images: bool = True) -> Project:
    """Read a DLC project. Bad tables raise InputError naming the file and row."""
    uri = uri.rstrip("/")
    config = dlc.read_project_config(storage.join(uri, "config.yaml"))
    parts = []
    for table in find_label_tables(uri, config.scorer):
        frame = dlc.read_table(table)
        labels = dlc.table_to_dataset(frame, table, uri, config.bodyparts)
        if check_images:
            check_labels_inside_images(labels, table)
        parts.append(labels)
    if not parts:
        raise InputError(uri, f"no labeled-data/*/CollectedData_{config.scorer}.h5 or .csv found")
    labels = LabeledDataset.concat(parts)
    return Project(uri=uri, config=config, labels=labels)


def check_labels_inside_images(labels: LabeledDataset, table: str) -> None:
    for i, image in enumerate(labels.images):
        try:
            width, height = image_size(labels.image_uri(i))
        except InputError as exc:
            raise InputError(table, f"image missing or unreadable ({exc})", row=image) from None
        xy = labels.keypoints[i]
        outside = (xy[:, 0] < 0) | (xy[:, 0] > width) | (xy[:, 1] < 0) | (xy[:, 1] > height)
        if np.any(outside):
            k = int(np.flatnonzero(outside)[0])
            raise InputError(
                table,
                f"label {labels.bodyparts[k]} at ({xy[k, 0]:.1f}, {xy[k, 1]:.1f}) is outside the "
                f"{width}x{height} image",
                row=image,
            )


def write_project(project: Project, uri: str | None = None) -> None:
    """Write config.yaml and the label tables (images are written by whoever made them)."""
    uri = (uri or project.uri).rstrip("/")
    dlc.write_project_config(storage.join(uri, "config.yaml"), project.config)
    dlc.write_tables(project.labels, uri)
