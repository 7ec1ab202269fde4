"""Output names: the one owner of where each command writes what it makes from a video.

Where a video's outputs go is a pure function of that video's URI and the command's `--out`, never of the
other videos a job lists: a job over `day1/` and a later job over `day2/` into the same `--out` must not
write the same object, and a rerun must find each video's table where the first run put it. So the output
folder mirrors the video's own location under `--out`:

    s3://lab/videos/2026/day1/mouse.mp4   ->  <out>/lab/videos/2026/day1/mouse<scorer>.h5
    /data/cams/day1/mouse.mp4             ->  <out>/data/cams/day1/mouse<scorer>.h5
    https://host/v/mouse.mp4?X-Amz-...    ->  <out>/host/v/mouse<scorer>.h5

(bucket or host, then the key's folders; a local path's folders from the root). File names are
DeepLabCut's (`<video stem><scorer>.h5`), so DeepLabCut's tools find them beside a copy of the video. The
URI is taken without what only grants access (user info, a presigned URL's signature: storage.canonical_uri);
a query that selects the object (`?versionId=3`, `?id=2`) is part of the name as a short hash
(`mouse_q1a2b3c4d<scorer>.h5`), so two objects behind one path never share a table.
Two videos of one folder that differ only in their extension (mouse.mp4, mouse.avi) map to one table:
callers refuse the second by name (`collisions` within a command; a table whose `_meta.json` names another
video, across jobs), never overwrite.
Every name a command derives from a base (`<base>_filtered.h5`, `<base>_el_filtered_labeled.mp4`, ...) is
listed once here (DERIVED_SUFFIXES); a base whose longest derived name would exceed a file name's limit is
refused when the base is made, before any frame is predicted, not by `filter` or `label-video` later.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Union

from posecluster import storage
from posecluster.errors import InputError


def video_stem(video_uri: str) -> str:
    """The video's file stem, with a short hash of the query that selects it when there is one."""
    stem = storage.stem(storage.object_path(video_uri))
    query = storage.selecting_query(video_uri)
    return f"{stem}_q{hashlib.sha256(query.encode()).hexdigest()[:9]}" if query else stem


def mirror_folder(uri: str) -> str:
    """The folder of `uri` as a relative path: 's3://lab/a/b/v.mp4' -> 'lab/a/b'; '/data/a/v.mp4' -> 'data/a'."""
    canonical = storage.object_path(uri)
    path = canonical.split("://", 1)[1] if "://" in canonical else canonical
    folder = storage.parent(path) if "/" in path.strip("/") else ""
    parts = [p for p in folder.split("/") if p not in ("", ".", "..")]
    return "/".join(parts)


def _in(out_folder: str, folder: str, name: str) -> str:
    return storage.join(out_folder, folder, name) if folder else storage.join(out_folder, name)


def output_base(video_uri: str, out_folder: str, scorer: str) -> str:
    """`<out>/<video's folder>/<video stem><scorer>`: the pose table's URI without its suffix (unchecked:
    callers that write under it check it with refuse_long_names or long_name_problem)."""
    return _in(out_folder, mirror_folder(video_uri), f"{video_stem(video_uri)}{scorer}")


@dataclass(frozen=True)
class Mirrored:
    """The archive layout (the default of `--out`): the video's folder mirrored under `folder`."""

    folder: str

    def base(self, video_uri: str, scorer: str) -> str:
        return refuse_long_names(video_uri, output_base(video_uri, self.folder, scorer))

    def plots(self, video_uri: str) -> str:
        return plot_folder(video_uri, self.folder)


