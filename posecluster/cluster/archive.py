"""Archive runs: every video of an archive -> one DeepLabCut pose table, sharded over Ray actors.

The job is split by concern: plan.py (what needs doing and why, streaming), schedule.py (the loop),
pool.py (the worker actors' lifecycle), actors.py (the GPU stage), join.py (tables, `_meta.json`, done
records), manifest.py (the job's record and `posecluster status`), records.py (what a job reports). This
module is the entry point and holds what users set: ArchiveOptions and the Patience budgets.

Storage layout under the output URI (infer.naming: a video's folder is mirrored under it):
  <video's folder>/<video stem><scorer>.h5 (+ .csv/.parquet)  the pose tables, DLC naming
  <video's folder>/<video stem><scorer>_meta.json             the video, model, settings, outputs
  <video's folder>/<video stem><scorer>_ensemble_variance.h5, with an ensemble folder as the model: the
      _member<k>.h5                                           EKS track above, its variance, each member
  <video's folder>/<video stem><scorer>_el.h5 (+ _el.csv), _el_meta.json   with a multi-animal model: the
                                                              tracked table (individuals stitched), DLC naming
  .posecluster/done/<URI key>/<video>.<model>.<settings>.<formats>.<state>.json
                                                              done records (written last; plan.py)
  .posecluster/segments/<video key>/<model>-<settings>/<range>.npz  segment results (multi-animal: the
                                                              detections linked into tracklets, unstitched)
  .posecluster/probes/<video key>.npz                        probes of large videos
  .posecluster/jobs/<job id>/summary.json, records/*.jsonl   each job's manifest (manifest.py)
  posecluster-manifest.json                                  the latest job's summary

Keys: a video's key hashes its identity (URI + size + ETag/mtime, from the listing); the model key is
the pinned model file's sha256, the settings key the inference settings that change results and the
reader's version. A rerun skips a video only when its done record matches the outputs there now,
rejoins from cached segments when only a format is new (or its table was deleted or overwritten), and
recomputes a changed video or model, saying why; --overwrite recomputes everything. A dead actor is
replaced and its item retried (bounded); an unreadable or changing video fails alone, while the rest
complete; a storage outage pauses the job (schedule.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from posecluster import metrics
from posecluster.cluster.manifest import job_status  # noqa: F401  (api.job_status)
from posecluster.cluster.plan import SMALL_VIDEO_BYTES, list_inputs
from posecluster.cluster.records import JobReport, SegmentRecord, VideoRecord  # noqa: F401  (what users get)
from posecluster.cluster.runtime import connect
from posecluster.cluster.schedule import ArchiveRun
from posecluster.data.video import VIDEO_SUFFIXES


@dataclass(frozen=True)
class Patience:
    """How long a job waits out faults that are not any video's fault.

    `storage_call_s`: one storage call (a fetch, a write, a listing) retries a transient fault this long;
    then its work item goes back to the queue uncounted and the whole job pauses. `outage_s`: a paused job
    checks storage with backoff for this long, then stops cleanly (a rerun resumes where it stopped).
    `capacity_s`: how long work may wait with no worker placed (the cluster shrank to nothing that fits
    a worker) before the job stops the same way.
    """

    storage_call_s: float = 60.0
    outage_s: float = 3600.0
    capacity_s: float = 3600.0


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
    patience: Patience = field(default_factory=Patience)


def run_archive(inputs: list[str], options: ArchiveOptions,
                on_progress: Callable[..., None] | None = None) -> JobReport:
    """Connect to Ray (RAY_ADDRESS, or a local instance) and run the archive job over `inputs`
    (video URIs, prefixes/folders, or .txt lists of URIs)."""
    listed = list_inputs(inputs, options.patience.outage_s)
    if not listed:
        raise FileNotFoundError(f"no videos ({', '.join(VIDEO_SUFFIXES)}) found in {inputs}")
    connect()
    if isinstance(metrics.current(), metrics.NullExporter):  # inside `ray job submit`: the node's endpoint
        metrics.use(metrics.RayExporter())
    return ArchiveRun(inputs, listed, options, on_progress).run()
