"""Segments of a video: stored atomically, joined into one pose table per video (predicted by
infer.pipeline.predict_segment). Runs without Ray and without torch: a join process needs neither.
"""

from __future__ import annotations

import io
import json
from dataclasses import asdict, dataclass, field, replace

import numpy as np

from posecluster import storage
from posecluster.data.formats.poses import PoseTableWriter
from posecluster.data.numbering import WRAP
from posecluster.data.video import VideoInfo
from posecluster.infer.results import RangeResult


@dataclass(kw_only=True)
class SegmentResult(RangeResult):
    """A predicted piece of one video: what predict_frames measured, plus where it lies.

    `relative`: the piece's frame indices (start/stop, missing frames, sizes, clock jumps) count from the
    piece's own first frame, because where it lies was not known when it was read (spans between a
    Matroska file's cues): the join places it after the pieces before it (prefix sums)."""

    video_uri: str
    start: int
    stop: int
    relative: bool = False
    # How the video is read (rotation, numbering, notes) and its damage warnings: written into _meta.json
    # by the join, which never probes the video itself.
    video: dict = field(default_factory=dict)

    def placed_at(self, first: int) -> "SegmentResult":
        """This piece with its frames numbered from `first` (a relative piece placed by the join)."""
        if not self.relative:
            return self
        shift = first - self.start
        return replace(self, start=first, stop=self.stop + shift, relative=False,
                       missing={k + shift: v for k, v in self.missing.items()},
                       sizes=[[f + shift, *rest] for f, *rest in self.sizes],
                       jumps=[[f + shift, *rest] for f, *rest in self.jumps])


def video_facts(info: VideoInfo) -> dict:
    return {"rotation": info.rotation, "frame_numbering": info.numbering, "video_notes": list(info.notes),
            "warnings": list(info.warnings), "clock_jumps": info.clock_jumps()}


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


def read_segments(segment_uris: list[str], frame_count: int | None, base_uri: str):
    """Yield (poses, SegmentResult) of each segment in frame order, one at a time, numbered globally
    (relative pieces placed after the ones before them), checking that they tile [0, frame_count)
    without gap or overlap (`frame_count` None: as far as they go)."""
    expected = 0
    for uri in segment_uris:
        poses, result = read_segment(uri)
        result = result.placed_at(expected)
        if result.start != expected:
            raise ValueError(f"{uri}: segment starts at frame {result.start}, expected {expected}")
        yield poses, result
        expected = result.stop
    if frame_count is not None and expected != frame_count:
        raise ValueError(f"{base_uri}: segments cover {expected} of {frame_count} frames")


@dataclass
class Joined:
    """What a join found across a video's segments, for its `_meta.json`."""

    missing: dict[int, str] = field(default_factory=dict)
    facts: dict = field(default_factory=dict)  # video_facts, as the first segment recorded them
    bounds: list[tuple[int, int]] = field(default_factory=list)  # global frame range of each segment
    sizes: list = field(default_factory=list)
    jumps: list = field(default_factory=list)
    outputs: dict[str, str] = field(default_factory=dict)
    table_sha256: str | None = None  # the published h5's, hashed before upload
    # Frames predicted by each arithmetic (fp32, bf16, int8...): workers choose by their own hardware.
    precision: dict[str, int] = field(default_factory=dict)
    rechecked: int = 0  # of those, frames (an ensemble's: member frames) predicted again more exactly
    # auto's reduced path checked on the video (infer.verify), by the first frame of the range checked:
    # a segment's own record; a one-pass read's windows carry its record so far, the last one wins.
    checks: dict[int, dict] = field(default_factory=dict)

    def add(self, result: SegmentResult) -> None:
        self.missing.update(result.missing)
        self.facts = self.facts or dict(result.video)
        self.bounds.append((result.start, result.stop))
        for first, *size in result.sizes:
            if not self.sizes or self.sizes[-1][1:] != size:
                self.sizes.append([first, *size])
        self.jumps += result.jumps
        if result.check:
            self.checks[result.check["start"]] = result.check
        if result.frames:
            path = result.precision or "unrecorded"  # segments cached by a posecluster before 22
            by_path = result.check.get("frames_by_path") if result.check and not result.check.get("window") else None
            for path, frames in (by_path or {path: result.frames}).items():
                self.precision[path] = self.precision.get(path, 0) + frames
            self.rechecked += result.rechecked

    @property
    def frames(self) -> int:
        return self.bounds[-1][1] if self.bounds else 0

    def meta(self) -> dict:
        """The video's facts with the sizes and clock jumps the segments saw (a one-pass read learns them
        as it goes; a planned read's come with the plan)."""
        facts = dict(self.facts)
        facts["frame_sizes"] = [{"frame": int(f), "width": int(w), "height": int(h)} for f, w, h in self.sizes]
        if self.jumps:
            facts["clock_jumps"] = [{"frame": int(f), "from_pts": int(a), "to_pts": int(b),
                                     "kind": "wrap" if k == WRAP else "jump"} for f, a, b, k in self.jumps]
        facts["precision"] = {"frames_by_path": dict(self.precision), "rechecked_frames": self.rechecked}
        if self.checks:
            checks = list(self.checks.values())
            facts["precision"]["video_checks"] = checks
            facts["precision"]["fell_back"] = any(check["fell_back"] for check in checks)
        return facts


def join_segments(segment_uris: list[str], scorer: str, bodyparts: list[str], frame_count: int | None,
                  base_uri: str, formats: tuple[str, ...] = ()) -> Joined:
    """Stream the segments (in frame order) into one table with global frame indices; publish it whole.

    Only one segment is in memory at a time, so joining is flat in video length too.
    """
    joined = Joined()
    with storage.scratch_dir() as scratch:
        writer = PoseTableWriter(scorer, bodyparts, scratch, formats=formats)
        try:
            for poses, result in read_segments(segment_uris, frame_count, base_uri):
                writer.append(result.start, poses.astype(np.float64))
                joined.add(result)
            joined.outputs = writer.publish(base_uri)
            joined.table_sha256 = writer.table_sha256
        finally:
            writer.close()
    return joined
