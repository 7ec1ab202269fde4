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
    n_keypoints = n_identities = None
    joined: list[Tracklet] = []
    local_rows: list[np.ndarray] = []
    ending: dict[tuple[int, int], int] = {}  # (frame, row) of a joined tracklet's last detection -> its row
    recent: dict[int, FrameDetections] = {}  # the edge frames a link into the next frames may read
    expected_start = 0
    for segment in segments:
        if segment.start != expected_start:
            raise ValueError(f"segments must tile the video in order: one starts at frame {segment.start}, expected {expected_start}")
        tracklets = segment.tracklets
        if n_keypoints is None:
            n_keypoints, n_identities = tracklets.head_poses.shape[2], tracklets.identity.shape[1]
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
                    joined[rows[local]].append(tracklets.row(local))
                else:
                    rows[local] = len(joined)
                    joined.append(tracklets.row(local))
                ending[(int(tracklets.last_frame[local]), int(tracklets.last_index[local]))] = int(rows[local])
            recent[t] = current
        for local in np.flatnonzero(rows < 0):  # began after the first two frames: linked in the segment
            rows[local] = len(joined)
            joined.append(tracklets.row(local))
        # Only a tracklet ending on the segment's last frame can be continued by the next segment's links.
        ending = {(int(tracklets.last_frame[i]), int(tracklets.last_index[i])): int(rows[i])
                  for i in np.flatnonzero(tracklets.last_frame == segment.end - 1)}
        for t in range(max(segment.end - EDGE, segment.start), segment.end):
            recent[t] = _edge(segment, t)
        recent = {t: d for t, d in recent.items() if t >= segment.end - EDGE}
        local_rows.append(rows)
        expected_start = segment.end
    if n_keypoints is None:
        raise ValueError("no segments to join")
    # Sorting by key makes the order independent of how the segments were cut.
    order = np.lexsort(([t.first_index for t in joined], [t.first_frame for t in joined]))
    new_row = np.empty(len(order), np.int64)
    new_row[order] = np.arange(len(order))
    return JoinedTracklets(Tracklets.stack([joined[i] for i in order], n_keypoints, n_identities),
                           [new_row[rows] for rows in local_rows])


def _edge(segment: SegmentTracklets, t: int) -> FrameDetections:
    found = segment.edges.of(t)
    if found is None:
        raise ValueError(f"segment [{segment.start}, {segment.end}) kept no detections of its edge frame {t}")
    return found
