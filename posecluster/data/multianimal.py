"""The multi-animal labels and tracks models (maDLC projects), independent of any file format.

Individuals are slots, not identities, unless the project says `identity: true`: a labeler may call any
animal "mouse1" in one frame and another animal "mouse1" in the next. Unique body parts (a landmark, a
second kind of animal seen once) are kept apart, one set per frame, as DeepLabCut keeps them under its
"single" individual.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from posecluster import storage
from posecluster.config import UNIQUE_INDIVIDUAL
from posecluster.data.labels import folder_of
from posecluster.data.tracks import PoseTrack


@dataclass
class MultiAnimalLabels:
    """Labeled frames of one maDLC project.

    `keypoints` is (frames, individuals, bodyparts, 2) and `unique_keypoints` (frames, unique_bodyparts, 2),
    both in original image pixels with NaN where a point is not labeled (an absent animal is all NaN).
    """

    root: str
    scorer: str
    individuals: list[str]
    bodyparts: list[str]
    unique_bodyparts: list[str]
    images: list[str]
    keypoints: np.ndarray
    unique_keypoints: np.ndarray | None = None
    # How each labeled-data folder's table indexed its rows ("path" or "tuple"), kept for lossless writes.
    index_styles: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self.images)
        self.keypoints = np.asarray(self.keypoints, dtype=np.float64)
        expected = (n, len(self.individuals), len(self.bodyparts), 2)
        if self.keypoints.shape != expected:
            raise ValueError(f"keypoints shape {self.keypoints.shape} != {expected}")
        if self.unique_keypoints is None:
            self.unique_keypoints = np.full((n, len(self.unique_bodyparts), 2), np.nan)
        self.unique_keypoints = np.asarray(self.unique_keypoints, dtype=np.float64)
        expected_unique = (n, len(self.unique_bodyparts), 2)
        if self.unique_keypoints.shape != expected_unique:
            raise ValueError(f"unique_keypoints shape {self.unique_keypoints.shape} != {expected_unique}")

    def __len__(self) -> int:
        return len(self.images)

    def image_uri(self, index: int) -> str:
        return storage.join(self.root, self.images[index])

    def animals_present(self) -> np.ndarray:
        """(frames, individuals) bool: at least one body part of that individual is labeled."""
        return ~np.isnan(self.keypoints).all(axis=(2, 3))

    def labeled_points(self, index: int) -> list[tuple[list[str], np.ndarray]]:
        """One frame's points as (names, writable (n, 2) view) groups: per-animal, then unique."""
        names = [f"{animal}/{part}" for animal in self.individuals for part in self.bodyparts]
        points = self.keypoints[index].reshape(-1, 2)  # a view: keypoints are C-contiguous
        return [(names, points), (list(self.unique_bodyparts), self.unique_keypoints[index])]

    def subset(self, indices) -> "MultiAnimalLabels":
        indices = list(indices)
        return MultiAnimalLabels(
            root=self.root,
            scorer=self.scorer,
            individuals=list(self.individuals),
            bodyparts=list(self.bodyparts),
            unique_bodyparts=list(self.unique_bodyparts),
            images=[self.images[i] for i in indices],
            keypoints=self.keypoints[indices],
            unique_keypoints=self.unique_keypoints[indices],
            index_styles=dict(self.index_styles),
        )

    def folders(self) -> list[str]:
        """The labeled-data folders (relative), in first-seen order."""
        return list(dict.fromkeys(folder_of(image) for image in self.images))

    def rows_in(self, folder: str) -> list[int]:
        return [i for i, image in enumerate(self.images) if folder_of(image) == folder]

    @staticmethod
    def concat(parts: list["MultiAnimalLabels"]) -> "MultiAnimalLabels":
        first = parts[0]
        for other in parts[1:]:
            if (other.individuals, other.bodyparts, other.unique_bodyparts) != (
                first.individuals, first.bodyparts, first.unique_bodyparts
            ):
                raise ValueError("cannot concatenate labels with different individuals or body parts")
        styles: dict[str, str] = {}
        for p in parts:
            styles.update(p.index_styles)
        return MultiAnimalLabels(
            root=first.root,
            scorer=first.scorer,
            individuals=list(first.individuals),
            bodyparts=list(first.bodyparts),
            unique_bodyparts=list(first.unique_bodyparts),
            images=[img for p in parts for img in p.images],
            keypoints=np.concatenate([p.keypoints for p in parts], axis=0),
            unique_keypoints=np.concatenate([p.unique_keypoints for p in parts], axis=0),
            index_styles=styles,
        )


@dataclass
class AnimalTracks:
    """One video's tracked animals: `poses` (frames, individuals, bodyparts, 3) and `unique_poses`
    (frames, unique_bodyparts, 3), x, y in DLC pixel coordinates and likelihood; NaN where an animal (or a
    body part) is absent from a frame. Individual i is the same animal in every frame."""

    scorer: str
    individuals: list[str]
    bodyparts: list[str]
    unique_bodyparts: list[str]
    poses: np.ndarray
    unique_poses: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.poses = np.array(self.poses, dtype=np.float64)  # own copy: tables hand out read-only views
        expected = (len(self.individuals), len(self.bodyparts), 3)
        if self.poses.ndim != 4 or self.poses.shape[1:] != expected:
            raise ValueError(f"poses shape {self.poses.shape} does not fit (frames, {', '.join(map(str, expected))})")
        if self.unique_poses is None:
            self.unique_poses = np.full((len(self.poses), len(self.unique_bodyparts), 3), np.nan)
        self.unique_poses = np.array(self.unique_poses, dtype=np.float64)
        expected_unique = (len(self.poses), len(self.unique_bodyparts), 3)
        if self.unique_poses.shape != expected_unique:
            raise ValueError(f"unique_poses shape {self.unique_poses.shape} != {expected_unique}")

    def __len__(self) -> int:
        return len(self.poses)

    @property
    def xy(self) -> np.ndarray:
        return self.poses[..., :2]

    @property
    def likelihood(self) -> np.ndarray:
        return self.poses[..., 2]

    def animals_present(self) -> np.ndarray:
        """(frames, individuals) bool: at least one body part of that animal has a position."""
        return ~np.isnan(self.poses[..., :2]).all(axis=(2, 3))

    def with_poses(self, poses: np.ndarray, unique_poses: np.ndarray | None = None) -> "AnimalTracks":
        return AnimalTracks(self.scorer, list(self.individuals), list(self.bodyparts), list(self.unique_bodyparts),
                            poses, self.unique_poses if unique_poses is None else unique_poses)

    def per_animal(self) -> dict[str, PoseTrack]:
        """Each individual's columns as a track of its own, then the unique body parts under "single"
        (when there are any): what a tool that treats every animal's track alone works on (DeepLabCut
        filters and plots each individual's columns)."""
        tracks = {name: PoseTrack(self.scorer, list(self.bodyparts), self.poses[:, i])
                  for i, name in enumerate(self.individuals)}
        if self.unique_bodyparts:
            tracks[UNIQUE_INDIVIDUAL] = PoseTrack(self.scorer, list(self.unique_bodyparts), self.unique_poses)
        return tracks

    def from_animals(self, tracks: dict[str, PoseTrack]) -> "AnimalTracks":
        """These tracks with each animal's (and "single"'s) poses taken from the track of its name."""
        poses = np.stack([tracks[name].poses for name in self.individuals], axis=1) if self.individuals \
            else self.poses
        unique = tracks[UNIQUE_INDIVIDUAL].poses if self.unique_bodyparts else None
        return self.with_poses(poses, unique)
