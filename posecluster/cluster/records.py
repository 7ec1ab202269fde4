"""What an archive job reports: its options' outcome per video and per segment, and the job as a whole.

A room of its own so that the entry point (archive.py), the loop (schedule.py) and the readers of job
results share these records without importing each other.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from posecluster.storage import redact_uri


def frame_ranges(frames) -> str:
    """[3, 4, 5, 9] -> "3-5,9": missing frames listed compactly, whatever their number."""
    frames = sorted(int(f) for f in frames)
    runs: list[str] = []
    start = prev = None
    for frame in frames + [None]:
        if frame is not None and prev is not None and frame == prev + 1:
            prev = frame
            continue
        if start is not None:
            runs.append(f"{start}-{prev}" if prev != start else f"{start}")
        start = prev = frame
    return ",".join(runs)


@dataclass
class SegmentRecord:
    start: int
    stop: int
    status: str = "pending"  # pending, done, cached
    attempts: int = 0
    seconds: float = 0.0
    fps: float = 0.0
    missing_frames: int = 0


@dataclass
class VideoRecord:
    uri: str  # as the user named it; manifests and logs carry storage.redact_uri(uri)
    status: str = "pending"  # pending, joining, then done, done-with-warnings, skipped, failed
    video_key: str = ""
    frames: int = 0
    outputs: dict[str, str] = field(default_factory=dict)
    missing: str = ""  # frames the table holds as NaN rows, as ranges ("3-5,9"): compact whatever the damage
    missing_count: int = 0
    error: str = ""
    # Why an earlier table of this video was not reused ("model changed", "video changed", "table
    # missing", ...); empty for a video no job had done before.
    recomputed: str = ""
    compute_seconds: float = 0.0
    planned_at: float = 0.0  # when its segments were known (unix time)
    first_segment_at: float = 0.0  # when the driver saw its first computed segment
    finished_at: float = 0.0
    segments: list[SegmentRecord] = field(default_factory=list)  # released once the video has its outcome
    segments_total: int = 0
    segments_computed: int = 0
    # A multi-animal video's tracking figures (tracklets, individuals found, ...: join.JoinResult.tracking).
    tracking: dict = field(default_factory=dict)

    @property
    def done(self) -> bool:
        return self.status in ("done", "done-with-warnings")

    def manifest_entry(self, job_started: float) -> dict:
        """The video's record in its job's manifest (times from the job's start; URIs without secrets)."""
        entry = {"uri": redact_uri(self.uri), "status": self.status, "key": self.video_key, "frames": self.frames,
                 "t": round(self.finished_at - job_started, 3)}
        if self.planned_at:
            entry["planned"] = round(self.planned_at - job_started, 3)
        if self.first_segment_at:
            entry["first_segment"] = round(self.first_segment_at - job_started, 3)
        if self.recomputed and self.status != "skipped":
            entry["recomputed"] = self.recomputed
        if self.done:
            entry["outputs"] = {k: redact_uri(v) for k, v in self.outputs.items()}
            entry["cuts"] = [self.segments[0].start, *[s.stop for s in self.segments]] if self.segments else []
            entry["computed"] = sum(s.status == "done" for s in self.segments)
            entry["attempts"] = max((s.attempts for s in self.segments), default=0)
        if self.tracking:
            entry["tracking"] = dict(self.tracking)
        if self.missing:
            entry["missing"] = self.missing
        if self.error:
            entry["error"] = self.error
        return entry


@dataclass
class JobReport:
    job_id: str
    out: str
    model: dict
    manifest_uri: str = ""
    status: str = "running"  # running, finished, interrupted
    stop_reason: str = ""  # why an interrupted job stopped (a storage outage past the limit, no capacity)
    started: float = 0.0
    seconds: float = 0.0
    segments_computed: int = 0
    segments_cached: int = 0
    frames_computed: int = 0
    workers: int = 0
    refused_workers: int = 0  # workers that found the model file changed and would not start
    workers_lost: int = 0  # worker deaths (process crash, node lost); their segments were redone
    busy_seconds: float = 0.0  # summed over workers: predicting and writing segments
    storage_paused_s: float = 0.0  # time dispatch waited for storage to come back
    first_table_s: float | None = None  # seconds from the job's start (Ray already up)
    first_segment_started: float | None = None  # seconds from the job's start
    manifest_bytes: int = 0  # written by this job's manifest
    bytes_read: int = 0  # video bytes the workers and planners fetched
    planning_bytes: int = 0  # of which planning tasks fetched (a container's index, by range reads)
    videos: list[VideoRecord] = field(default_factory=list)

    @property
    def failed(self) -> list[VideoRecord]:
        return [v for v in self.videos if v.status == "failed"]

    @property
    def fps(self) -> float:
        return self.frames_computed / self.seconds if self.seconds else 0.0
