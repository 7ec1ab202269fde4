"""What the labeling commands (extract-frames, merge) do with a project's labeled-data folders, by the
project's kind: single-animal (CollectedData with scorer / bodyparts / coords) or multi-animal (maDLC:
scorer / individuals / bodyparts / coords). The kind is chosen once, from config.yaml, so no command asks
which kind of folder it holds."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from posecluster.config import ProjectConfig
from posecluster.data.formats import dlc, madlc
from posecluster.labeling.animal_frames import add_animal_frames, animal_folder_labels
from posecluster.labeling.project_frames import add_frames, folder_labels


@dataclass(frozen=True)
class FolderKind:
    name: str
    labels: Callable  # (project uri, project, folder) -> the folder's labels (LabeledDataset | MultiAnimalLabels)
    write: Callable  # (labels, project uri) -> CollectedData URIs written (.h5 and .csv per folder)
    add_frames: Callable  # (project uri, project, folder, {image: RGB}) -> new images, rows NaN
    points: Callable  # (labels, row) -> (P, 2) the row's points in the table's column order


def _animal_points(labels, row: int) -> np.ndarray:
    """Every individual's body parts, then the unique ones: the CollectedData columns' order."""
    return np.concatenate([labels.keypoints[row].reshape(-1, 2), labels.unique_keypoints[row]])


SINGLE = FolderKind("single-animal", folder_labels, dlc.write_tables, add_frames,
                    lambda labels, row: labels.keypoints[row])
ANIMALS = FolderKind("multi-animal", animal_folder_labels, madlc.write_label_tables, add_animal_frames, _animal_points)


def folder_kind(project: ProjectConfig) -> FolderKind:
    return ANIMALS if project.multianimal else SINGLE
