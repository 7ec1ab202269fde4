"""Frame-to-frame linking of one segment of a video into tracklets.

Why a sharded run equals a single-process run: the link between frame t-1 and frame t is a pure function
of the detections in frames t-2, t-1 and t (`links_into`). It is a gated assignment on the distances
between the poses at t-1, moved on by their velocity, and the poses at t (plus identity disagreement
where there is an identity head). The velocity comes from a plain assignment between t-2 and t-1 without
velocity, itself a function of those two frames alone, so no decision depends on an earlier decision.
A segment [start, end) is given its own frames only: it makes every link into start+2 onward, exactly
as the whole-video run does (frame start+1's velocity comes from start alone), and none into start or
start+1, which need frames before start; their detections begin tracklets of their own. It keeps the
detections of its first two and last two frames (EdgeDetections). The join (join.py) makes the links into
each segment's first two frames with this same `links_into`, from those edges (the frames t-2, t-1 may lie
one or two segments back), and continues tracklets through them. Gaps (missed detections, occlusions,
animals leaving) are bridged by the stitching, which runs once over the whole video.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Iterable

import numpy as np

from posecluster.config import TrackingConfig
from posecluster.errors import InputError
from posecluster.tracking.costs import gated_assignment, identity_disagreement, pose_distances, valid_parts
from posecluster.tracking.tracklets import (
    Tracklet, Tracklets, arrays_from_bytes, arrays_to_bytes, quantized_identity, tracklets_from_dict,
    tracklets_to_dict,
)

EDGE = 2  # frames at each end of a segment whose links the join makes (into the first two) or reads


@dataclass
class FrameDetections:
    """The animals assembled in one frame: poses (n, K, 3) x, y, likelihood with NaN for an undetected
    part; identity (n, C) identity-head probabilities or None."""

    poses: np.ndarray
    identity: np.ndarray | None = None


@dataclass
class EdgeDetections:
    """The detections of a segment's first EDGE and last EDGE frames (each frame once where they
    overlap), as linking saw them: frames (E,) increasing, counts (E,) detections per frame, poses
    (sum counts, K, 3) and identity (sum counts, C) float64 (C = 0 without an identity head)."""

    frames: np.ndarray
    counts: np.ndarray
    poses: np.ndarray
    identity: np.ndarray

    def of(self, frame: int) -> FrameDetections | None:
        """That frame's detections, None where the frame is not an edge."""
        at = np.flatnonzero(self.frames == frame)
        if not len(at):
            return None
        first = int(self.counts[: at[0]].sum())
        rows = slice(first, first + int(self.counts[at[0]]))
        return FrameDetections(self.poses[rows], self.identity[rows])

    def to_dict(self, prefix: str) -> dict[str, np.ndarray]:
        return {prefix + name: getattr(self, name) for name in ("frames", "counts", "poses", "identity")}

    @classmethod
    def from_dict(cls, arrays: dict[str, np.ndarray], prefix: str) -> "EdgeDetections":
        return cls(*(np.asarray(arrays[prefix + name]) for name in ("frames", "counts", "poses", "identity")))


@dataclass
class SegmentTracklets:
    """What tracking one segment [start, end) produces, all plain arrays (to_bytes/from_bytes for storage).

    tracklets: the segment's tracklets in the order they began (frame, then row); every detection of the
    first two frames begins one (the join links them). edges: the detections of its first and last two
    frames, what the join links across its cuts. counts, labels, poses: every detection of the segment's
    frames in frame order (counts[f] of frame start+f), with the local tracklet it belongs to (-1: no
    usable part, not tracked), to render the tracks later.
    """

    start: int
    end: int
    tracklets: Tracklets
    edges: EdgeDetections
    counts: np.ndarray
    labels: np.ndarray
    poses: np.ndarray

    def to_dict(self) -> dict[str, np.ndarray]:
        return {"start": np.int64(self.start), "end": np.int64(self.end), "counts": self.counts,
                "labels": self.labels, "poses": self.poses, **self.edges.to_dict("edges."),
                **tracklets_to_dict(self.tracklets, "tracklets.")}

    @classmethod
    def from_dict(cls, arrays: dict[str, np.ndarray]) -> "SegmentTracklets":
        return cls(int(arrays["start"]), int(arrays["end"]), tracklets_from_dict(arrays, "tracklets."),
                   EdgeDetections.from_dict(arrays, "edges."), np.asarray(arrays["counts"]),
                   np.asarray(arrays["labels"]), np.asarray(arrays["poses"]))

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
        return replace(self, start=self.start + frames, end=self.end + frames, tracklets=moved,
                       edges=replace(self.edges, frames=self.edges.frames + frames))

    @classmethod
    def from_bytes(cls, data: bytes) -> "SegmentTracklets":
        return cls.from_dict(arrays_from_bytes(data))


@dataclass
class _Frame:
    poses: np.ndarray
    ok: np.ndarray  # (n, K) parts usable in distances
    identity: np.ndarray  # (n, C), C = 0 without an identity head
    velocity_from: np.ndarray  # (n,) row in the frame before that this detection moved from, -1: none


