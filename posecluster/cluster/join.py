"""Joining a finished video: its segments -> one pose table (+ formats), `_meta.json`, the done marker.

Runs as a Ray task next to the data, never in the driver's scheduling loop, so workers never wait for a
table to be written. The whole join is retried through transient storage faults (it only reads cached
segments and writes outputs: no inference is repeated). The done marker is written last: a video whose
marker exists has every output of its request in place.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field

import ray

from posecluster import storage
from posecluster.cluster.plan import Request, marker_uri, segment_name, segments_folder
from posecluster.infer.ensemble import join_ensemble_segments, smoothing_meta
from posecluster.infer.segments import join_segments
from posecluster.storage.retry import call as with_retries


@dataclass
class JoinSpec:
    out: str
    video: str
    video_key: str
    base: str
    request: Request
    scorer: str
    bodyparts: list[str]
    model: dict  # uri, sha256
    job_id: str
    frames: int = 0
    bounds: list[tuple[int, int]] = field(default_factory=list)
    identity: dict | None = None
    rejoin_from: str = ""  # a done marker of the same model with fewer formats: bounds come from it
    ensemble: list[dict] | None = None  # the members (uri, sha256) when the model is an ensemble


@dataclass
class JoinResult:
    outputs: dict[str, str]
    missing: dict[int, str]
    frames: int
    bounds: list[tuple[int, int]]
    finished_at: float
    warnings: list[str] = field(default_factory=list)  # damage the reader reported (done-with-warnings)


def _join(spec: JoinSpec) -> JoinResult:
    if spec.rejoin_from:
        previous = json.loads(storage.read_bytes(spec.rejoin_from))
        spec.frames, spec.bounds = previous["frames"], [tuple(b) for b in previous["bounds"]]
        spec.identity = previous.get("video_identity")
    folder = segments_folder(spec.out, spec.video_key, spec.request.model_key)
    uris = [storage.join(folder, f"{segment_name(a, b)}.npz") for a, b in spec.bounds]
    extra = {}
    if spec.ensemble is None:
        outputs, missing, facts = join_segments(uris, spec.scorer, spec.bodyparts, spec.frames, spec.base,
                                                spec.request.formats)
    else:
        outputs, missing, facts, params = join_ensemble_segments(uris, spec.scorer, spec.bodyparts, spec.frames,
                                                                 spec.base, spec.request.formats)
        extra["ensemble"] = smoothing_meta(spec.ensemble, params)
    meta = {
        "video": spec.video, "video_key": spec.video_key, "video_identity": spec.identity,
        "model": {**spec.model, "identity": spec.model["sha256"][:16]}, "model_key": spec.request.model_key,
        "scorer": spec.scorer, "bodyparts": spec.bodyparts, "frames": spec.frames,
        "missing_frames": missing, "outputs": outputs, "job_id": spec.job_id,
        "bounds": [list(b) for b in spec.bounds], **facts, **extra,
    }
    body = json.dumps(meta, indent=1, default=str).encode()
    storage.atomic_write_bytes(f"{spec.base}_meta.json", body)
    storage.atomic_write_bytes(marker_uri(spec.out, spec.video_key, spec.request), body)
    return JoinResult(outputs, missing, spec.frames, spec.bounds, time.time(), facts.get("warnings", []))


@ray.remote(num_cpus=0)
def join_video(spec: JoinSpec) -> JoinResult:
    return with_retries(_join, spec)


@ray.remote(num_cpus=0)
def warm_up() -> None:
    """Nothing: run at a job's start so that a task process has imported this module (and the table
    writers) by the time the first video finishes; Ray reuses it for the joins."""