@dataclass(frozen=True)
class Destfolder:
    """DeepLabCut's `destfolder` layout: every table flat in `folder` (`<folder>/<video stem><scorer>.h5`),
    or beside its video when `folder` is None (DeepLabCut's default), where DeepLabCut's own tools look.
    Two videos with one stem meet here: callers refuse the second by the video in `_meta.json`."""

    folder: str | None = None

    def _folder(self, video_uri: str) -> str:
        if self.folder is not None:
            return self.folder
        if storage.object_path(video_uri).split("://", 1)[0].lower() in ("http", "https"):
            raise InputError(storage.redact_uri(video_uri), "a web URL's folder cannot be written to: give --out")
        return storage.parent(storage.object_path(video_uri))

    def base(self, video_uri: str, scorer: str) -> str:
        return refuse_long_names(video_uri, storage.join(self._folder(video_uri), f"{video_stem(video_uri)}{scorer}"))

    def plots(self, video_uri: str) -> str:
        return storage.join(self._folder(video_uri), "plot-poses", video_stem(video_uri))


Place = Union[Mirrored, Destfolder]


def place_of(out: "str | Place") -> Place:
    """`--out` as given to the archive layout (a folder URI), or a layout chosen by the caller."""
    return Mirrored(out) if isinstance(out, str) else out


def collisions(bases: dict[str, str]) -> dict[str, str]:
    """Videos whose output base another video already has (day1/mouse.mp4 and day1/mouse.avi): each such
    video -> the earlier video it would overwrite. Outputs must never silently replace each other."""
    first: dict[str, str] = {}
    clashes: dict[str, str] = {}
    for video, base in bases.items():
        if base in first:
            clashes[video] = first[base]
        else:
            first[base] = video
    return clashes


def output_bases(videos: list[str], out_folder: str, scorer: str) -> dict[str, str]:
    return {video: output_base(video, out_folder, scorer) for video in videos}


def labeled_video_uri(video_uri: str, table_uri: str, out_folder: str) -> str:
    """`<out>/<video's folder>/<table stem>_labeled.mp4` (DeepLabCut's name; the stem carries the scorer)."""
    return _in(out_folder, mirror_folder(video_uri), f"{storage.stem(table_uri)}_labeled.mp4")


def plot_folder(video_uri: str, out_folder: str) -> str:
    """DeepLabCut's `plot-poses/<video stem>/`, under `<out>/plot-poses/<video's folder>/`."""
    return _in(storage.join(out_folder, "plot-poses"), mirror_folder(video_uri), video_stem(video_uri))


def filtered_table(table_uri: str) -> str:
    """`<video><scorer>.h5` -> `<video><scorer>_filtered.h5` beside it (DeepLabCut's name)."""
    return table_uri[: -len(".h5")] + "_filtered.h5"


def derived_record(table_uri: str) -> str:
    """`<video><scorer>_filtered_source.json`: which table the `_filtered` outputs were made from."""
    return table_uri[: -len(".h5")] + "_filtered_source.json"


def plots_record(plots_folder: str) -> str:
    """`plot-poses/<video>/_source.json`: which table `plot` drew the folder's plots from."""
    return storage.join(plots_folder, "_source.json")


def labeled_record(labeled_uri: str) -> str:
    """`<table stem>_labeled.mp4` -> `<table stem>_labeled_source.json`: which table it was drawn from."""
    return labeled_uri[: -len(".mp4")] + "_source.json"


# A multi-animal model's tracked table: `<video><scorer>_el.h5` (+ `_el.csv`), as DeepLabCut names the
# table its default (ellipse) tracker stitched; its `_meta.json`, `_filtered` tables and labeled videos
# follow from that base (`<video><scorer>_el_meta.json`, ...). Beside it `_el_tracklets.npz`: the
# detections linked into tracklets before stitching (DeepLabCut keeps `_el.pickle`), which `analyze`
# reuses when the video, model and settings are the same.
TRACKED_SUFFIX = "_el"


def tracked_base(base: str) -> str:
    """`<video><scorer>` -> `<video><scorer>_el`: the base of a multi-animal model's outputs."""
    return base + TRACKED_SUFFIX


def tracklets_file(base: str) -> str:
    """The un-stitched detections and tracklets beside a tracked table at `base` (a tracked_base)."""
    return f"{base}_tracklets.npz"


