"""Finding analysis results again: every pose table written by `analyze` or `infer` has a
`<video><scorer>_meta.json` beside it naming the video and the model.

The table is found beside its meta (never through the path recorded at analysis time), so a poses folder
copied elsewhere or downloaded from S3 still works; a video that moved can be named with `videos`."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field, replace

from posecluster import storage
from posecluster.data.video import is_video_uri
from posecluster.errors import InputError
from posecluster.infer.naming import derived_record, filtered_table, is_output_of, plots_record
from posecluster.storage.listing import list_named
from posecluster.storage.scope import OutOfScopeError, check as check_scope

log = logging.getLogger(__name__)


@dataclass
class RangeResult:
    """What reading and predicting a range of a video found (predict_range's; a segment's base)."""

    frames: int = 0
    missing: dict[int, str] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    sizes: list = field(default_factory=list)  # (first frame, width, height) of each frame size read
    jumps: list = field(default_factory=list)  # (frame, from, to, kind) where the clock jumped (one-pass reads)
    covered: int = -1  # frames the read covered, decoded or missing (a span's or a whole pass's size)
    decode_wait_s: float = 0.0
    infer_s: float = 0.0
    seconds: float = 0.0
    # The arithmetic the poses came from (model.precision: fp32, bf16, fp16, int8); a segment carries it.
    precision: str = ""
    rechecked: int = 0  # frames (an ensemble's: member frames) predicted again more exactly (close calls)
    # auto's reduced path checked on this range (infer.verify.VideoCheck.record): timings, the fp32
    # sample's agreement, whether the range fell back to fp32; {} where nothing was checked.
    check: dict = field(default_factory=dict)

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds else 0.0


@dataclass(frozen=True)
class AnalysisRecord:
    video: str
    table: str  # the .h5 pose table
    model: str  # model.pt URI
    meta: str
    table_sha256: str = ""  # the table the meta was written for ('' in an older posecluster's meta)


def refuse_another_videos_table(video_uri: str, base: str, meta_exists: bool | None = None) -> None:
    """Raise InputError when the table at `base` is another video's (its `_meta.json` names another
    video: mouse.mp4 and mouse.avi of one folder, analysed by separate commands). A video recorded under
    another URI whose recorded identity (size, version) is this video's is the same video, reached through
    another mount or a symlinked folder, and is not refused. A record that cannot
    be read claims nothing; `meta_exists` spares the existence check when a listing already said."""
    meta_uri = f"{base}_meta.json"
    try:
        if meta_exists is False or (meta_exists is None and not storage.exists(meta_uri)):
            return
        meta = json.loads(storage.read_bytes(meta_uri))
        recorded, recorded_identity = meta.get("video"), meta.get("video_identity")
    except (ValueError, AttributeError, FileNotFoundError):
        return
    # _meta.json holds the URI redacted (query values *** but a selector's): compare it so; videos whose
    # selecting queries differ never reach here, their names differ (naming.video_stem).
    if isinstance(recorded, str) and storage.canonical_uri(recorded) != storage.canonical_uri(
            storage.redact_uri(storage.absolute(video_uri))):
        try:
            if _same_object(recorded, recorded_identity, video_uri):
                return
        except OutOfScopeError:  # a record is data: a location it names outside the scope is never probed
            pass
        raise InputError(video_uri, f"would overwrite the pose table of {storage.redact_uri(recorded)} at "
                         f"{storage.redact_uri(base)}.h5 (same folder and file stem, another video by its size "
                         f"and version); rename one of them")


def _same_object(recorded_uri: str, recorded: object, video_uri: str) -> bool:
    """Whether the video a `_meta.json` recorded is this one reached through another path: for local
    files, the same file (device and inode: a symlinked folder, a bind mount), since size and mtime alone
    match for two different files copied with `cp -p` or restored from an archive; in an object store, the
    same size and version tag (an ETag is computed from the bytes)."""
    same_file = storage.same_local_file(recorded_uri, video_uri)
    if same_file is not None:
        return same_file
    if not isinstance(recorded, dict) or "size" not in recorded or not recorded.get("version"):
        return False
    now = storage.identity(video_uri)
    return (str(recorded["size"]), str(recorded["version"])) == (str(now.size), str(now.version))


def table_beside(meta_uri: str) -> str:
    return meta_uri[: -len("_meta.json")] + ".h5"


def find_results(inputs: list[str], videos: list[str] | None = None) -> list[AnalysisRecord]:
    """Results under prefixes/folders of pose tables, or named by their _meta.json or .h5 URIs.

    `videos` name videos that moved since the analysis: each replaces the recorded video with the same
    file name (or, for a single result, the recorded video whatever its name).
    """
    metas: list[str] = []
    for item in inputs:
        if item.endswith("_meta.json"):
            metas.append(item)
        elif item.endswith(".h5"):
            metas.append(item[: -len(".h5")] + "_meta.json")
        elif is_video_uri(item):
            raise InputError(item, "is a video; give the folder or prefix of its pose tables (the --out of "
                                   "analyze/infer)")
        else:
            metas += [m for m in storage.list_files(item, suffixes=("_meta.json",)) if "/.posecluster/" not in m]
    results = []
    for meta_uri in dict.fromkeys(metas):
        try:
            meta = json.loads(storage.read_bytes(meta_uri))
            model = meta["model"]["uri"] if isinstance(meta["model"], dict) else meta["model"]
            for named in (meta["video"], model):  # a record is data: what it names must lie in the job's scope
                check_scope(str(named), "read", named_by=meta_uri)
            results.append(AnalysisRecord(video=meta["video"], table=table_beside(meta_uri), model=model,
                                          meta=meta_uri, table_sha256=str(meta.get("table_sha256") or "")))
        except FileNotFoundError:
            raise InputError(meta_uri, "missing: pose tables are found through the _meta.json that analyze/infer "
                                       "write beside them") from None
        except (KeyError, TypeError, json.JSONDecodeError) as exc:
            raise InputError(meta_uri, f"not a posecluster analysis record ({exc})") from None
    return [replace(r, video=_moved_video(r, videos, len(results))) for r in results] if videos else results


def _moved_video(record: AnalysisRecord, videos: list[str], count: int) -> str:
    by_name = {storage.basename(v): v for v in videos}
    if storage.basename(record.video) in by_name:
        return by_name[storage.basename(record.video)]
    return videos[0] if count == 1 and len(videos) == 1 else record.video


def checked_table(record: AnalysisRecord) -> str:
    """The record's table, after checking it is the table its `_meta.json` was written for (an outage
    between a rerun's table and its meta, a table copied in by hand, would credit one run's poses to another
    run's model); a meta of an older posecluster, with no sha256, is taken at its word."""
    if record.table_sha256 and storage.exists(record.table) and \
            storage.file_sha256(record.table) != record.table_sha256:
        raise InputError(record.table, f"is not the table that {storage.basename(record.meta)} beside it describes "
                                       f"(its sha256 differs from the one recorded there: the table was edited, "
                                       f"copied in or replaced since that analysis); run `posecluster analyze` on "
                                       f"its video again, or, to keep a table edited on purpose, delete the "
                                       f"`table_sha256` line from {storage.basename(record.meta)}")
    return record.table


