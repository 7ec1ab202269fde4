"""Frame-to-frame linking of one segment of a video into tracklets.

Why a sharded run equals a single-process run: the link between frame t-1 and frame t is a pure function
of the detections in frames t-2, t-1 and t. It is a gated assignment on the distances between the poses
at t-1, moved on by their velocity, and the poses at t (plus identity disagreement where there is an
identity head). The velocity comes from a plain assignment between t-2 and t-1 without velocity, itself a
function of those two frames alone, so no decision depends on an earlier decision. A segment [start, end)
therefore reads the LINK_WINDOW frames before `start` and makes, for its own frames, exactly the links
the whole-video run makes; it records the links that cross its start (to a detection at start-1), and the
join (join.py) continues the previous segment's tracklets through them. Gaps (missed detections,
occlusions, animals leaving) are bridged by the stitching, which runs once over the whole video.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Iterable

import numpy as np

from posecluster.errors import InputError
from posecluster.tracking.costs import gated_assignment, identity_disagreement, pose_distances, valid_parts
from posecluster.config import TrackingConfig
from posecluster.tracking.tracklets import (
    Tracklet, Tracklets, arrays_from_bytes, arrays_to_bytes, quantized_identity, tracklets_from_dict,
    tracklets_to_dict,
)

LINK_WINDOW = 2  # frames before a segment's start that its links read


def warmup_start(start: int) -> int:
    """The first frame whose detections a segment starting at `start` must be given."""
    return max(0, start - LINK_WINDOW)


@dataclass
class FrameDetections:
    """The animals assembled in one frame: poses (n, K, 3) x, y, likelihood with NaN for an undetected
    part; identity (n, C) identity-head probabilities or None."""

    poses: np.ndarray
    identity: np.ndarray | None = None


@dataclass
class SegmentTracklets:
    """What tracking one segment [start, end) produces, all plain arrays (to_bytes/from_bytes for storage).

    tracklets: the segment's tracklets in the order they began (frame, then row). start_link: for each
    tracklet, the row of the detection at frame start-1 it continues (-1: it starts here). counts,
    labels, poses: every detection of the segment's frames in frame order (counts[f] of frame start+f),
    with the local tracklet it belongs to (-1: no usable part, not tracked), to render the tracks later.
    """

    start: int
    end: int
    tracklets: Tracklets
    start_link: np.ndarray
    counts: np.ndarray
    labels: np.ndarray
    poses: np.ndarray

    def to_dict(self) -> dict[str, np.ndarray]:
        return {"start": np.int64(self.start), "end": np.int64(self.end), "start_link": self.start_link,
                "counts": self.counts, "labels": self.labels, "poses": self.poses,
                **tracklets_to_dict(self.tracklets, "tracklets.")}

    @classmethod
    def from_dict(cls, arrays: dict[str, np.ndarray]) -> "SegmentTracklets":
        return cls(int(arrays["start"]), int(arrays["end"]), tracklets_from_dict(arrays, "tracklets."),
                   np.asarray(arrays["start_link"]), np.asarray(arrays["counts"]), np.asarray(arrays["labels"]),
                   np.asarray(arrays["poses"]))

    def to_bytes(self) -> bytes:
        return arrays_to_bytes(self.to_dict())

    def shifted(self, frames: int) -> "SegmentTracklets":
        """The same segment with its frames numbered `frames` later (a piece linked before its place in
        the video was known: frame numbers are the only thing in it that depend on where it lies)."""
        if not frames:
            return self
        t = self.tracklets
        moved = replace(t, first_frame=t.first_frame + frames, last_frame=t.last_frame + frames,
                        head_frames=np.where(t.head_frames >= 0, t.head_frames + frames, -1),
                        tail_frames=np.where(t.tail_frames >= 0, t.tail_frames + frames, -1))
        return replace(self, start=self.start + frames, end=self.end + frames, tracklets=moved)

    @classmethod
    def from_bytes(cls, data: bytes) -> "SegmentTracklets":
        return cls.from_dict(arrays_from_bytes(data))


@dataclass
class _Frame:
    poses: np.ndarray
    ok: np.ndarray  # (n, K) parts usable in distances
    identity: np.ndarray | None
    velocity_from: np.ndarray  # (n,) row in the frame before that this detection moved from, -1: none


def track_segment(frames: Iterable, start: int, end: int, config: TrackingConfig | None = None,
                  source: str = "<detections>") -> SegmentTracklets:
    """Link the detections of frames [start, end) into tracklets.

    `frames` yields one item per frame from warmup_start(start) to end - 1: a FrameDetections, a
    (poses, identity) pair or a poses array. `source` names the input in errors."""
    config = config or TrackingConfig()
    if not 0 <= start < end:
        raise ValueError(f"segment [{start}, {end}) is empty or negative")
    first = warmup_start(start)
    building: list[Tracklet] = []
    start_link: list[int] = []
    counts, labels, kept = [], [], []
    previous: _Frame | None = None
    before: _Frame | None = None
    previous_labels = None
    shape: tuple[int, int] | None = None
    t = first - 1
    for t, item in enumerate(frames, first):
        if t >= end:
            raise InputError(source, f"more detections than the frames [{first}, {end}) given", frame=t)
        current, shape = _frame(item, shape, config, source, t)
        links = {}
        if previous is not None:
            plain = _cost(previous, previous.poses, current, config)
            current.velocity_from = _predecessors(gated_assignment(plain, config.max_link_px), len(current.poses))
            if t >= start:
                moved = _moved_on(previous, before)
                links = dict((b, a) for a, b in gated_assignment(_cost(previous, moved, current, config), config.max_link_px))
        if t >= start:
            frame_labels = np.full(len(current.poses), -1, np.int64)
            identity = quantized_identity(current.identity) if current.identity is not None else np.zeros((len(current.poses), 0), np.int64)
            for row in np.flatnonzero(current.ok.any(axis=1)):
                row = int(row)
                source_row = links.get(row, -1)
                if source_row >= 0 and previous_labels is not None and previous_labels[source_row] >= 0:
                    label = int(previous_labels[source_row])
                    building[label].extend(t, row, current.poses[row], identity[row])
                else:
                    label = len(building)
                    building.append(Tracklet.start(t, row, current.poses[row], identity[row]))
                    start_link.append(source_row if t == start else -1)
                frame_labels[row] = label
            counts.append(len(current.poses))
            labels.append(frame_labels)
            kept.append(current.poses)
            previous_labels = frame_labels
        before, previous = previous, current
    if t != end - 1:
        raise InputError(source, f"detections for frames [{first}, {t + 1}) given, [{first}, {end}) needed", frame=t + 1)
    n_keypoints, n_identities = shape
    return SegmentTracklets(
        start, end, Tracklets.stack(building, n_keypoints, n_identities), np.array(start_link, np.int64),
        np.array(counts, np.int64), np.concatenate(labels), np.concatenate(kept),
    )


def _frame(item, shape, config: TrackingConfig, source: str, t: int):
    if isinstance(item, FrameDetections):
        poses, identity = item.poses, item.identity
    elif isinstance(item, tuple):
        poses, identity = item
    else:
        poses, identity = item, None
    poses = np.asarray(poses, dtype=np.float64)
    if poses.ndim != 3 or poses.shape[2] != 3:
        raise InputError(source, f"poses must be (animals, body parts, 3), got shape {poses.shape}", frame=t)
    n_identities = 0
    if identity is not None:
        identity = np.asarray(identity, dtype=np.float64)
        if identity.ndim != 2 or len(identity) != len(poses):
            raise InputError(source, f"identity must be (animals, individuals) for {len(poses)} animals, got shape {identity.shape}", frame=t)
        n_identities = identity.shape[1]
    if shape is not None and shape != (poses.shape[1], n_identities):
        raise InputError(source, f"{poses.shape[1]} body parts and {n_identities} identity scores, earlier frames had {shape[0]} and {shape[1]}", frame=t)
    ok = valid_parts(poses, config.min_likelihood)
    return _Frame(poses, ok, identity, np.full(len(poses), -1, np.int64)), (poses.shape[1], n_identities)


def _cost(previous: _Frame, previous_poses: np.ndarray, current: _Frame, config: TrackingConfig) -> np.ndarray:
    cost = pose_distances(previous_poses, previous.ok, current.poses, current.ok)
    if previous.identity is not None and previous.identity.shape[1] and config.identity_weight_px > 0:
        cost = cost + config.identity_weight_px * identity_disagreement(
            np.nan_to_num(previous.identity), np.nan_to_num(current.identity))
    return cost


def _moved_on(previous: _Frame, before: _Frame | None) -> np.ndarray:
    """previous's poses moved on by one frame of their velocity (parts seen in both frames)."""
    moved = previous.poses.copy()
    rows = np.flatnonzero(previous.velocity_from >= 0)
    if before is None or len(rows) == 0:
        return moved
    origin = previous.velocity_from[rows]
    both = previous.ok[rows] & before.ok[origin]
    step = previous.poses[rows, :, :2] - before.poses[origin, :, :2]
    moved[rows, :, :2] += np.where(both[..., None], step, 0.0)
    return moved


def _predecessors(pairs: list[tuple[int, int]], n: int) -> np.ndarray:
    out = np.full(n, -1, np.int64)
    for a, b in pairs:
        out[b] = a
    return out