FORMATS = ("h5", "csv", "parquet")
# Every suffix a posecluster command appends to the base of a video's table (`<base>.h5`): analyze/infer
# write the table in each format, an ensemble's variance and member tables (`_member<k>.h5`: MEMBER),
# `_meta.json` and a multi-animal table's `_tracklets.npz`; filter writes `_filtered.*` and its source
# record; label-video `_labeled.mp4` / `_filtered_labeled.mp4` and their `_source.json` records (named
# after the table it draws, in its --out, which may be the poses folder). A multi-animal model's base is itself `<base>_el` (TRACKED_SUFFIX).
# The one list: every name derived from a base is one of these (tests/infer/test_naming.py greps the code).
MEMBER = "_member<k>.h5"
DERIVED_SUFFIXES: tuple[str, ...] = (
    *(f".{fmt}" for fmt in FORMATS), "_meta.json", "_ensemble_variance.h5", MEMBER, "_tracklets.npz",
    *(f"_filtered.{fmt}" for fmt in FORMATS), "_filtered_source.json", "_labeled.mp4", "_filtered_labeled.mp4",
    "_labeled_source.json", "_filtered_labeled_source.json",
)
# An ensemble of up to 9,999 members (each a trained model) is what a name must leave room for.
_WIDEST_MEMBER = MEMBER.replace("<k>", "9999")


def _widest(suffix: str) -> str:
    return _WIDEST_MEMBER if suffix == MEMBER else suffix


# The longest name ever derived from a video's base `<video stem><scorer>`: a multi-animal table's
# `_el` then the longest suffix (`<base>_el_filtered_labeled.mp4`).
LONGEST_DERIVED_SUFFIX = max((TRACKED_SUFFIX + _widest(s) for s in reversed(DERIVED_SUFFIXES)), key=lambda s: len(s.encode()))


def long_name_problem(video_uri: str, base: str) -> str:
    """Why `base` cannot be written under (a name derived from it longer than storage.NAME_MAX_BYTES,
    which a local file system refuses with ENAMETOOLONG and a copy of an object store's outputs to a
    disk would), with what to shorten; '' when every derived name fits."""
    name = storage.basename(base)
    longest = len((name + LONGEST_DERIVED_SUFFIX).encode())
    if longest <= storage.NAME_MAX_BYTES:
        return ""
    stem = storage.stem(storage.object_path(video_uri))
    rest = len(name.encode()) - len(stem.encode())  # the scorer, and a selecting query's hash
    room = storage.NAME_MAX_BYTES - len(LONGEST_DERIVED_SUFFIX.encode()) - rest
    return (f"the names of its outputs would be too long: {name!r} ({len(name.encode())} bytes: the video's "
            f"stem, {len(stem.encode())} bytes, and the model's DeepLabCut scorer) plus "
            f"{LONGEST_DERIVED_SUFFIX!r} is {longest} bytes, over a file name's limit of "
            f"{storage.NAME_MAX_BYTES} bytes (UTF-8); rename the video to a stem of at most {max(room, 0)} bytes "
            f"or use a model with a shorter scorer")


def refuse_long_names(video_uri: str, base: str) -> str:
    """`base`, once every name derived from it is known to fit (else InputError naming the video)."""
    problem = long_name_problem(video_uri, base)
    if problem:
        raise InputError(storage.redact_uri(video_uri), problem)
    return base


def _suffix_pattern(suffix: str) -> str:
    return re.escape(suffix).replace(re.escape("<k>"), r"\d+")


# What is_output_of takes for an output of a base: exactly the suffixes listed above.
_OUTPUT_SUFFIX = re.compile("^(?:" + "|".join(_suffix_pattern(s) for s in DERIVED_SUFFIXES) + ")$")


def is_output_of(base: str, uri: str) -> bool:
    """Whether `uri` is one of the outputs a run or a tool writes for the table at `base` (DERIVED_SUFFIXES)."""
    name, own = storage.basename(uri), storage.basename(base)
    return storage.parent(uri) == storage.parent(base) and name.startswith(own) and bool(
        _OUTPUT_SUFFIX.match(name[len(own):]))
