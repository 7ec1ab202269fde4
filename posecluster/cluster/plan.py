"""Planning an archive job, streaming: which videos need work, why, and in what pieces.

The driver makes a constant number of requests however large the archive:
  - one listing (with details) of each input prefix gives every video's identity (URI + size + ETag or
    mtime): no HEAD per video;
  - one listing of the output's `.posecluster/done/` gives every done record's name;
  - one listing of each input prefix's output folder gives the identity of every table there now.
Everything that needs a request per video happens off the driver, in parallel:
  - small videos (below `small_video_bytes`) go to the workers as they are: a worker fetches the object
    once, probes it from memory, cuts it into segments and decodes it (one GET, every byte read once);
  - large videos are planned by one Ray task each (probe, cached segments); the probe goes to Ray's object
    store once and workers fetch it by reference; the driver holds only the reference and the cuts;
  - videos named one by one (no listing gives their identity) get their identity and the state of their
    outputs from a planning task first.

"Done" is checked, not assumed. When a video's outputs are written, a done record is written last, named
`done/<URI key>/<video key>.<model key>.<settings key>.<formats>.<state>.json`: the video's identity, the
pinned model's sha256, the result-changing settings with the reader's version, the formats, and a hash of
the size and ETag/mtime of every output as written (table, formats, `_meta.json`). A video is skipped only
when such a record exists for this request and the outputs at the video's location still have exactly that
state. Anything else is recomputed, and the record says why: "video changed", "model changed",
"inference settings or video reader changed", "table missing", "table changed since it was written",
"a table without its _meta.json", "a table and its _meta.json with no done record of them". When the record for this request exists but its outputs do not match
(a format added, a table deleted or overwritten by another model's run), the video is rejoined from its
cached segments (no inference); when those are gone too, it is computed again ("segment cache missing").
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from posecluster import storage
from posecluster.cluster.runtime import remote
from posecluster.cluster.sharding import load_probe, save_probe, segment_bounds, short_hash
from posecluster.data.video import VIDEO_SUFFIXES, StaleProbeError, VideoInfo, VideoReader, is_list_uri, is_video_uri
from posecluster.data.video_info import PLAN_KINDS
from posecluster.errors import InputError
from posecluster.infer.naming import mirror_folder
from posecluster.storage.listing import list_identities, list_named
from posecluster.storage.pinned import ReadAhead, open_pinned
from posecluster.storage.retry import call as with_retries
from posecluster.storage.retry import is_transient
from posecluster.storage.scope import check as check_scope

if TYPE_CHECKING:  # a planning task, the first in its Ray process, then starts without importing torch
    from posecluster.model.artifact import PinnedModel
    from posecluster.model.ensemble import PinnedEnsemble

STATE = ".posecluster"
SMALL_VIDEO_BYTES = 64 << 20  # below this a worker holds the whole object in memory
# Inference settings that can change predicted values (numerics); the others only change speed.
RESULT_SETTINGS = ("device", "mixed_precision", "channels_last")


def state_uri(out: str, *parts: str) -> str:
    return storage.join(out, STATE, *parts)


def uri_key(uri: str) -> str:
    return short_hash(storage.canonical_uri(uri))


def video_key_of(identity: storage.ObjectIdentity) -> str:
    return short_hash(identity.key())


@dataclass(frozen=True)
class Request:
    """What a video's outputs must come from to count as done: the pinned model (its sha256), the
    settings that change results together with the video reader's version (how frames are numbered and
    turned upright: outputs of an older reader are recomputed, never trusted), and the formats asked for
    (the .h5 always)."""

    model_key: str
    settings_key: str
    formats: tuple[str, ...]

    @classmethod
    def of(cls, pinned: PinnedModel | PinnedEnsemble, infer_overrides: dict, formats: tuple[str, ...],
           made_with: dict | None = None) -> "Request":
        """`made_with`: other settings the results depend on (a multi-animal model's tracking)."""
        settings = {k: infer_overrides[k] for k in RESULT_SETTINGS if k in infer_overrides}
        settings["video_reader"] = VideoInfo.CACHE_VERSION
        settings.update(made_with or {})
        return cls(model_key=pinned.sha256[:16], settings_key=short_hash(json.dumps(settings, sort_keys=True, default=str))[:8],
                   formats=tuple(sorted(set(formats) - {"h5"})))

    @property
    def cache_key(self) -> str:
        """Segment results are reusable across jobs of the same model and settings (any formats)."""
        return f"{self.model_key}-{self.settings_key}"

    def marker_name(self, video_key: str, state: str) -> str:
        return f"{video_key}.{self.model_key}.{self.settings_key}.{'+'.join(('h5', *self.formats))}.{state}.json"


@dataclass(frozen=True)
class Marker:
    """A done record, from its name alone (a listing gives every one without reading them)."""

    uri: str
    video_key: str
    model_key: str
    settings_key: str
    formats: frozenset
    state: str

    @classmethod
    def parse(cls, uri: str) -> "Marker | None":
        parts = uri.rsplit("/", 1)[-1].split(".")
        if len(parts) != 6 or parts[-1] != "json":
            return None  # not ours (or a record of an older posecluster): ignored, never trusted
        video_key, model_key, settings_key, formats, state, _ = parts
        return cls(uri, video_key, model_key, settings_key, frozenset(formats.split("+")), state)


def marker_uri(out: str, video_uri: str, name: str) -> str:
    return state_uri(out, "done", uri_key(video_uri), name)


def segments_folder(out: str, video_key: str, cache_key: str) -> str:
    return state_uri(out, "segments", video_key, cache_key)


def segment_name(start: int, stop: int) -> str:
    """A piece of frames [start, stop): a planned range, or a window of a one-pass read."""
    return f"{start:09d}-{stop:09d}"


def span_name(first: int, end: int) -> str:
    """A piece of spans [first, end) of a "spans" plan (its frames are counted when it is read)."""
    return f"s{first:07d}-{end:07d}"


def piece_name(kind: str, first: int, end: int) -> str:
    return span_name(first, end) if kind == "spans" else segment_name(first, end)


def span_pieces(info: VideoInfo, segment_frames: int) -> list[tuple[int, int]]:
    """Spans grouped into pieces of about `segment_frames` frames. Spans are counted only when read, so the
    size of one is estimated from the cues' timestamps (Matroska's millisecond timescale, which FFmpeg and
    mkvmerge write) and the frame rate; a wrong estimate changes only how finely the video is cut."""
    count = info.span_count
    if count == 0:
        return []
    steps = np.diff(np.asarray(info.seek_ts, dtype=np.int64))
    seconds = float(np.median(steps)) / 1000.0 if len(steps) else 0.0
    per_span = seconds * (info.fps or 30.0)
    group = max(1, int(round(segment_frames / per_span))) if per_span > 0 else 1
    return [(first, min(first + group, count)) for first in range(0, count, group)]


def expected_outputs(base: str, formats, members: int = 0) -> list[str]:
    """Every object a video's join writes for `formats` (an ensemble of `members` adds its variance and
    member tables), `_meta.json` included: what a done record's state covers."""
    uris = [f"{base}.{fmt}" for fmt in sorted({"h5", *formats})]
    if members:
        uris += [f"{base}_ensemble_variance.h5", *(f"{base}_member{k}.h5" for k in range(members))]
    return [*uris, f"{base}_meta.json"]


def outputs_state(uris: list[str], found: dict[str, storage.ObjectIdentity]) -> str | None:
    """A hash of the size and version of each output as they are now, or None when one is missing."""
    if any(uri not in found for uri in uris):
        return None
    return short_hash("|".join(f"{uri.rsplit('/', 1)[-1]}:{found[uri].size}:{found[uri].version}" for uri in uris))[:12]


@dataclass
class VideoTask:
    """One video as the scheduler sees it (pickled with every dispatch: kept small)."""

    uri: str
    base: str = ""  # output base URI: <out>/<video's folder>/<stem><scorer>
    identity: storage.ObjectIdentity | None = None
    video_key: str = ""
    recomputed: str = ""  # why an earlier output is not reused
    # Whether any segment of this video may be cached (the driver's one listing of the segments folder
    # says which videos have some): a worker lists the video's own folder only then.
    maybe_cached: bool = True
    # A planned (large) video's probe in Ray's object store, nested in a list so that a dispatch passes
    # the reference and the worker fetches the probe once (workers keep the probes they have).
    info_ref: list = field(default_factory=list)

    @property
    def size(self) -> int:
        return self.identity.size if self.identity else 0


@dataclass
class Decision:
    """`work` (compute), `skip` (done before, outputs intact), `rejoin` (segments cached: rewrite the
    outputs from them), or `failed`; `reason` says why an earlier output was not reused."""

    outcome: str
    marker: str = ""
    reason: str = ""


class DoneIndex:
    """Done records (from one listing of .posecluster/done/) and the outputs' identities (from listings of
    the output folders), deciding what each video needs."""

    def __init__(self, out: str, members: int = 0):
        self.out, self.members = out, members
        self.markers: dict[str, list[Marker]] = {}
        self.outputs: dict[str, storage.ObjectIdentity] = {}

    def load(self, patience_s: float, keys: set[str] | None = None) -> "DoneIndex":
        """The done records of the videos whose URI keys are `keys` (all when None), from one listing."""
        for item in with_retries(list_identities, state_uri(self.out, "done"), (".json",), patience_s=patience_s):
            key = item.uri.rsplit("/", 2)[-2]
            marker = Marker.parse(item.uri) if keys is None or key in keys else None
            if marker is not None:
                self.markers.setdefault(key, []).append(marker)
        return self

    def add_markers(self, key: str, identities) -> None:
        for item in identities:
            marker = Marker.parse(item.uri)
            if marker is not None:
                self.markers.setdefault(key, []).append(marker)

    def add_outputs(self, identities) -> None:
        self.outputs.update((i.uri, i) for i in identities)

    def classify(self, task: VideoTask, request: Request) -> Decision:
        markers = self.markers.get(uri_key(task.uri), [])
        wanted = {"h5", *request.formats}
        table = f"{task.base}.h5"

        def state(formats) -> str | None:
            return outputs_state(expected_outputs(task.base, formats, self.members), self.outputs)

        same_video = [m for m in markers if m.video_key == task.video_key]
        same_request = [m for m in same_video if (m.model_key, m.settings_key) == (request.model_key, request.settings_key)]
        for marker in same_request:
            if wanted <= marker.formats and state(marker.formats) == marker.state:
                return Decision("skip", marker.uri)
        if same_request:
            marker = max(same_request, key=lambda m: len(m.formats))
            if state(marker.formats) == marker.state:
                return Decision("rejoin", marker.uri)  # only a format is new: not a recomputation
            if table not in self.outputs:
                reason = "table missing"
            elif any(state(m.formats) == m.state for m in markers):
                reason = "the table there holds another model's poses"
            else:
                reason = "table changed since it was written"
            return Decision("rejoin", marker.uri, reason)
        if same_video:
            models = {m.model_key for m in same_video}
            reason = "model changed" if request.model_key not in models else "inference settings or video reader changed"
            return Decision("work", reason=reason)
        if markers:
            return Decision("work", reason="video changed")
        if table in self.outputs:
            if f"{task.base}_meta.json" not in self.outputs:
                return Decision("work", reason="a table without its _meta.json")
            return Decision("work", reason="a table and its _meta.json with no done record of them")
        return Decision("work")


def list_inputs(inputs: list[str], patience_s: float) -> list[tuple[str, storage.ObjectIdentity | None]]:
    """(video URI, identity or None) for prefixes (listed with details), video URIs and .txt lists of
    URIs (identity None: a planning task looks it up)."""
    found: dict[str, storage.ObjectIdentity | None] = {}
    for item in inputs:
        if is_list_uri(item):
            lines = with_retries(storage.read_bytes, item, patience_s=patience_s).decode().splitlines()
            for line in lines:
                if line.strip() and not line.startswith("#"):  # a local path: made absolute, like the CLI's
                    check_scope(storage.absolute(line.strip()), "read", named_by=item)
                    found.setdefault(storage.absolute(line.strip()), None)
        elif is_video_uri(item):
            found.setdefault(item, None)
        else:
            listed = with_retries(list_identities, item, VIDEO_SUFFIXES, patience_s=patience_s)
            if not listed and not with_retries(storage.exists, item, patience_s=patience_s):
                raise FileNotFoundError(f"{storage.redact_uri(item)}: no such folder or prefix")
            for identity in listed:
                found.setdefault(identity.uri, identity)
    return list(found.items())


def output_folders(inputs: list[str], out: str) -> list[str]:
    """The output folder of each input prefix (its videos' tables are all below it): one listing each."""
    folders = []
    for item in inputs:
        if is_list_uri(item) or is_video_uri(item):
            continue
        folder = mirror_folder(storage.join(item, "x"))
        folders.append(storage.join(out, folder) if folder else out)
    return list(dict.fromkeys(folders))


def error_text(exc: BaseException) -> str:
    cause = getattr(exc, "cause", None) or exc
    return storage.redact_uri(f"{type(cause).__name__}: {cause}")


@dataclass(frozen=True)
class PlanContext:
    out: str
    request: Request
    segment_frames: int
    overwrite: bool
    patience_s: float


@dataclass
class Identified:
    """A video named one by one, looked up: its identity, the state of its outputs and its done records
    (or the error)."""

    task: VideoTask
    outputs: list[storage.ObjectIdentity] = field(default_factory=list)
    markers: list[storage.ObjectIdentity] = field(default_factory=list)
    error: str = ""
    transient: bool = False


@remote(num_cpus=0)
def identify(tasks: list[VideoTask], out: str, patience_s: float) -> list[Identified]:
    """Identity, outputs and done records of videos named one by one (a HEAD and two LISTs each), off the
    driver."""
    found = []
    for task in tasks:
        try:
            task.identity = with_retries(storage.identity, task.uri, patience_s=patience_s)
            task.video_key = video_key_of(task.identity)
            records = with_retries(list_identities, state_uri(out, "done", uri_key(task.uri)), (".json",),
                                   patience_s=patience_s)
            found.append(Identified(task, with_retries(list_named, task.base, patience_s=patience_s), records))
        except Exception as exc:  # this video alone: reported, the others go on
            found.append(Identified(task, error=error_text(exc), transient=is_transient(exc)))
    return found


@dataclass
class Planned:
    """A large video's plan: its kind (the reader's: "frames", "spans" or "sequential"), its frame count
    (-1 until read, for the last two) and its pieces, in frames or spans ("sequential": none until the
    pass); the plan itself travels as a separate object."""

    task: VideoTask
    kind: str = "frames"
    frames: int = 0
    pieces: list[tuple[int, int]] = field(default_factory=list)
    cached: tuple[str, ...] = ()
    planned_at: float = 0.0
    bytes_read: int = 0
    error: str = ""
    transient: bool = False


def sound_plan(info: VideoInfo, size: int) -> bool:
    """Whether a stored plan is one this reader could have made of an object of `size` bytes: a plan
    cached under .posecluster/probes is a stored file like any other (truncated, edited, hostile), and a
    wrong one would put rows on the wrong frames."""
    try:
        keys, seek_pos = np.asarray(info.keyframes), np.asarray(info.seek_pos)
        ranges = np.asarray(info.index_ranges).reshape(-1, 2)
        if info.plan not in PLAN_KINDS or len(ranges) and (ranges.min() < 0 or (ranges.sum(axis=1) > size).any()
                                                            or int(ranges[:, 1].sum()) != len(info.index_bytes)):
            return False
        if len(seek_pos) and (seek_pos.max() >= size or np.any(np.diff(seek_pos[seek_pos >= 0]) < 0)):
            return False
        if info.plan != "frames":
            return len(info.seek_ts) == len(seek_pos) and (info.plan != "spans" or len(seek_pos) > 0)
        present = info.present
        return (0 <= present <= info.frame_count and len(info.pts) == present and len(keys) >= 1 and keys[0] == 0
                and bool(np.all(np.diff(keys) > 0)) and int(keys[-1]) < max(info.frame_count, 1)
                and len(info.seek_ts) == len(keys) == len(seek_pos))
    except (TypeError, ValueError, AttributeError):
        return False


def plan_video(task: VideoTask, ctx: PlanContext) -> tuple[Planned, VideoInfo | None]:
    """Plan one large video from its container's index (or load the plan cached by an earlier job), cut
    it into pieces, and find the pieces already computed."""
    try:
        plan_uri = state_uri(ctx.out, "probes", f"{task.video_key}.npz")
        read = 0
        try:
            info = with_retries(load_probe, plan_uri, task.uri, patience_s=ctx.patience_s)
            if not sound_plan(info, task.size):
                raise StaleProbeError(f"{storage.redact_uri(plan_uri)}: not a plan of this video")
        except Exception as exc:  # absent, older, unreadable or not this video's: plan again
            if is_transient(exc):
                raise
            readers = []

            def source():
                readers.append(open_pinned(task.identity, ReadAhead.planning(task.size), keep=16,
                                           patience_s=ctx.patience_s))
                return readers[-1]

            info = VideoReader(task.uri, source).plan()
            read = sum(r.bytes_read for r in readers)
            with_retries(save_probe, plan_uri, info, patience_s=ctx.patience_s)
        if info.plan == "frames":
            pieces = segment_bounds(info.frame_count, info.keyframes, ctx.segment_frames)
        else:
            pieces = span_pieces(info, ctx.segment_frames) if info.plan == "spans" else []
        cached: tuple[str, ...] = ()
        if not ctx.overwrite and task.maybe_cached and pieces:
            folder = segments_folder(ctx.out, task.video_key, ctx.request.cache_key)
            names = {item.uri.rsplit("/", 1)[-1].removesuffix(".npz")
                     for item in with_retries(list_identities, folder, (".npz",), patience_s=ctx.patience_s)}
            cached = tuple(piece_name(info.plan, a, b) for a, b in pieces if piece_name(info.plan, a, b) in names)
        return Planned(task, info.plan, info.frame_count, pieces, cached, time.time(), read), info
    except Exception as exc:  # this video alone (bad input, changed object, or storage away: retried later)
        if not isinstance(exc, (InputError, OSError, ValueError)) and not is_transient(exc):
            raise
        return Planned(task, error=error_text(exc), transient=is_transient(exc)), None


@remote(num_cpus=0, num_returns=2, scheduling_strategy="SPREAD")
def plan_large(task: VideoTask, ctx: PlanContext):
    """One large video per task, so that each plan reaches the queue as soon as it exists; spread over the
    cluster's nodes (planning reads from storage). Returns (plan, probe): the driver gets the plan and
    leaves the probe in the object store for the workers; Ray rebuilds it by running this task again
    (lineage) if the node holding it is lost."""
    return plan_video(task, ctx)
