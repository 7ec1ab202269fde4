"""From segments to tracks: the rows of each segment once the whole video is stitched, and the two ways
of running it all (one process over the whole video, or segments as a cluster would).

The output is plain arrays, (frames, n_individuals, K, 3) with NaN where an individual is absent; the
multi-animal pose table (AnimalTracks.poses) takes them as they are. A cluster computes and stores each
segment (SegmentTracklets.to_bytes), joins and stitches the summaries once, then writes each segment's
rows with segment_poses: memory stays that of one segment plus the video's tracklet summaries.
"""

from __future__ import annotations

from typing import Callable, Iterable, Sequence

import numpy as np

from posecluster.config import TrackingConfig
from posecluster.tracking.join import JoinedTracklets, join_segments
from posecluster.tracking.linking import SegmentTracklets, track_segment
from posecluster.tracking.stitching import stitch


def stitch_segments(segments: Sequence[SegmentTracklets], n_individuals: int,
                    config: TrackingConfig | None = None) -> list[np.ndarray]:
    """For each segment, the individual of each of its local tracklets (-1: left out)."""
    joined: JoinedTracklets = join_segments(segments, config)
    individual = stitch(joined.tracklets, n_individuals, config)
    return [individual[rows] for rows in joined.rows_of_segment]


def segment_poses(segment: SegmentTracklets, individual_of_local: np.ndarray, n_individuals: int) -> np.ndarray:
    """(end - start, n_individuals, K, 3): each individual's detection per frame of the segment, NaN
    where it has none."""
    n_keypoints = segment.poses.shape[1]
    out = np.full((segment.end - segment.start, n_individuals, n_keypoints, 3), np.nan)
    frame_of = np.repeat(np.arange(segment.end - segment.start), segment.counts)
    tracked = segment.labels >= 0
    individual = np.full(len(segment.labels), -1, np.int64)
    individual[tracked] = individual_of_local[segment.labels[tracked]]
    kept = individual >= 0
    out[frame_of[kept], individual[kept]] = segment.poses[kept]
    return out


def track_video(frames: Iterable, n_frames: int, n_individuals: int,
                config: TrackingConfig | None = None) -> np.ndarray:
    """Track a whole video in one process: (n_frames, n_individuals, K, 3)."""
    segment = track_segment(frames, 0, n_frames, config)
    (individual,) = stitch_segments([segment], n_individuals, config)
    return segment_poses(segment, individual, n_individuals)


def track_in_segments(frames: Sequence, cuts: Sequence[int], n_individuals: int, config: TrackingConfig | None = None,
                      map_fn: Callable = map) -> np.ndarray:
    """Track a video cut at `cuts` (frame numbers, increasing, inside (0, len(frames))) as a cluster
    does: each segment tracked on its own frames only (map_fn may be a process pool's map) and handed
    over as bytes, then joined, stitched, and its rows written. `frames` is indexable by frame number."""
    bounds = [0, *cuts, len(frames)]
    if any(a >= b for a, b in zip(bounds, bounds[1:])):
        raise ValueError(f"cuts must increase strictly inside (0, {len(frames)}): {list(cuts)}")
    work = [(list(frames[a:b]), a, b, config) for a, b in zip(bounds, bounds[1:])]
    segments = [SegmentTracklets.from_bytes(data) for data in map_fn(_segment_bytes, work)]
    individuals = stitch_segments(segments, n_individuals, config)
    return np.concatenate([segment_poses(s, ind, n_individuals) for s, ind in zip(segments, individuals)])


def _segment_bytes(work) -> bytes:
    frames, start, end, config = work
    return track_segment(frames, start, end, config).to_bytes()