def forget_meta(base: str, exists: bool | None = None) -> None:
    """Before a new table is published at `base`: the earlier run's `_meta.json` goes first, so that an
    interruption between the table and its meta leaves a table with no record (a rerun's "not done"),
    never an earlier run's record beside new poses. `exists`: what a listing already said."""
    if exists is not False:
        storage.remove(f"{base}_meta.json")  # nothing there: nothing done


def publish_meta(base: str, meta: dict, table_sha256: str | None = None) -> bytes:
    """`<base>_meta.json`, with the sha256 of the table `<base>.h5` it describes (readers check it:
    checked_table): `table_sha256` where the writer hashed its local file, else read back. Returns what
    was written."""
    digest = table_sha256 or storage.file_sha256(f"{base}.h5")
    body = json.dumps({**meta, "table_sha256": digest}, indent=1, default=str).encode()
    storage.atomic_write_bytes(f"{base}_meta.json", body)
    return body


def require_video(record: AnalysisRecord) -> str:
    """The record's video, or a clear error when it is no longer where the analysis found it."""
    if not storage.exists(record.video):
        raise InputError(record.meta, f"the analysed video {record.video} is not there any more (moved or "
                                      "renamed?); name it with --video")
    return record.video


def remove_stale_outputs(base: str, written: list[str], plots: str) -> list[str]:
    """After a run wrote `written` for the table at `base`: remove what an earlier run left there for the
    same video that this run did not write (a format not asked now, `_filtered` tables, labeled videos,
    an ensemble's member tables, and the video's `plots` folder when posecluster's `plot` drew it from a
    table that is not there as it was), so that every output in the folder is this run's own. A plots
    folder with no record of posecluster's (DeepLabCut's own, beside the video) is left, with a warning.
    Returns what was removed."""
    own = {storage.basename(uri) for uri in written}
    stale = [item.uri for item in list_named(base)
             if is_output_of(base, item.uri) and storage.basename(item.uri) not in own]
    for uri in stale:
        storage.remove(uri)
    if storage.exists(plots):
        plots_stale = _plots_are_stale(plots, base)
        if plots_stale:
            storage.remove(plots, recursive=True)
            stale.append(plots)
        elif plots_stale is None:
            log.warning("%s: left in place, with no record of which table it was drawn from (no %s: "
                        "DeepLabCut's plots, or an older posecluster's); it may show an earlier run's poses",
                        storage.redact_uri(plots), storage.basename(plots_record(plots)))
    if stale:
        log.info("%s: removed an earlier run's outputs: %s", storage.redact_uri(base),
                 ", ".join(storage.basename(uri) for uri in stale))
    return stale


