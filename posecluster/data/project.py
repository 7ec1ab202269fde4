"""A DeepLabCut project read by URI: config.yaml plus every labeled-data/<video>/CollectedData table."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable

import numpy as np

from posecluster import storage
from posecluster.config import ProjectConfig
from posecluster.data.formats import dlc, madlc
from posecluster.data.images import image_size
from posecluster.data.labels import LabeledDataset
from posecluster.data.multianimal import MultiAnimalLabels
from posecluster.errors import InputError

log = logging.getLogger(__name__)

Labels = LabeledDataset | MultiAnimalLabels


@dataclass
class Project:
    uri: str
    config: ProjectConfig
    labels: Labels  # MultiAnimalLabels exactly when config.multianimal


@dataclass(frozen=True)
class LabelTables:
    """How one kind of project's CollectedData tables are read and written; chosen once per project."""

    read: Callable[[str, str, ProjectConfig], Labels]  # (table URI, project root, config)
    concat: Callable[[list], Labels]
    write: Callable[[Labels, str], list[str]]  # (labels, root) -> URIs written


SINGLE_ANIMAL = LabelTables(
    read=lambda table, root, config: dlc.table_to_dataset(dlc.read_table(table), table, root, config.bodyparts),
    concat=LabeledDataset.concat,
    write=dlc.write_tables,
)
MULTI_ANIMAL = LabelTables(
    read=lambda table, root, config: madlc.table_to_labels(madlc.read_table(table), table, root, config),
    concat=MultiAnimalLabels.concat,
    write=madlc.write_label_tables,
)


def label_tables(config: ProjectConfig) -> LabelTables:
    return MULTI_ANIMAL if config.multianimal else SINGLE_ANIMAL


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
    tables = label_tables(config)
    parts = []
    for table in find_label_tables(uri, config.scorer):
        labels = tables.read(table, uri, config)
        check_unique_images(labels, table)
        if check_images:
            check_labels_inside_images(labels, table)
        parts.append(labels)
    if not parts:
        raise InputError(uri, f"no labeled-data/*/CollectedData_{config.scorer}.h5 or .csv found")
    labels = tables.concat(parts)
    check_unique_images(labels, f"{uri}/labeled-data")  # a table may name another folder's images
    return Project(uri=uri, config=config, labels=labels)


def check_labels_inside_images(labels: Labels, table: str) -> None:
    """Every labeled image must exist; a label outside the image's pixel extent is dropped with a warning.

    Pixel i covers [i - 0.5, i + 0.5] in DeepLabCut's coordinates, so the image spans [-0.5, W - 0.5];
    labeling tools can place a point a hair beyond it, which must not abort a whole project.
    """
    for i, image in enumerate(labels.images):
        try:
            width, height = image_size(labels.image_uri(i))
        except InputError as exc:
            raise InputError(table, f"image missing or unreadable ({exc})", row=image) from None
        for names, xy in labels.labeled_points(i):
            outside = (xy[:, 0] < -0.5) | (xy[:, 0] > width - 0.5) | (xy[:, 1] < -0.5) | (xy[:, 1] > height - 0.5)
            for k in np.flatnonzero(outside):
                log.warning("%s, row %s: label %s at (%.2f, %.2f) is outside the %dx%d image (pixel extent "
                            "[-0.5, %g] x [-0.5, %g]); dropped", table, image, names[k], xy[k, 0], xy[k, 1],
                            width, height, width - 0.5, height - 0.5)
                xy[k] = np.nan


def check_unique_images(labels: Labels, source: str) -> None:
    """One row per image: a duplicated row could put one image in both the training and the test set."""
    seen: dict[str, int] = {}
    duplicated: dict[str, list[int]] = {}
    for row, image in enumerate(labels.images):
        if image in seen:
            duplicated.setdefault(image, [seen[image]]).append(row)
        seen.setdefault(image, row)
    if duplicated:
        named = "; ".join(f"{image} (rows {', '.join(str(r + 1) for r in rows)})"
                          for image, rows in list(duplicated.items())[:5])
        raise InputError(source, f"{len(duplicated)} image(s) labeled more than once: {named}; keep one row each")


def write_project(project: Project, uri: str | None = None) -> None:
    """Write config.yaml and the label tables (images are written by whoever made them)."""
    uri = (uri or project.uri).rstrip("/")
    dlc.write_project_config(storage.join(uri, "config.yaml"), project.config)
    label_tables(project.config).write(project.labels, uri)
