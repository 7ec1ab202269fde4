"""Join the tracklets of a video's segments into the whole video's tracklets.

A segment made every link of its own frames except those into its first two (linking.py says why); the
join makes those with the same `links_into`, from the detections the segments kept of their edge frames
(the two frames before a cut may lie in one or two segments before it), and continues the tracklet that
ends on a link's detection at t-1 with the one that begins on its detection at t. It reads only the
summaries and the edge detections (never a segment's other detections), so it is cheap in the number of
tracklets and independent of video length otherwise. It must link with the TrackingConfig the segments
were tracked with.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import numpy as np

from posecluster.config import TrackingConfig
from posecluster.tracking.linking import EDGE, FrameDetections, SegmentTracklets, links_into
from posecluster.tracking.tracklets import Tracklet, Tracklets


@dataclass
class JoinedTracklets:
    """The whole video's tracklets, ordered by key (first frame, first row), and for each segment (in
    the order given) the row in `tracklets` of each of its local tracklets."""

    tracklets: Tracklets
    rows_of_segment: list[np.ndarray]


def join_segments(segments: Iterable[SegmentTracklets], config: TrackingConfig | None = None) -> JoinedTracklets:
    """Segments must tile the video from frame 0 without gaps or overlaps, in order. A segment may be
    given with only its summary (tracklets, edges) filled; its other detections are not read. Each is
    read once, in order, and let go: `segments` may be a generator reading them one at a time."""
    config = config or TrackingConfig()
    made = _Rows()
    local_rows: list[np.ndarray] = []
    ending: dict[tuple[int, int], int] = {}  # (frame, row) of a joined tracklet's last detection -> its row
    recent: dict[int, FrameDetections] = {}  # the edge frames a link into the next frames may read
    expected_start = 0
    for segment in segments:
        if segment.start != expected_start:
            raise ValueError(f"segments must tile the video in order: one starts at frame {segment.start}, expected {expected_start}")
        tracklets = segment.tracklets
        made.shape_from(tracklets)
        rows = np.full(len(tracklets), -1, np.int64)
        for t in range(segment.start, min(segment.start + EDGE, segment.end)):
            current = _edge(segment, t)
            links = links_into(recent.get(t - 2), recent[t - 1], current, t, config) if t > 0 else {}
            for local in np.flatnonzero(tracklets.first_frame == t):  # the order they began in
                continued = links.get(int(tracklets.first_index[local]), -1)
                if continued >= 0:
                    if (t - 1, continued) not in ending:
                        raise ValueError(f"detection {tracklets.first_index[local]} of frame {t} continues detection "
                                         f"{continued} of frame {t - 1}, which ends no tracklet")
                    rows[local] = ending.pop((t - 1, continued))
                    made.open[int(rows[local])].append(tracklets.row(local))
                else:
                    rows[local] = made.start(tracklets.row(local))
                ending[(int(tracklets.last_frame[local]), int(tracklets.last_index[local]))] = int(rows[local])
            recent[t] = current
        inner = rows < 0  # began after the first two frames: linked in the segment
        rows[inner] = made.reserve(int(inner.sum()))
        # Only a tracklet ending on the segment's last frame can be continued by the next segment's links.
        last = tracklets.last_frame == segment.end - 1
        for local in np.flatnonzero(inner & last):
            made.open[int(rows[local])] = tracklets.row(local)
        made.finish(rows[inner & ~last], tracklets.take(inner & ~last))
        ending = {(int(tracklets.last_frame[i]), int(tracklets.last_index[i])): int(rows[i]) for i in np.flatnonzero(last)}
        made.finish_open(keep=set(ending.values()))
        for t in range(max(segment.end - EDGE, segment.start), segment.end):
            recent[t] = _edge(segment, t)
        recent = {t: d for t, d in recent.items() if t >= segment.end - EDGE}
        local_rows.append(rows)
        expected_start = segment.end
    if made.n_keypoints is None:
        raise ValueError("no segments to join")
    made.finish_open(keep=set())
    # Sorting by key makes the order independent of how the segments were cut.
    tracklets, new_row = made.in_key_order()
    return JoinedTracklets(tracklets, [new_row[rows] for rows in local_rows])


class _Rows:
    """The joined tracklets as they are made, numbered in the order they began. A tracklet that a later
    segment may still continue (it ends on the last frame read, or began in a segment's first two frames)
    is held open as a Tracklet; every other one is kept as rows of arrays (~1 kB a tracklet, not a Python
    object each), so the join holds little more than the summaries it returns."""

    def __init__(self):
        self.count = 0
        self.open: dict[int, Tracklet] = {}
        self.chunks: list[tuple[np.ndarray, Tracklets]] = []  # (their rows, finished tracklets)
        self.n_keypoints: int | None = None
        self.n_identities = 0

    def shape_from(self, tracklets: Tracklets) -> None:
        if self.n_keypoints is None:
            self.n_keypoints, self.n_identities = tracklets.head_poses.shape[2], tracklets.identity.shape[1]

    def reserve(self, n: int) -> np.ndarray:
        self.count += n
        return np.arange(self.count - n, self.count, dtype=np.int64)

    def start(self, tracklet: Tracklet) -> int:
        row = int(self.reserve(1)[0])
        self.open[row] = tracklet
        return row

    def finish(self, rows: np.ndarray, tracklets: Tracklets) -> None:
        if len(rows):
            self.chunks.append((rows, tracklets))

    def finish_open(self, keep: set[int]) -> None:
        done = sorted(row for row in self.open if row not in keep)
        if done:
            self.finish(np.array(done, np.int64),
                        Tracklets.stack([self.open.pop(row) for row in done], self.n_keypoints, self.n_identities))

    def in_key_order(self) -> tuple[Tracklets, np.ndarray]:
        """Every tracklet, ordered by key, and the new row of each old one."""
        if self.count == 0:
            return Tracklets.empty(self.n_keypoints, self.n_identities), np.zeros(0, np.int64)
        first_frame = np.empty(self.count, np.int64)
        first_index = np.empty(self.count, np.int64)
        for rows, chunk in self.chunks:
            first_frame[rows], first_index[rows] = chunk.first_frame, chunk.first_index
        order = np.lexsort((first_index, first_frame))
        new_row = np.empty(self.count, np.int64)
        new_row[order] = np.arange(self.count)
        placed = {}
        for name in Tracklets.field_names():  # a field at a time, each let go once placed: ~1x the summaries
            column = None
            for rows, chunk in self.chunks:
                part = getattr(chunk, name)
                if column is None:
                    column = np.empty((self.count, *part.shape[1:]), part.dtype)
                column[new_row[rows]] = part
                setattr(chunk, name, None)
            placed[name] = column
        self.chunks = []
        return Tracklets(**placed), new_row


def _edge(segment: SegmentTracklets, t: int) -> FrameDetections:
    found = segment.edges.of(t)
    if found is None:
        raise ValueError(f"segment [{segment.start}, {segment.end}) kept no detections of its edge frame {t}")
    return found