def _plots_are_stale(plots: str, base: str) -> bool | None:
    """Whether posecluster's record in `plots` names a table beside `base` that this run replaced (the
    table or its `_filtered` table) or that is no longer there as it was drawn from; None where the
    folder has no record (not posecluster's: never removed)."""
    try:
        record = json.loads(storage.read_bytes(plots_record(plots)))
        table, recorded = storage.join(storage.parent(base), str(record["table"])), record["table_sha256"]
    except FileNotFoundError:
        return None
    except (KeyError, TypeError, ValueError):
        return True  # posecluster's name, no usable record: nothing vouches for the plots
    own = storage.basename(base)
    if storage.basename(table) in (f"{own}.h5", f"{own}_filtered.h5"):
        return True
    return not storage.exists(table) or storage.file_sha256(table) != recorded


def forget_source(record_uri: str) -> None:
    """Before drawing outputs again (plots, a labeled video): the old record no longer speaks for them."""
    storage.remove(record_uri)


def record_source(record_uri: str, table_uri: str, record: AnalysisRecord, made_by: str) -> None:
    """Beside outputs drawn from `table_uri` (plots, a labeled video, wherever --out put them): which table
    (its sha256) and analysis they came from, so that a later reader can tell them from an earlier run's.
    The record's own table was checked against its meta's sha256 by checked_table before it was drawn: that
    digest is reused rather than the table read again."""
    reuse = table_uri == record.table and record.table_sha256
    source = {"made_by": made_by, "video": record.video, "table": storage.basename(table_uri),
              "table_uri": storage.redact_uri(storage.absolute(table_uri)),
              "table_sha256": record.table_sha256 if reuse else storage.file_sha256(table_uri),
              "meta": storage.redact_uri(storage.absolute(record.meta))}
    storage.atomic_write_bytes(record_uri, json.dumps(source, indent=1).encode())



def forget_filtered(table_uri: str) -> None:
    """Before writing new `_filtered` outputs: their old source record no longer speaks for them."""
    forget_source(derived_record(table_uri))


def record_filtered(table_uri: str, outputs: dict[str, str], how: dict) -> None:
    """Beside the `_filtered` outputs just written from `table_uri`: which table (its sha256) they came
    from, so that a reader can tell them from the filtering of an earlier run's table."""
    record = {"table": storage.basename(table_uri), "table_sha256": storage.file_sha256(table_uri),
              "outputs": sorted(storage.basename(uri) for uri in outputs.values()), "filter": how}
    storage.atomic_write_bytes(derived_record(table_uri), json.dumps(record, indent=1, default=str).encode())


def checked_filtered(table_uri: str) -> str:
    """The `_filtered.h5` beside `table_uri`, after checking it was filtered from that table as it is now;
    else an InputError saying to filter again."""
    filtered = filtered_table(table_uri)
    if not storage.exists(filtered):
        raise InputError(filtered, "missing: run `posecluster filter` on the poses first")
    again = f"run `posecluster filter` on {storage.redact_uri(table_uri)} again"
    try:
        record = json.loads(storage.read_bytes(derived_record(table_uri)))
        recorded = record["table_sha256"]
    except FileNotFoundError:
        raise InputError(filtered, f"no record of the table it was filtered from ({storage.basename(derived_record(table_uri))} "
                                   f"is missing); {again}") from None
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(derived_record(table_uri), f"not a filtering record ({exc}); {again}") from None
    if recorded != storage.file_sha256(table_uri):
        raise InputError(filtered, f"was filtered from another table than {storage.basename(table_uri)} as it "
                                   f"is now (an earlier run's poses); {again}")
    return filtered
