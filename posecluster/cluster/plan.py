"""Planning an archive job, streaming: which videos need work, and in what pieces.

The driver makes a constant number of requests however large the archive:
  - one listing (with details) of each input prefix gives every video's identity (URI + size + ETag or
    mtime): no HEAD per video;
  - one listing of the output's `.posecluster/done/` folder gives the done-checks.
Everything that needs a request per video happens off the driver, in parallel:
  - small videos (below `small_video_bytes`) go to the workers as they are: a worker fetches the object
    once, probes it from memory, cuts it into segments and decodes it (one GET, every byte read once);
  - large videos, and inputs named one by one (no listing gives their identity), are planned by Ray
    tasks over batches: identity, done-check, probe (the container's index where #11's probe reads it),
    cached segments; their segments enter the work queue as each batch returns.

"Done" is what was asked: a video is done for a request when a done marker exists for its identity,
for the model's sha256 plus the inference settings that change results, and for at least the formats
asked now. A marker for the same model and settings with fewer formats means the segments are cached:
the video is rejoined (no inference) to write the new format.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

import ray

from posecluster import storage
from posecluster.cluster.sharding import load_probe, save_probe, segment_bounds, short_hash
from posecluster.data.video import VIDEO_SUFFIXES, StaleProbeError, VideoInfo, probe
from posecluster.errors import InputError
from posecluster.model.artifact import PinnedModel
from posecluster.model.ensemble import PinnedEnsemble
from posecluster.storage.listing import list_identities
from posecluster.storage.retry import call as with_retries
from posecluster.storage.retry import open_retrying

STATE = ".posecluster"
SMALL_VIDEO_BYTES = 64 << 20  # below this a worker holds the whole object in memory
# Inference settings that can change predicted values (numerics); the others only change speed.
RESULT_SETTINGS = ("device", "mixed_precision", "channels_last")


def state_uri(out: str, *parts: str) -> str:
    return storage.join(out, STATE, *parts)


@dataclass(frozen=True)
class Request:
    """What makes a video's outputs "done": the pinned model with its result-changing settings, the
    video reader's version (how frames are numbered and turned upright: outputs of an older reader are
    recomputed, never trusted), and the formats asked for (the .h5 always)."""

    model_key: str
    formats: tuple[str, ...]

    @classmethod
    def of(cls, pinned: PinnedModel | PinnedEnsemble, infer_overrides: dict, formats: tuple[str, ...]) -> "Request":
        settings = {k: infer_overrides[k] for k in RESULT_SETTINGS if k in infer_overrides}
        settings["video_reader"] = VideoInfo.CACHE_VERSION
        key = short_hash(pinned.sha256 + json.dumps(settings, sort_keys=True, default=str))
        return cls(model_key=key, formats=tuple(sorted(set(formats) - {"h5"})))

    @property
    def marker_name(self) -> str:
        return f"{self.model_key}.{'+'.join(('h5', *self.formats))}.json"


def marker_uri(out: str, video_key: str, request: Request) -> str:
    return state_uri(out, "done", video_key, request.marker_name)


def segments_folder(out: str, video_key: str, model_key: str) -> str:
    return state_uri(out, "segments", video_key, model_key)


def segment_name(start: int, stop: int) -> str:
    return f"{start:09d}-{stop:09d}"


def video_key_of(identity: storage.ObjectIdentity) -> str:
    return short_hash(identity.key())


@dataclass
class VideoTask:
    """One video as the scheduler sees it."""

    uri: str
    video_key: str = ""
    size: int = 0
    base: str = ""  # output base URI: <out>/<relative folder>/<stem><scorer>
    identity: dict | None = None
    # For large videos (planned by a task): the probe, every segment's bounds, and those already cached.
    info: VideoInfo | None = None
    bounds: list[tuple[int, int]] | None = None
    cached: tuple[str, ...] = ()
    planned_at: float = 0.0
    # Whether any segment of this video may be cached (the driver's one listing of the segments folder
    # says which videos have some): a worker lists the video's own folder only then.
    maybe_cached: bool = True


@dataclass
class Planned:
    """A planning outcome: `work` (task to run), `skip` (done before), `rejoin` (marker to rejoin from),
    or `failed` (error)."""

    task: VideoTask
    outcome: str
    marker: str = ""
    error: str = ""


class DoneIndex:
    """Markers under .posecluster/done/, from one listing: video key -> [(model key, formats, URI)]."""

    def __init__(self, out: str):
        self.out = out
        self.markers: dict[str, list[tuple[str, frozenset, str]]] = {}

    def load(self) -> "DoneIndex":
        for item in with_retries(list_identities, state_uri(self.out, "done"), (".json",)):
            video_key, name = item.uri.rsplit("/", 2)[-2:]
            model_key, formats, _ = name.split(".", 2)
            self.markers.setdefault(video_key, []).append((model_key, frozenset(formats.split("+")), item.uri))
        return self

    def add_listing(self, video_key: str, items: list[storage.ObjectIdentity]) -> None:
        for item in items:
            model_key, formats, _ = item.uri.rsplit("/", 1)[-1].split(".", 2)
            self.markers.setdefault(video_key, []).append((model_key, frozenset(formats.split("+")), item.uri))

    def classify(self, video_key: str, request: Request) -> tuple[str, str]:
        """("skip", marker) when done for this request; ("rejoin", marker) when only formats are missing;
        ("work", "") otherwise."""
        wanted = {"h5", *request.formats}
        same_model = [(formats, uri) for key, formats, uri in self.markers.get(video_key, ()) if key == request.model_key]
        for formats, uri in same_model:
            if wanted <= formats:
                return "skip", uri
        if same_model:
            return "rejoin", same_model[0][1]
        return "work", ""


def list_inputs(inputs: list[str]) -> list[tuple[str, storage.ObjectIdentity | None]]:
    """(video URI, identity or None) for prefixes (listed with details), video URIs and .txt lists of
    URIs (identity None: a planning task looks it up)."""
    found: dict[str, storage.ObjectIdentity | None] = {}
    for item in inputs:
        if item.endswith(".txt"):
            lines = with_retries(storage.read_bytes, item).decode().splitlines()
            for line in lines:
                if line.strip() and not line.startswith("#"):
                    found.setdefault(line.strip(), None)
        elif item.lower().endswith(VIDEO_SUFFIXES):
            found.setdefault(item, None)
        else:
            listed = with_retries(list_identities, item, VIDEO_SUFFIXES)
            if not listed and not storage.exists(item):
                raise FileNotFoundError(f"{item}: no such folder or prefix")
            for identity in listed:
                found.setdefault(identity.uri, identity)
    return list(found.items())


def _error_text(exc: BaseException) -> str:
    cause = getattr(exc, "cause", None) or exc
    return f"{type(cause).__name__}: {cause}"


@dataclass(frozen=True)
class PlanContext:
    out: str
    request: Request
    segment_frames: int
    small_video_bytes: int
    overwrite: bool


def plan_one(task: VideoTask, ctx: PlanContext) -> Planned:
    """Identity (when the listing did not give it), done-check, probe and cached segments of one video."""
    try:
        if not task.video_key:
            identity = with_retries(storage.identity, task.uri)
            task.identity, task.size, task.video_key = vars(identity), identity.size, video_key_of(identity)
            if not ctx.overwrite:
                index = DoneIndex(ctx.out)
                index.add_listing(task.video_key, with_retries(
                    list_identities, state_uri(ctx.out, "done", task.video_key), (".json",)))
                outcome, marker = index.classify(task.video_key, ctx.request)
                if outcome != "work":
                    return Planned(task, outcome, marker=marker)
        if task.size < ctx.small_video_bytes:
            return Planned(task, "work")  # the worker fetches, probes and decodes it in one go
        probe_uri = state_uri(ctx.out, "probes", f"{task.video_key}.npz")
        try:
            info = with_retries(load_probe, probe_uri, task.uri)
        except (FileNotFoundError, StaleProbeError):
            info = with_retries(lambda: probe(task.uri, source=lambda: open_retrying(task.uri)))
            with_retries(save_probe, probe_uri, info)
        task.info = info
        task.bounds = segment_bounds(info.frame_count, info.keyframes, ctx.segment_frames)
        if not ctx.overwrite:
            folder = segments_folder(ctx.out, task.video_key, ctx.request.model_key)
            names = {item.uri.rsplit("/", 1)[-1].removesuffix(".npz")
                     for item in with_retries(list_identities, folder, (".npz",))}
            task.cached = tuple(segment_name(a, b) for a, b in task.bounds if segment_name(a, b) in names)
        task.planned_at = time.time()
        return Planned(task, "work")
    except (InputError, OSError, ValueError) as exc:  # this video fails alone
        return Planned(task, "failed", error=_error_text(exc))


@ray.remote(num_cpus=0)
def plan_batch(tasks: list[VideoTask], ctx: PlanContext) -> list[Planned]:
    """Plan a batch of videos in one Ray task (off the driver; a few run at once)."""
    return [plan_one(task, ctx) for task in tasks]
