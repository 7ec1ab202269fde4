"""Join the tracklets of a video's segments into the whole video's tracklets.

Each segment recorded, for the tracklets that begin on its first frame, the detection at the frame
before that they continue; the previous segment's tracklet that ends on that detection is the same
tracklet. The join reads only the summaries (never the detections), so it is cheap in the number of
tracklets and independent of video length otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from posecluster.tracking.linking import SegmentTracklets
from posecluster.tracking.tracklets import Tracklet, Tracklets


@dataclass
class JoinedTracklets:
    """The whole video's tracklets, ordered by key (first frame, first row), and for each segment (in
    the order given) the row in `tracklets` of each of its local tracklets."""

    tracklets: Tracklets
    rows_of_segment: list[np.ndarray]


def join_segments(segments: Sequence[SegmentTracklets]) -> JoinedTracklets:
    """Segments must tile the video from frame 0 without gaps or overlaps, in order. A segment may be
    given with only its summary (tracklets, start_link) filled; the detections are not read."""
    if not segments:
        raise ValueError("no segments to join")
    n_keypoints = segments[0].tracklets.head_poses.shape[2]
    n_identities = segments[0].tracklets.identity.shape[1]
    joined: list[Tracklet] = []
    local_rows: list[np.ndarray] = []
    ending_at_cut: dict[int, int] = {}  # row of the detection on the frame before the cut -> joined tracklet
    expected_start = 0
    for segment in segments:
        if segment.start != expected_start:
            raise ValueError(f"segments must tile the video in order: one starts at frame {segment.start}, expected {expected_start}")
        tracklets = segment.tracklets
        rows = np.empty(len(tracklets), np.int64)
        for local in range(len(tracklets)):
            link = int(segment.start_link[local])
            if link >= 0:
                if link not in ending_at_cut:
                    raise ValueError(f"a tracklet at frame {segment.start} continues detection {link} of frame "
                                     f"{segment.start - 1}, which ends no tracklet of the segment before")
                rows[local] = ending_at_cut.pop(link)
                joined[rows[local]].append(tracklets.row(local))
            else:
                rows[local] = len(joined)
                joined.append(tracklets.row(local))
        ending_at_cut = {int(tracklets.last_index[i]): int(rows[i])
                         for i in range(len(tracklets)) if tracklets.last_frame[i] == segment.end - 1}
        local_rows.append(rows)
        expected_start = segment.end
    # Rows were created in key order already (segments in order, each in the order its tracklets began);
    # sorting by key makes that explicit and independent of how the segments were cut.
    order = np.lexsort(([t.first_index for t in joined], [t.first_frame for t in joined]))
    new_row = np.empty(len(order), np.int64)
    new_row[order] = np.arange(len(order))
    return JoinedTracklets(Tracklets.stack([joined[i] for i in order], n_keypoints, n_identities),
                           [new_row[rows] for rows in local_rows])
