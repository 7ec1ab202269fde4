"""Tracks of a multi-animal analysis in the browser: a tracked pose table (`<video><scorer>_el.h5`, DLC's
four-level layout) beside its `_meta.json`, shown frame by frame over the video it names, each individual
in its own colour with its name.

Three answers, so that stepping through frames costs one small JSON and one image: the table's names and
length (`/api/tracks`), one frame's points (`/api/tracks/frame`), one frame of the video as a PNG with
nothing drawn on it (`/api/tracks/image`; the page draws the points). The table, its _meta.json and the
video that _meta.json names are each confined to the caller's folders before they are read."""

from __future__ import annotations

import hashlib
import math

import numpy as np
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from posecluster import api, storage
from posecluster.errors import InputError
from posecluster.serve.jobs import DEFAULT_PCUTOFF, confined_table, count, shown_location, text
from posecluster.serve.paths import Scope
from posecluster.serve.projects import IdentityCache

TABLES_KEPT = 4  # tracked tables held in memory (a person steps through one video at a time)


def _skeleton(meta: dict, bodyparts: list[str]) -> list[list[str]]:
    """The project's skeleton as the analysis's resolved config recorded it: pairs of known body parts."""
    config = meta.get("config") if isinstance(meta.get("config"), dict) else {}
    project = config.get("project") if isinstance(config.get("project"), dict) else {}
    pairs = project.get("skeleton") if isinstance(project.get("skeleton"), list) else []
    known = set(bodyparts)
    return [[a, b] for pair in pairs[:200] if isinstance(pair, list) and len(pair) == 2
            for a, b in [pair] if isinstance(a, str) and isinstance(b, str) and {a, b} <= known]


def _pcutoff(meta: dict) -> float:
    """The p-cutoff of the project the model was trained on (DeepLabCut hides points below it)."""
    config = meta.get("config") if isinstance(meta.get("config"), dict) else {}
    project = config.get("project") if isinstance(config.get("project"), dict) else {}
    value = project.get("pcutoff")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        return DEFAULT_PCUTOFF
    return float(value)


def _points(values: np.ndarray) -> list:
    """(n, 3) x, y, likelihood -> [[x, y, likelihood | None] | None, ...]: None where the point is absent."""
    out = []
    for x, y, p in values:
        if math.isnan(x) or math.isnan(y):
            out.append(None)
        else:
            out.append([float(x), float(y), None if math.isnan(p) else float(p)])
    return out


class TrackRoutes:
    def __init__(self, root: str):
        self.root = root
        self.tables = IdentityCache(entries=TABLES_KEPT)

    def routes(self) -> list[Route]:
        return [
            Route("/api/tracks", self.summary),
            Route("/api/tracks/frame", self.frame),
            Route("/api/tracks/image", self.image),
        ]

    def _tracks(self, scope: Scope, request: Request):
        table, meta = confined_table(scope, request.query_params.get("table"))
        tracks = self.tables.get(storage.identity(table).key(), lambda: api.read_animal_tracks(table))
        # The video may have frames after the last tracked row (none of its animals found there).
        frames = max(len(tracks), count(meta.get("frames")))
        return table, meta, tracks, frames

    def _index(self, request: Request, frames: int) -> int:
        try:
            index = int(request.query_params.get("frame", "0"))
        except ValueError:
            raise InputError(request.query_params.get("table") or "table", "frame must be an integer") from None
        if not 0 <= index < frames:
            raise InputError(request.query_params.get("table") or "table", f"frame {index} is outside the {frames} "
                                                                           "frames of this video")
        return index

    def summary(self, request: Request):
        scope: Scope = request.state.scope
        table, meta, tracks, frames = self._tracks(scope, request)
        return JSONResponse({
            "table": scope.relative(table), "video": shown_location(scope, meta.get("video")), "frames": frames,
            "scorer": tracks.scorer, "individuals": list(tracks.individuals), "bodyparts": list(tracks.bodyparts),
            "unique_bodyparts": list(tracks.unique_bodyparts), "skeleton": _skeleton(meta, list(tracks.bodyparts)),
            "pcutoff": _pcutoff(meta),
        })

    def frame(self, request: Request):
        """{"frame": i, "individuals": [[point per body part] per individual], "unique": [point per unique part]}."""
        scope: Scope = request.state.scope
        _, _, tracks, frames = self._tracks(scope, request)
        index = self._index(request, frames)
        if index < len(tracks):
            animals = [_points(tracks.poses[index, a]) for a in range(len(tracks.individuals))]
            unique = _points(tracks.unique_poses[index])
        else:
            animals = [[None] * len(tracks.bodyparts) for _ in tracks.individuals]
            unique = [None] * len(tracks.unique_bodyparts)
        return JSONResponse({"frame": index, "individuals": animals, "unique": unique})

    def image(self, request: Request):
        scope: Scope = request.state.scope
        table, meta, _, frames = self._tracks(scope, request)
        index = self._index(request, frames)
        video = scope.contain(text(meta.get("video")), shown=f"the video that {storage.basename(table)}'s _meta.json names")
        etag = '"' + hashlib.sha256(f"{storage.identity(video).key()}|{index}".encode()).hexdigest()[:32] + '"'
        headers = {"ETag": etag, "Cache-Control": "private, max-age=300"}
        if request.headers.get("if-none-match") == etag:
            return Response(status_code=304, headers=headers)
        return Response(api.video_frame_png(video, index), media_type="image/png", headers=headers)
