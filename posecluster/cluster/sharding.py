"""Cutting videos into segments (frame ranges starting at keyframes), output names, probe caches. Pure, no Ray.

Segments are a deterministic function of the probed video and the segment length, so a rerun (or a
retried worker) cuts a video exactly as before and finds its cached segments by name.
"""

from __future__ import annotations

import hashlib

import numpy as np

from posecluster import storage
from posecluster.data.video import VideoInfo


def short_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def segment_bounds(frame_count: int, keyframes: list[int] | np.ndarray, segment_frames: int) -> list[tuple[int, int]]:
    """Cut [0, frame_count) at keyframes into ranges of at least `segment_frames` frames.

    A cut is made at the first keyframe at or past start + segment_frames; a tail shorter than a quarter
    segment joins the previous range rather than becoming a task of its own.
    """
    if frame_count <= 0:
        return []
    cuts = sorted({int(k) for k in keyframes if 0 < k < frame_count})
    bounds, start = [], 0
    for cut in cuts:
        if cut - start >= segment_frames:
            bounds.append((start, cut))
            start = cut
    bounds.append((start, frame_count))
    if len(bounds) > 1 and bounds[-1][1] - bounds[-1][0] < segment_frames // 4:
        last = bounds.pop()
        bounds[-1] = (bounds[-1][0], last[1])
    return bounds


def save_probe(uri: str, info: VideoInfo) -> None:
    storage.atomic_write_bytes(uri, info.to_bytes())


def load_probe(uri: str, video_uri: str) -> VideoInfo:
    return VideoInfo.from_bytes(storage.read_bytes(uri), video_uri)
