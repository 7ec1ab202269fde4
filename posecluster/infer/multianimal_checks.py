"""Checks on a stored multi-animal segment before any of its numbers is used as an index.

A segment file (`<piece>.npz` of an archive job, `<base>_tracklets.npz` beside an analysed table) is
reused by reruns and joins; it may be damaged (a truncated upload, a disk error) or crafted. Joining and
stitching index arrays by the numbers it holds (a detection's tracklet, a tracklet's first detection, a
frame's detection count), so every such number is checked against the arrays it points into here, and a
file that fails says which file and which frame or row (an InputError), instead of an IndexError deep in
the join or, worse, a table silently built from wrong rows.
"""

from __future__ import annotations

import numpy as np

from posecluster.errors import InputError
from posecluster.tracking import SegmentTracklets
from posecluster.tracking.costs import valid_parts
from posecluster.tracking.linking import EDGE
from posecluster.tracking.tracklets import ENDS

_INTEGERS = ("first_frame", "first_index", "last_frame", "last_index", "detections", "head_frames", "tail_frames",
             "identity")
_FLOATS = ("head_poses", "tail_poses")


def _integer(array: np.ndarray, name: str, source: str) -> None:
    if array.dtype.kind not in "iu":
        raise InputError(source, f"{name} must hold integers, found {array.dtype}")


def _float(array: np.ndarray, name: str, source: str) -> None:
    if array.dtype.kind != "f":
        raise InputError(source, f"{name} must hold floating-point numbers, found {array.dtype}")


def _shape(array: np.ndarray, expected: tuple, name: str, source: str) -> None:
    """`expected` may hold None for a free dimension."""
    if array.ndim != len(expected) or any(e is not None and e != s for s, e in zip(array.shape, expected)):
        shown = ", ".join("*" if e is None else str(e) for e in expected)
        raise InputError(source, f"{name} has shape {array.shape}, expected ({shown})")


def _first_bad(mask: np.ndarray) -> int:
    return int(np.flatnonzero(mask)[0])


def check_tracklets(segment: SegmentTracklets, source: str, with_detections: bool) -> None:
    """The segment's tracklet summaries (and its detections, `with_detections`) are consistent: shapes
    agree, every frame lies in [start, end), every index points at an existing row."""
    start, end = segment.start, segment.end
    if not 0 <= start < end:
        raise InputError(source, f"segment [{start}, {end}) is empty or negative")
    t = segment.tracklets
    for name in _INTEGERS:
        _integer(getattr(t, name), f"tracklets.{name}", source)
    for name in _FLOATS:
        _float(getattr(t, name), f"tracklets.{name}", source)
    m = len(t.first_frame)
    for name in ("first_frame", "first_index", "last_frame", "last_index", "detections"):
        _shape(getattr(t, name), (m,), f"tracklets.{name}", source)
    _shape(t.head_frames, (m, ENDS), "tracklets.head_frames", source)
    _shape(t.tail_frames, (m, ENDS), "tracklets.tail_frames", source)
    _shape(t.head_poses, (m, ENDS, None, 3), "tracklets.head_poses", source)
    keypoints = t.head_poses.shape[2]
    _shape(t.tail_poses, (m, ENDS, keypoints, 3), "tracklets.tail_poses", source)
    _shape(t.identity, (m, None), "tracklets.identity", source)
    _integer(segment.counts, "counts", source)
    _shape(segment.counts, (end - start,), "counts", source)
    if (segment.counts < 0).any():
        raise InputError(source, "negative detection count", frame=start + _first_bad(segment.counts < 0))

    outside = (t.first_frame < start) | (t.last_frame >= end) | (t.first_frame > t.last_frame)
    if outside.any():
        i = _first_bad(outside)
        raise InputError(source, f"tracklet {i} spans frames [{t.first_frame[i]}, {t.last_frame[i]}] outside the "
                                 f"segment's [{start}, {end})", row=i)
    for name, frames, index in (("first", t.first_frame, t.first_index), ("last", t.last_frame, t.last_index)):
        bad = (index < 0) | (index >= segment.counts[frames - start])
        if bad.any():
            i = _first_bad(bad)
            raise InputError(source, f"tracklet {i}'s {name} detection is row {index[i]} of a frame with "
                                     f"{segment.counts[frames[i] - start]} detections", row=i, frame=int(frames[i]))
    if (t.detections < 1).any() or (t.detections > t.last_frame - t.first_frame + 1).any():
        i = _first_bad((t.detections < 1) | (t.detections > t.last_frame - t.first_frame + 1))
        raise InputError(source, f"tracklet {i} has {t.detections[i]} detections over frames "
                                 f"[{t.first_frame[i]}, {t.last_frame[i]}]", row=i)
    for name, frames in (("head", t.head_frames), ("tail", t.tail_frames)):
        kept = frames >= 0
        bad = (frames < -1) | (kept & ((frames < t.first_frame[:, None]) | (frames > t.last_frame[:, None])))
        bad |= ~kept.any(axis=1)[:, None]  # stitching reads the first and the last kept entry of each row,
        bad[:, 1:] |= kept[:, 1:] & ~kept[:, :-1]  # which are its leading entries
        if bad.any():
            i = _first_bad(bad.any(axis=1))
            raise InputError(source, f"tracklet {i}'s {name} frames {frames[i].tolist()} lie outside its frames "
                                     f"[{t.first_frame[i]}, {t.last_frame[i]}]", row=i)
    if (t.head_frames[:, 0] != t.first_frame).any():
        i = _first_bad(t.head_frames[:, 0] != t.first_frame)
        raise InputError(source, f"tracklet {i}'s head does not start at its first frame {t.first_frame[i]}", row=i)
    _check_edge_arrays(segment, source)
    if not with_detections:
        return

    total = int(segment.counts.sum())
    _integer(segment.labels, "labels", source)
    _shape(segment.labels, (total,), "labels (one per detection counted)", source)
    _float(segment.poses, "poses", source)
    _shape(segment.poses, (total, keypoints, 3), "poses (one per detection counted)", source)
    bad = (segment.labels < -1) | (segment.labels >= m)
    if bad.any():
        row = _first_bad(bad)
        frame = start + int(np.searchsorted(np.cumsum(segment.counts), row, side="right"))
        raise InputError(source, f"detection {row} belongs to tracklet {segment.labels[row]}, but the segment "
                                 f"has {m} tracklets", frame=frame)
    first_row = np.concatenate([[0], np.cumsum(segment.counts)])
    edges = segment.edges
    for frame in edges.frames.tolist():
        stored = edges.of(frame).poses
        detected = segment.poses[first_row[frame - start]: first_row[frame - start + 1]]
        if not np.array_equal(stored, detected, equal_nan=True):
            raise InputError(source, "the edge detections are not the detections of their frame", frame=frame)


