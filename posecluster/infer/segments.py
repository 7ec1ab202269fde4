"""Segments of a video: predicted on their own, stored atomically, joined into one pose table per video.

Runs without Ray; posecluster.cluster places these calls on workers.
"""

from __future__ import annotations

import io
import json
from dataclasses import asdict, dataclass, field

import numpy as np

from posecluster import storage
from posecluster.data.formats.poses import PoseTableWriter
from posecluster.data.video import VideoInfo
from posecluster.infer.pipeline import RangeResult, predict_range
from posecluster.infer.predictor import Predictor


@dataclass(kw_only=True)
class SegmentResult(RangeResult):
    """A predicted frame range of one video: what predict_range measured, plus where it lies."""

    video_uri: str
    start: int
    stop: int
    # How the video is read (rotation, numbering, notes) and its damage warnings: written into _meta.json
    # by the join, which never probes the video itself.
    video: dict = field(default_factory=dict)


def video_facts(info: VideoInfo) -> dict:
    return {"rotation": info.rotation, "frame_numbering": info.numbering, "video_notes": list(info.notes),
            "warnings": list(info.warnings), "clock_jumps": info.clock_jumps()}


def predict_segment(predictor: Predictor, info: VideoInfo, start: int, stop: int,
                    on_batch=None, source=None) -> tuple[np.ndarray, SegmentResult]:
    """Poses (stop-start, K, 3) with NaN rows for frames that could not be decoded."""
    # (frames, parts, 3); an ensemble's (frames, members, parts, 3): its join smooths the members.
    poses = np.full((stop - start, *predictor.output_shape), np.nan, dtype=np.float32)

    def sink(first: int, chunk: np.ndarray) -> None:
        poses[first - start : first - start + len(chunk)] = chunk

    ranged = predict_range(predictor, info, start, stop, sink, on_batch=on_batch, source=source)
    return poses, SegmentResult(video_uri=storage.redact_uri(info.uri), start=start, stop=stop, video=video_facts(info), **asdict(ranged))


def write_segment(uri: str, poses: np.ndarray, result: SegmentResult) -> None:
    buffer = io.BytesIO()
    meta = json.dumps(asdict(result)).encode()
    np.savez(buffer, poses=poses, meta=np.frombuffer(meta, dtype=np.uint8))
    storage.atomic_write_bytes(uri, buffer.getvalue())


def read_segment(uri: str) -> tuple[np.ndarray, SegmentResult]:
    with np.load(io.BytesIO(storage.read_bytes(uri))) as data:
        raw = json.loads(data["meta"].tobytes().decode())
        raw["missing"] = {int(k): v for k, v in raw["missing"].items()}
        # Segments written before SegmentResult shared RangeResult's fields (resumed jobs may hold some).
        raw.setdefault("frames", raw.pop("frames_predicted", 0))
        raw.pop("skipped", None)
        return data["poses"], SegmentResult(**raw)


def read_segments(segment_uris: list[str], frame_count: int, base_uri: str):
    """Yield (poses, SegmentResult) of each segment in frame order, one at a time, checking that they
    tile [0, frame_count) without gap or overlap."""
    expected = 0
    for uri in segment_uris:
        poses, result = read_segment(uri)
        if result.start != expected:
            raise ValueError(f"{uri}: segment starts at frame {result.start}, expected {expected}")
        yield poses, result
        expected = result.stop
    if expected != frame_count:
        raise ValueError(f"{base_uri}: segments cover {expected} of {frame_count} frames")


def join_segments(segment_uris: list[str], scorer: str, bodyparts: list[str], frame_count: int,
                  base_uri: str, formats: tuple[str, ...] = ()) -> tuple[dict[str, str], dict[int, str], dict]:
    """Stream the segments (in frame order) into one table with global frame indices; publish it whole.

    Returns the outputs, the frames missing across all segments and the video's facts (video_facts) as
    the first segment recorded them. Only one segment is in memory at a time, so joining is flat in
    video length too.
    """
    missing: dict[int, str] = {}
    facts: dict = {}
    with storage.scratch_dir() as scratch:
        writer = PoseTableWriter(scorer, bodyparts, scratch, formats=formats)
        try:
            for poses, result in read_segments(segment_uris, frame_count, base_uri):
                writer.append(result.start, poses.astype(np.float64))
                missing.update(result.missing)
                facts = facts or result.video
            outputs = writer.publish(base_uri)
        finally:
            writer.close()
    return outputs, missing, facts
