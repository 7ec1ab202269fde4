"""Joining a finished video: its segments -> one pose table (+ formats), `_meta.json`, the done record.

Runs as a Ray task next to the data, never in the driver's scheduling loop, so workers never wait for a
table to be written. The whole join is retried through transient storage faults for the job's storage
patience (it only reads cached segments and writes outputs: no inference is repeated); past it, the
driver puts the join back and pauses. The done record is written last, named by the state of the outputs
it vouches for (plan.py): a video whose record matches its outputs has every output of its request in
place. A table at the video's location whose `_meta.json` names another video is never overwritten
(infer.results.refuse_another_videos_table, as in `analyze`).
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import asdict, dataclass, field

from posecluster import storage
from posecluster.cluster.plan import Marker, Request, expected_outputs, marker_uri, outputs_state, segments_folder
from posecluster.cluster.records import frame_ranges
from posecluster.cluster.runtime import remote
from posecluster.errors import InputError
from posecluster.infer.ensemble_tables import join_ensemble_segments, smoothing_meta
from posecluster.infer.multianimal_segments import AnimalNames, join_animal_segments
from posecluster.infer.naming import plot_folder
from posecluster.infer.results import forget_meta, publish_meta, refuse_another_videos_table, remove_stale_outputs
from posecluster.infer.segments import join_segments
from posecluster.storage.listing import list_named
from posecluster.storage.retry import call as with_retries
from posecluster.tracking import TrackingConfig


class SegmentCacheMissing(ValueError):
    """A rejoin found cached segments gone (cleaned to save space): the video is computed again."""


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
    frames: int | None = 0  # None: counted by the join (pieces of spans)
    segments: list[str] = field(default_factory=list)  # the pieces' names, in frame order (plan.piece_name)
    identity: dict | None = None
    rejoin_from: str = ""  # a done record of the same request: frames and pieces come from it
    facts: dict = field(default_factory=dict)  # a one-pass video's facts (its worker learned them)
    ensemble: list[dict] | None = None  # the members (uri, sha256) when the model is an ensemble
    # A multi-animal model's individuals, unique body parts and tracking settings: its segments hold
    # tracklets, joined and stitched into one tracked table.
    animals: dict | None = None
    recomputed: str = ""  # why an earlier output was not reused (written into _meta.json)
    patience_s: float = 60.0


@dataclass
class JoinResult:
    """What the driver keeps of a join: compact however long or damaged the video (the per-frame reasons
    are in `_meta.json`)."""

    outputs: dict[str, str]
    missing: str  # frame ranges ("3-5,9")
    missing_count: int
    frames: int
    bounds: list[tuple[int, int]]
    finished_at: float
    warnings: list[str] = field(default_factory=list)  # damage the reader reported (done-with-warnings)
    tracking: dict = field(default_factory=dict)  # a multi-animal video's TrackingFigures (no per-frame data)


_PIECE = re.compile(r"(\d{9}-\d{9}|s\d{7}-\d{7})")


def _earlier_plan(record_uri: str) -> tuple[int, list[str], dict | None]:
    """Frames, pieces and identity from an earlier job's done record. A record that is not what a join
    writes (edited, truncated, hostile: keys that differ from its name, pieces that do not tile its frames)
    is no plan: the video is computed again."""
    try:
        previous = json.loads(storage.read_bytes(record_uri))
        named = Marker.parse(record_uri)
        frames, names = previous["frames"], previous["segments"]
        if named is None or (previous.get("video_key"), previous.get("model_key"), previous.get("settings_key")) != (
                named.video_key, named.model_key, named.settings_key):
            raise ValueError("its keys are not its name's")
        if not isinstance(frames, int) or frames < 0 or not isinstance(names, list) or not names \
                or not all(isinstance(n, str) and _PIECE.fullmatch(n) for n in names):
            raise ValueError("frames and pieces are not a join's")
        ranges = [tuple(map(int, n.split("-"))) for n in names if not n.startswith("s")]
        if ranges and (len(ranges) != len(names) or ranges[0][0] != 0 or ranges[-1][1] != frames
                       or any(a[1] != b[0] or b[0] >= b[1] for a, b in zip(ranges, ranges[1:]))):
            raise ValueError("its pieces do not tile its frames")
        identity = previous.get("video_identity")
        return frames, names, identity if isinstance(identity, dict) else None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        if getattr(exc, "transient", False):
            raise  # storage away: the driver pauses and tries again
        raise SegmentCacheMissing(f"{storage.redact_uri(record_uri)}: not a usable record ({exc})") from None


def _join(spec: JoinSpec) -> JoinResult:
    if spec.rejoin_from:
        spec.frames, spec.segments, spec.identity = _earlier_plan(spec.rejoin_from)
    present = {i.uri for i in list_named(spec.base)}
    refuse_another_videos_table(spec.video, spec.base, meta_exists=f"{spec.base}_meta.json" in present)
    folder = segments_folder(spec.out, spec.video_key, spec.request.cache_key)
    uris = [storage.join(folder, f"{name}.npz") for name in spec.segments]
    forget_meta(spec.base, exists=f"{spec.base}_meta.json" in present)  # an outage before the new meta leaves tables with no record: not done
    extra = {}
    try:
        if spec.animals is not None:
            names = AnimalNames(spec.scorer, list(spec.animals["individuals"]), list(spec.bodyparts),
                                list(spec.animals["unique_bodyparts"]))
            joined, figures = join_animal_segments(uris, names, spec.frames, spec.base, spec.request.formats,
                                                   TrackingConfig(**spec.animals["tracking"]))
            extra["animals"] = {"individuals": names.individuals, "unique_bodyparts": names.unique_bodyparts,
                                "tracking": asdict(figures), "tracking_config": spec.animals["tracking"]}
        elif spec.ensemble is None:
            joined = join_segments(uris, spec.scorer, spec.bodyparts, spec.frames, spec.base, spec.request.formats)
        else:
            joined, params = join_ensemble_segments(uris, spec.scorer, spec.bodyparts, spec.frames, spec.base,
                                                    spec.request.formats)
            extra["ensemble"] = smoothing_meta(spec.ensemble, params)
    except FileNotFoundError as exc:
        raise SegmentCacheMissing(f"{storage.redact_uri(spec.video)}: cached segments are gone ({exc})") from None
    except InputError as exc:  # a stored piece damaged or written by someone else: its key is intact, so a
        # rerun would reuse it forever; the pieces are this job's cache, so they go and the video is
        # computed again (once: a second failure fails the video with the error).
        for uri in uris:
            storage.remove(uri)
        raise SegmentCacheMissing(f"{storage.redact_uri(spec.video)}: a cached segment was unusable ({exc}); "
                                  f"its segments are computed again") from None
    identity = dict(spec.identity or {})
    if "uri" in identity:
        identity["uri"] = storage.redact_uri(identity["uri"])
    facts = {**joined.meta(), **spec.facts}  # a one-pass video's facts come from its worker's pass
    meta = {
        "video": storage.redact_uri(spec.video), "video_key": spec.video_key, "video_identity": identity,
        "model": {**spec.model, "identity": spec.model["sha256"][:16]}, "model_key": spec.request.model_key,
        "settings_key": spec.request.settings_key, "formats": ["h5", *spec.request.formats],
        "scorer": spec.scorer, "bodyparts": spec.bodyparts, "frames": joined.frames,
        "missing_frames": joined.missing, "outputs": {k: storage.redact_uri(v) for k, v in joined.outputs.items()},
        "job_id": spec.job_id, "segments": spec.segments, "bounds": [list(b) for b in joined.bounds],
        **({"recomputed": spec.recomputed} if spec.recomputed else {}), **facts, **extra,
    }
    body = publish_meta(spec.base, meta, joined.table_sha256)
    written = expected_outputs(spec.base, spec.request.formats, len(spec.ensemble or ()))
    remove_stale_outputs(spec.base, written, plot_folder(spec.video, spec.out))  # an earlier run's formats, ...
    state = outputs_state(written, {i.uri: i for i in list_named(spec.base)})
    if state is None:
        raise OSError(f"{storage.redact_uri(spec.base)}: outputs not listed after writing them")
    storage.atomic_write_bytes(marker_uri(spec.out, spec.video, spec.request.marker_name(spec.video_key, state)), body)
    tracking = extra["animals"]["tracking"] if "animals" in extra else {}
    return JoinResult(joined.outputs, frame_ranges(joined.missing), len(joined.missing), joined.frames, joined.bounds,
                      time.time(), facts.get("warnings", []), {k: v for k, v in tracking.items() if k != "per_individual"})


@remote(num_cpus=0)
def join_video(spec: JoinSpec) -> JoinResult:
    return with_retries(_join, spec, patience_s=spec.patience_s)


@remote(num_cpus=0)
def warm_up() -> None:
    """Nothing: run at a job's start so that a task process has imported this module (and the table
    writers) by the time the first video finishes; Ray reuses it for the joins."""
