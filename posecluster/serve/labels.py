"""Saving labels from the browser: a bounded body parsed without 5xx on hostile JSON, frames that exist in
the folder, coordinates within the image, and a per-frame merge with whatever was saved meanwhile.

The merge: the page sends, for each frame it changed, its labels and the labels it started from (`base`).
A frame whose stored labels still equal `base` (or already equal the page's) takes the page's labels; a
frame changed on both sides is a conflict: nothing of it is written and both versions go back to the
page for the person to choose. Frames without conflict are written at once, so two people labeling
different frames of one folder never block each other."""

from __future__ import annotations

import json
import math

import numpy as np

from posecluster import api
from posecluster.config import ProjectConfig
from posecluster.errors import InputError
from posecluster.labeling.folder_table import FolderTable

MAX_INTEGER_DIGITS = 20
COORDINATE_TOLERANCE = 1e-6


class BadBody(ValueError):
    """The request body is not the JSON a save expects."""


def parse_json(raw: bytes):
    """JSON from the browser, refused with BadBody (a 4xx) rather than failing on hostile input: integers of
    more digits than any coordinate, nesting deeper than the parser's recursion."""
    def bounded_int(text: str) -> int:
        if len(text.lstrip("-")) > MAX_INTEGER_DIGITS:
            raise ValueError(f"an integer of {len(text)} digits is not a coordinate")
        return int(text)

    try:
        return json.loads(raw, parse_int=bounded_int)
    except RecursionError:
        raise BadBody("request body is nested too deeply to be labels") from None
    except (ValueError, UnicodeDecodeError) as exc:  # JSONDecodeError is a ValueError
        raise BadBody(f"request body is not valid JSON: {exc}") from None


def parse_body(raw: bytes) -> dict:
    """{"version": str, "labels": {image: points}, "base": {image: points}} (base optional)."""
    body = parse_json(raw)
    if (not isinstance(body, dict) or not isinstance(body.get("labels"), dict) or not isinstance(body.get("version"), str)
            or not isinstance(body.get("base", {}), dict)):
        raise BadBody('expected {"version": "<as loaded>", "labels": {"<image>": [[x, y] or null per body part]}, '
                      '"base": {"<image>": [the labels the page started from]}}')
    return body


def checked_points(image: str, points, bodyparts: list[str], size: tuple[int, int] | None) -> list:
    """[[x, y] | None per body part] with finite coordinates inside the image (`size`: width, height; None
    for labels the page only reports, such as a merge's base), or InputError naming the frame and the
    part."""
    if not isinstance(points, list) or len(points) != len(bodyparts):
        raise InputError(image, f"expected a list of {len(bodyparts)} points (one per body part, null when not visible)")
    return [checked_point(image, f"body part {k} ({bodyparts[k]})", point, size) for k, point in enumerate(points)]


def checked_point(image: str, name: str, point, size: tuple[int, int] | None) -> list | None:
    """One point from the browser ([x, y] or None), or InputError naming the frame and `name`. DeepLabCut's
    training keeps only points inside the image (0 < x < width, 0 < y < height after truncation); a point
    outside is a slip of the mouse, not a label."""
    if point is None:
        return None
    if (not isinstance(point, list) or len(point) != 2
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in point)):
        raise InputError(image, f"{name}: expected [x, y] numbers or null, got {point!r}")
    x, y = (float(v) for v in point)
    if not (math.isfinite(x) and math.isfinite(y)):
        raise InputError(image, f"{name}: coordinates must be finite, got {point!r}")
    if size is not None and not (0 <= x < size[0] and 0 <= y < size[1]):
        width, height = size
        raise InputError(image, f"{name}: ({x:g}, {y:g}) lies outside the {width}x{height} "
                                "image (DeepLabCut drops points outside the image)")
    return [x, y]


class SingleAnimalFrames:
    """How a single-animal project's folders are read, shown, checked and saved (serve/animals.py holds
    the multi-animal counterpart; projects.py picks one per project from its config)."""

    def __init__(self, project: ProjectConfig):
        self.project = project

    def read(self, project_uri: str, folder: str) -> FolderTable:
        return api.folder_table(project_uri, folder)

    def counts(self, table: FolderTable) -> tuple[int, int]:
        """(labeled frames, frames proposed by outliers)."""
        labels = table.labels
        labeled = int((~np.isnan(labels.keypoints).all(axis=(1, 2))).sum()) if len(labels) else 0
        return labeled, len(table.proposed)

    def page(self, table: FolderTable, shown: list[str], served: dict) -> dict:
        """The keys of the labels page that depend on the kind of project."""
        labels = table.keypoints()
        parts = set(table.project.bodyparts)
        # The labeler draws these lines; a pair naming an unknown part (a typo in config.yaml) is left out.
        skeleton = [list(pair) for pair in table.project.skeleton if len(pair) == 2 and set(pair) <= parts]
        return {
            "bodyparts": list(table.project.bodyparts), "skeleton": skeleton,
            "labels": {image: labels[image] for image in shown},
            "machine": {image: points for image, points in table.machine.items() if image in served},
            "proposed": [image for image in table.proposed if image in served],
        }

    def checked(self, image: str, points, size: tuple[int, int] | None) -> list:
        return checked_points(image, points, list(self.project.bodyparts), size)

    def wire(self, points):
        """A frame's points as the page sends and receives them (the same list here)."""
        return points

    def save(self, project_uri: str, folder: str, accepted: dict, version: str) -> str:
        return api.save_labels(project_uri, folder, accepted, version)


def same_points(a, b) -> bool:
    if a is None or b is None or len(a) != len(b):
        return a is None and b is None
    for p, q in zip(a, b):
        if p is None or q is None:
            if p is not q:
                return False
        elif abs(p[0] - q[0]) > COORDINATE_TOLERANCE or abs(p[1] - q[1]) > COORDINATE_TOLERANCE:
            return False
    return True


def merge_frames(stored: dict[str, list], mine: dict[str, list], base: dict[str, list],
                 version_unchanged: bool) -> tuple[dict[str, list], list[dict]]:
    """(frames to write, conflicts). A frame without a `base` counts as unchanged by others only when the
    table is still the version the page loaded (a page that sends no bases gets the old whole-table rule)."""
    accepted, conflicts = {}, []
    for image, points in mine.items():
        theirs = stored.get(image)
        if image in base:
            unchanged = same_points(theirs, base[image])
        else:
            unchanged = version_unchanged
        if unchanged or same_points(theirs, points):
            accepted[image] = points
        else:
            conflicts.append({"image": image, "yours": points, "theirs": theirs})
    return accepted, conflicts
