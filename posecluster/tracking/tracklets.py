"""Tracklets as plain arrays: what a segment hands to the join, and what the stitching reads.

A tracklet is a chain of detections linked frame to frame. Its summary keeps only what stitching needs:
where and when it starts and ends (the first and last ENDS detections, for a velocity), how many
detections it has and its summed identity scores, so a whole video's tracklets stay small. Identity sums
are integers (probabilities in 1/65536 units): integer addition does not depend on the order of the
pieces, so a tracklet joined from several segments has the same summary as one tracked in one piece.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, fields

import numpy as np

ENDS = 4  # detections kept at each end of a tracklet: its velocity is their mean step
IDENTITY_UNITS = 65536  # identity probabilities are summed as integers of 1/65536


def quantized_identity(identity: np.ndarray) -> np.ndarray:
    return np.rint(np.nan_to_num(identity, nan=0.0) * IDENTITY_UNITS).astype(np.int64)


@dataclass
class Tracklets:
    """m tracklets, one row each. A tracklet's key, (first_frame, first_index), names its first detection
    (frame, row in that frame's detections) and is the same in a sharded and a single-process run."""

    first_frame: np.ndarray  # (m,) int64
    first_index: np.ndarray  # (m,) int64
    last_frame: np.ndarray  # (m,) int64
    last_index: np.ndarray  # (m,) int64
    detections: np.ndarray  # (m,) int64
    head_frames: np.ndarray  # (m, ENDS) int64, -1 where the tracklet is shorter
    head_poses: np.ndarray  # (m, ENDS, K, 3) float64, NaN where shorter
    tail_frames: np.ndarray  # (m, ENDS) int64: the last ENDS detections in time order
    tail_poses: np.ndarray  # (m, ENDS, K, 3)
    identity: np.ndarray  # (m, C) int64 summed identity scores (C = 0 without an identity head)

    def __len__(self) -> int:
        return len(self.first_frame)

    @classmethod
    def empty(cls, n_keypoints: int, n_identities: int) -> "Tracklets":
        i = np.zeros((0,), np.int64)
        ends = np.zeros((0, ENDS), np.int64)
        poses = np.zeros((0, ENDS, n_keypoints, 3))
        return cls(i, i, i, i, i, ends, poses, ends, poses, np.zeros((0, n_identities), np.int64))

    @classmethod
    def stack(cls, rows: list["Tracklet"], n_keypoints: int, n_identities: int) -> "Tracklets":
        if not rows:
            return cls.empty(n_keypoints, n_identities)
        return cls(
            np.array([r.first_frame for r in rows], np.int64), np.array([r.first_index for r in rows], np.int64),
            np.array([r.last_frame for r in rows], np.int64), np.array([r.last_index for r in rows], np.int64),
            np.array([r.detections for r in rows], np.int64),
            np.stack([r.head_frames for r in rows]), np.stack([r.head_poses for r in rows]),
            np.stack([r.tail_frames for r in rows]), np.stack([r.tail_poses for r in rows]),
            np.stack([r.identity for r in rows]).reshape(len(rows), n_identities),
        )

    @staticmethod
    def field_names() -> list[str]:
        return [f.name for f in fields(Tracklets)]

    def take(self, rows: np.ndarray) -> "Tracklets":
        """The tracklets at `rows` (indices or a mask), copied."""
        return Tracklets(**{name: getattr(self, name)[rows] for name in self.field_names()})

    def row(self, i: int) -> "Tracklet":
        return Tracklet(int(self.first_frame[i]), int(self.first_index[i]), int(self.last_frame[i]),
                        int(self.last_index[i]), int(self.detections[i]), self.head_frames[i].copy(),
                        self.head_poses[i].copy(), self.tail_frames[i].copy(), self.tail_poses[i].copy(),
                        self.identity[i].copy())


@dataclass
class Tracklet:
    """One tracklet while it is being built or joined (mutable; arrays as in Tracklets' rows)."""

    first_frame: int
    first_index: int
    last_frame: int
    last_index: int
    detections: int
    head_frames: np.ndarray
    head_poses: np.ndarray
    tail_frames: np.ndarray
    tail_poses: np.ndarray
    identity: np.ndarray

    @classmethod
    def start(cls, frame: int, index: int, pose: np.ndarray, identity: np.ndarray) -> "Tracklet":
        frames = np.full(ENDS, -1, np.int64)
        frames[0] = frame
        poses = np.full((ENDS, *pose.shape), np.nan)
        poses[0] = pose
        return cls(frame, index, frame, index, 1, frames, poses, frames.copy(), poses.copy(), identity.copy())

    def extend(self, frame: int, index: int, pose: np.ndarray, identity: np.ndarray) -> None:
        if self.detections < ENDS:
            self.head_frames[self.detections] = frame
            self.head_poses[self.detections] = pose
        count = min(self.detections, ENDS)
        if count == ENDS:  # shift the tail window by one
            self.tail_frames[:-1] = self.tail_frames[1:]
            self.tail_poses[:-1] = self.tail_poses[1:]
            count -= 1
        self.tail_frames[count] = frame
        self.tail_poses[count] = pose
        self.last_frame, self.last_index = frame, index
        self.detections += 1
        self.identity += identity

    def append(self, later: "Tracklet") -> None:
        """Continue this tracklet with `later`, which starts on the frame after this one ends."""
        head_frames = np.concatenate([self.head_frames[self.head_frames >= 0], later.head_frames[later.head_frames >= 0]])
        head_poses = np.concatenate([self.head_poses[self.head_frames >= 0], later.head_poses[later.head_frames >= 0]])
        tail_frames = np.concatenate([self.tail_frames[self.tail_frames >= 0], later.tail_frames[later.tail_frames >= 0]])
        tail_poses = np.concatenate([self.tail_poses[self.tail_frames >= 0], later.tail_poses[later.tail_frames >= 0]])
        n_head = min(len(head_frames), ENDS)
        self.head_frames[:n_head], self.head_poses[:n_head] = head_frames[:n_head], head_poses[:n_head]
        n_tail = min(len(tail_frames), ENDS)
        self.tail_frames[:] = -1
        self.tail_poses[:] = np.nan
        self.tail_frames[:n_tail], self.tail_poses[:n_tail] = tail_frames[-n_tail:], tail_poses[-n_tail:]
        self.last_frame, self.last_index = later.last_frame, later.last_index
        self.detections += later.detections
        self.identity = self.identity + later.identity


def arrays_to_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def arrays_from_bytes(data: bytes) -> dict[str, np.ndarray]:
    with np.load(io.BytesIO(data), allow_pickle=False) as npz:
        return {name: npz[name] for name in npz.files}


def tracklets_to_dict(tracklets: Tracklets, prefix: str = "") -> dict[str, np.ndarray]:
    return {prefix + name: getattr(tracklets, name) for name in Tracklets.field_names()}


def tracklets_from_dict(arrays: dict[str, np.ndarray], prefix: str = "") -> Tracklets:
    return Tracklets(**{name: np.asarray(arrays[prefix + name]) for name in Tracklets.field_names()})
