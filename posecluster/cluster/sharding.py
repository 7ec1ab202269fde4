"""Planning an archive run: videos cut into segments (frame ranges starting at keyframes). Pure, no Ray.

The plan is a deterministic function of the probed videos and the segment length, saved with the job;
segment and output keys come from the video's identity (URI + size + etag/mtime) and the model's
identity, so a changed video or model is recomputed and nothing else is.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass

import numpy as np

from posecluster import storage
from posecluster.data.video import VideoInfo
from posecluster.infer.naming import relative_names  # noqa: F401  (re-exported: output names have one owner)


def short_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Segment:
    video_uri: str
    video_key: str  # hash of the video's identity
    start: int
    stop: int

    @property
    def frames(self) -> int:
        return self.stop - self.start

    @property
    def name(self) -> str:
        return f"{self.start:09d}-{self.stop:09d}"


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


def plan_video(video_uri: str, video_key: str, info: VideoInfo, segment_frames: int) -> list[Segment]:
    return [
        Segment(video_uri=video_uri, video_key=video_key, start=a, stop=b)
        for a, b in segment_bounds(info.frame_count, info.keyframes, segment_frames)
    ]


def plan_to_json(segments: list[Segment], extra: dict) -> bytes:
    return json.dumps({**extra, "segments": [asdict(s) for s in segments]}, indent=1).encode()


def save_probe(uri: str, info: VideoInfo) -> None:
    storage.atomic_write_bytes(uri, info.to_bytes())


def load_probe(uri: str, video_uri: str) -> VideoInfo:
    return VideoInfo.from_bytes(storage.read_bytes(uri), video_uri)
