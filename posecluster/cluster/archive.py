"""Archive runs: every video of an archive -> one DeepLabCut pose table, sharded over Ray actors.

The job is split by concern: plan.py (what needs doing, streaming), schedule.py (the loop: planning
tasks, worker actors, join tasks), actors.py (the GPU stage), join.py (tables, `_meta.json`, done
markers), manifest.py (the job's record and `posecluster status`). This module is the entry point and
holds what users see: ArchiveOptions and the JobReport.

Storage layout under the output URI:
  <relative dir>/<video stem><scorer>.h5 (+ .csv/.parquet)   the pose tables, DLC naming
  <relative dir>/<video stem><scorer>_meta.json              the video, model, settings, outputs
  <relative dir>/<video stem><scorer>_ensemble_variance.h5,  with an ensemble folder as the model: the
      _member<k>.h5                                          EKS track above, its variance, each member
  .posecluster/done/<video key>/<model key>.<formats>.json   done markers (written last), by request
  .posecluster/segments/<video key>/<model key>/<range>.npz  segment results
  .posecluster/probes/<video key>.npz                        probes of large videos
  .posecluster/jobs/<job id>/summary.json, records/*.jsonl   each job's manifest (manifest.py)
  posecluster-manifest.json                                  the latest job's summary

Keys: a video's key hashes its identity (URI + size + ETag/mtime, from the listing); the model key
hashes the pinned model file's sha256 and the inference settings that change results. A rerun skips
videos done for the same request (model key and at least the formats asked), rejoins from cached
segments when only a format is new, and recomputes a changed video or model; --overwrite recomputes
everything. A dead actor is replaced and its items retried (bounded); an unreadable video fails alone,
with the decoder's message, while the rest complete.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from posecluster import metrics
from posecluster.cluster.manifest import job_status  # noqa: F401  (api.job_status)
from posecluster.cluster.plan import SMALL_VIDEO_BYTES, list_inputs
from posecluster.cluster.runtime import connect
from posecluster.data.video import VIDEO_SUFFIXES


@dataclass
class ArchiveOptions:
    model: str
    out: str
    formats: tuple[str, ...] = ()
    workers: int | None = None  # default: as many as the cluster holds
    cpus_per_worker: float = 1.0
    gpus_per_worker: float = 0.0
    # Overrides of the model's own `infer` section (batch_size, decode_threads, mixed_precision, ...).
    infer_overrides: dict = field(default_factory=dict)
    segment_frames: int = 1000
    overwrite: bool = False
    max_retries: int = 2
    progress: bool = True
    # Videos smaller than this are fetched whole by a worker (probe + decode from memory, one GET);
    # larger ones are probed by planning tasks and streamed by range.
    small_video_bytes: int = SMALL_VIDEO_BYTES


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
    uri: str
    status: str = "pending"  # pending, joining, then done, done-with-warnings, skipped, failed
    video_key: str = ""
    frames: int = 0
    outputs: dict[str, str] = field(default_factory=dict)
    missing_frames: dict[int, str] = field(default_factory=dict)
    error: str = ""
    compute_seconds: float = 0.0
    planned_at: float = 0.0  # when its segments were known (unix time)
    first_segment_at: float = 0.0  # when the driver saw its first computed segment
    finished_at: float = 0.0
    segments: list[SegmentRecord] = field(default_factory=list)

    @property
    def done(self) -> bool:
        return self.status in ("done", "done-with-warnings")


@dataclass
class JobReport:
    job_id: str
    out: str
    model: dict
    manifest_uri: str = ""
    status: str = "running"  # running, finished, interrupted
    started: float = 0.0
    seconds: float = 0.0
    segments_computed: int = 0
    segments_cached: int = 0
    frames_computed: int = 0
    workers: int = 0
    refused_workers: int = 0  # workers that found the model file changed and would not start
    busy_seconds: float = 0.0  # summed over workers: predicting and writing segments
    first_table_s: float | None = None  # seconds from the job's start (Ray already up)
    first_segment_started: float | None = None  # seconds from the job's start
    manifest_bytes: int = 0  # written by this job's manifest
    bytes_read: int = 0  # video bytes the workers fetched
    videos: list[VideoRecord] = field(default_factory=list)

    @property
    def failed(self) -> list[VideoRecord]:
        return [v for v in self.videos if v.status == "failed"]

    @property
    def fps(self) -> float:
        return self.frames_computed / self.seconds if self.seconds else 0.0


def run_archive(inputs: list[str], options: ArchiveOptions,
                on_progress: Callable[..., None] | None = None) -> JobReport:
    """Connect to Ray (RAY_ADDRESS, or a local instance) and run the archive job over `inputs`
    (video URIs, prefixes/folders, or .txt lists of URIs)."""
    from posecluster.cluster.schedule import ArchiveRun

    listed = list_inputs(inputs)
    if not listed:
        raise FileNotFoundError(f"no videos ({', '.join(VIDEO_SUFFIXES)}) found in {inputs}")
    connect()
    if isinstance(metrics.current(), metrics.NullExporter):  # inside `ray job submit`: the node's endpoint
        metrics.use(metrics.RayExporter())
    return ArchiveRun(listed, options, on_progress).run()
