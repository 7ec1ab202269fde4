"""Multi-animal tracking within a video: frame-to-frame links per segment, a join across segment cuts,
stitching into the project's individuals once per video, and tracking metrics. Pure numpy, scipy and
networkx; the cluster layer places the segments on workers. A sharded run gives exactly the tracks of a
single-process run (linking.py says why)."""

from posecluster.config import TrackingConfig
from posecluster.tracking.join import JoinedTracklets, join_segments
from posecluster.tracking.linking import EdgeDetections, FrameDetections, SegmentTracklets, links_into, track_segment
from posecluster.tracking.stitching import stitch
from posecluster.tracking.tracklets import Tracklets
from posecluster.tracking.tracks import segment_poses, stitch_segments, track_in_segments, track_video

__all__ = [
    "EdgeDetections", "FrameDetections", "JoinedTracklets", "SegmentTracklets", "TrackingConfig", "Tracklets",
    "join_segments", "links_into", "segment_poses", "stitch", "stitch_segments", "track_in_segments",
    "track_segment", "track_video",
]