def _edge_frames(start: int, end: int) -> list[int]:
    return sorted({*range(start, min(start + EDGE, end)), *range(max(end - EDGE, start), end)})


def _check_edge_arrays(segment: SegmentTracklets, source: str) -> None:
    """The edge detections are those of the segment's first and last EDGE frames, counted as its frames."""
    edges, start = segment.edges, segment.start
    for name in ("frames", "counts"):
        _integer(getattr(edges, name), f"edges.{name}", source)
    for name in ("poses", "identity"):
        _float(getattr(edges, name), f"edges.{name}", source)
    expected = _edge_frames(start, segment.end)
    if edges.frames.tolist() != expected:
        raise InputError(source, f"edge frames {edges.frames.tolist()}, expected {expected}", frame=start)
    _shape(edges.counts, (len(expected),), "edges.counts", source)
    wrong = edges.counts != segment.counts[edges.frames - start]
    if wrong.any():
        frame = int(edges.frames[_first_bad(wrong)])
        raise InputError(source, f"{edges.counts[_first_bad(wrong)]} edge detections, the frame counts "
                                 f"{segment.counts[frame - start]}", frame=frame)
    total = int(edges.counts.sum())
    t = segment.tracklets
    _shape(edges.poses, (total, t.head_poses.shape[2], 3), "edges.poses", source)
    _shape(edges.identity, (total, t.identity.shape[1]), "edges.identity", source)


def check_edges(segment: SegmentTracklets, source: str, min_likelihood: float) -> None:
    """The tracklets agree with the edge detections the join links (arrays checked by check_tracklets):
    each usable detection of the first EDGE frames begins a tracklet, each of the last frame ends one.
    `min_likelihood`: the tracking setting the segments were linked with."""
    t = segment.tracklets
    first = range(segment.start, min(segment.start + EDGE, segment.end))
    ends = [(frame, t.first_frame, t.first_index, "begins") for frame in first]
    ends.append((segment.end - 1, t.last_frame, t.last_index, "ends"))
    for frame, frames, rows, verb in ends:
        detections = segment.edges.of(frame)
        usable = np.flatnonzero(valid_parts(detections.poses, min_likelihood).any(axis=1)).tolist()
        tracked = sorted(rows[frames == frame].tolist())
        if tracked != usable:
            raise InputError(source, f"the usable detections {usable} of an edge frame, but tracklets {verb} on "
                                     f"detections {tracked}", frame=frame)


def check_names(segment: SegmentTracklets, unique: np.ndarray, bodyparts: int, unique_bodyparts: int,
                identities: int | None, source: str, with_detections: bool) -> None:
    """The segment has the model's body parts, unique parts and identity columns (`identities` None: the
    first segment's number, not yet known)."""
    keypoints = segment.tracklets.head_poses.shape[2]
    if keypoints != bodyparts:
        raise InputError(source, f"detections of {keypoints} body parts, the table has {bodyparts}")
    columns = segment.tracklets.identity.shape[1]
    if identities is not None and columns != identities:
        raise InputError(source, f"{columns} identity columns, the segments before have {identities}")
    if with_detections:
        _float(unique, "unique", source)
        _shape(unique, (segment.end - segment.start, unique_bodyparts, 3), "unique", source)