def track_segment(frames: Iterable, start: int, end: int, config: TrackingConfig | None = None,
                  source: str = "<detections>") -> SegmentTracklets:
    """Link the detections of frames [start, end) into tracklets, except the links into start and
    start+1 (the join's: they need the frames before start).

    `frames` yields one item per frame from start to end - 1 (never earlier ones): a FrameDetections, a
    (poses, identity) pair or a poses array. `source` names the input in errors."""
    config = config or TrackingConfig()
    if not 0 <= start < end:
        raise ValueError(f"segment [{start}, {end}) is empty or negative")
    building: list[Tracklet] = []
    counts, labels, kept = [], [], []
    first_edges: list[_Frame] = []
    previous: _Frame | None = None
    before: _Frame | None = None
    previous_labels = None
    shape: tuple[int, int] | None = None
    t = start - 1
    for t, item in enumerate(frames, start):
        if t >= end:
            raise InputError(source, f"more detections than the frames [{start}, {end}) given", frame=t)
        current, shape = _frame(item, shape, config, source, t)
        links = {}
        if previous is not None:
            current.velocity_from = _velocity(previous, current, config)
            if t >= start + EDGE:
                links = _links(before, previous, current, config)
        frame_labels = np.full(len(current.poses), -1, np.int64)
        identity = quantized_identity(current.identity)
        for row in np.flatnonzero(current.ok.any(axis=1)):
            row = int(row)
            source_row = links.get(row, -1)
            if source_row >= 0 and previous_labels[source_row] >= 0:
                label = int(previous_labels[source_row])
                building[label].extend(t, row, current.poses[row], identity[row])
            else:
                label = len(building)
                building.append(Tracklet.start(t, row, current.poses[row], identity[row]))
            frame_labels[row] = label
        counts.append(len(current.poses))
        labels.append(frame_labels)
        kept.append(current.poses)
        if t < start + EDGE:
            first_edges.append(current)
        previous_labels = frame_labels
        before, previous = previous, current
    if t != end - 1:
        raise InputError(source, f"detections for frames [{start}, {t + 1}) given, [{start}, {end}) needed", frame=t + 1)
    n_keypoints, n_identities = shape
    last = [f for f in (before, previous) if f is not None][-min(EDGE, end - start):]
    edge_frames = sorted({*range(start, min(start + EDGE, end)), *range(max(end - EDGE, start), end)})
    by_frame = {**dict(zip(range(start, end), first_edges)), **dict(zip(range(end - len(last), end), last))}
    edges = [by_frame[f] for f in edge_frames]
    edge_counts = np.array([len(f.poses) for f in edges], np.int64)
    return SegmentTracklets(
        start, end, Tracklets.stack(building, n_keypoints, n_identities),
        EdgeDetections(np.array(edge_frames, np.int64), edge_counts, np.concatenate([f.poses for f in edges]),
                       np.concatenate([f.identity for f in edges]).reshape(int(edge_counts.sum()), n_identities)),
        np.array(counts, np.int64), np.concatenate(labels), np.concatenate(kept),
    )


def links_into(before: FrameDetections | None, previous: FrameDetections, current: FrameDetections, t: int,
               config: TrackingConfig | None = None, source: str = "<detections>") -> dict[int, int]:
    """The links into frame t (row at t -> row at t-1) from the detections of frames t-2 (`before`,
    None where t is 1), t-1 and t: exactly those a segment makes inside itself."""
    config = config or TrackingConfig()
    shape, earlier = None, None
    if before is not None:
        earlier, shape = _frame(before, shape, config, source, t - 2)
    last, shape = _frame(previous, shape, config, source, t - 1)
    now, _ = _frame(current, shape, config, source, t)
    if earlier is not None:
        last.velocity_from = _velocity(earlier, last, config)
    return _links(earlier, last, now, config)


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
    if identity is None:
        identity = np.zeros((len(poses), 0))
    else:
        identity = np.asarray(identity, dtype=np.float64)
        if identity.ndim != 2 or len(identity) != len(poses):
            raise InputError(source, f"identity must be (animals, individuals) for {len(poses)} animals, got shape {identity.shape}", frame=t)
        n_identities = identity.shape[1]
    if shape is not None and shape != (poses.shape[1], n_identities):
        raise InputError(source, f"{poses.shape[1]} body parts and {n_identities} identity scores, earlier frames had {shape[0]} and {shape[1]}", frame=t)
    ok = valid_parts(poses, config.min_likelihood)
    return _Frame(poses, ok, identity, np.full(len(poses), -1, np.int64)), (poses.shape[1], n_identities)


def _velocity(previous: _Frame, current: _Frame, config: TrackingConfig) -> np.ndarray:
    """For each detection at t, the row at t-1 it moved from: a plain assignment, without velocity."""
    plain = _cost(previous, previous.poses, current, config)
    return _predecessors(gated_assignment(plain, config.max_link_px), len(current.poses))


def _links(before: _Frame | None, previous: _Frame, current: _Frame, config: TrackingConfig) -> dict[int, int]:
    """row at t -> row at t-1: previous's poses moved on by their velocity, assigned to current's."""
    moved = _moved_on(previous, before)
    return {b: a for a, b in gated_assignment(_cost(previous, moved, current, config), config.max_link_px)}


def _cost(previous: _Frame, previous_poses: np.ndarray, current: _Frame, config: TrackingConfig) -> np.ndarray:
    cost = pose_distances(previous_poses, previous.ok, current.poses, current.ok)
    if previous.identity.shape[1] and config.identity_weight_px > 0:
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
