"""The pose-track model: one video's predictions, independent of any file format."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class PoseTrack:
    """`poses` is (frames, bodyparts, 3): x, y in DLC pixel coordinates and likelihood; NaN where a frame
    could not be decoded."""

    scorer: str
    bodyparts: list[str]
    poses: np.ndarray

    def __post_init__(self) -> None:
        self.poses = np.array(self.poses, dtype=np.float64)  # own copy: tables hand out read-only views
        if self.poses.ndim != 3 or self.poses.shape[1:] != (len(self.bodyparts), 3):
            raise ValueError(f"poses shape {self.poses.shape} does not fit {len(self.bodyparts)} body parts")

    def __len__(self) -> int:
        return len(self.poses)

    @property
    def xy(self) -> np.ndarray:
        return self.poses[..., :2]

    @property
    def likelihood(self) -> np.ndarray:
        return self.poses[..., 2]

    def with_poses(self, poses: np.ndarray) -> "PoseTrack":
        return PoseTrack(self.scorer, list(self.bodyparts), poses)
