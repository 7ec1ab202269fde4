"""Multi-animal segments: a piece of a video predicted and linked into tracklets, stored atomically, then
all pieces of a video joined, stitched into the project's individuals and written as one maDLC pose table.

A segment [start, stop) reads and predicts its own frames only: it links them except into its first two
frames, and keeps the detections of its first and last two frames, from which the join makes the links
across its cuts exactly as a whole-video run does (tracking/linking.py says why). The stored file holds
every detection of its frames with the tracklet it belongs to, the tracklets' summaries, the edge
detections, the unique body parts and the SegmentResult (infer.multianimal_store: an archive worker's
segment file, or one process's pieces of a video in one file): a rerun joins (and stitches) from them
without running the network again. Cutting a video differently changes nothing in the joined table, so
one process (one segment after another) and a cluster (many) write the same rows. A file of another
format (tracklets of an older posecluster, linked from frames before their start) is refused, never joined.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from posecluster import storage
from posecluster.data.formats.madlc import AnimalTableWriter
from posecluster.data.video import VideoInfo
from posecluster.errors import InputError
from posecluster.infer.multianimal_checks import check_edges, check_names
from posecluster.infer.multianimal_predictor import AnimalFrame, MultiAnimalPredictor
from posecluster.infer.multianimal_store import AnimalSegment, read_pieces
from posecluster.infer.pipeline import predict_range
from posecluster.infer.segments import Joined, SegmentResult, video_facts
from posecluster.tracking import FrameDetections, TrackingConfig, segment_poses, stitch, track_segment
from posecluster.tracking import join_segments as join_tracklets


@dataclass(frozen=True)
class AnimalNames:
    """The names a tracked table carries (the model's project's)."""

    scorer: str
    individuals: list[str]
    bodyparts: list[str]
    unique_bodyparts: list[str]


def link_frames(predictor: MultiAnimalPredictor, frames: list[AnimalFrame | None], start: int, stop: int,
                source: str) -> AnimalSegment:
    """The segment [start, stop) from the model's output on exactly its frames (None: a frame not
    decoded, which has no detections)."""
    spec = predictor.spec
    nothing = FrameDetections(np.zeros((0, spec.num_parts, 3)),
                              np.zeros((0, len(spec.individuals))) if spec.identity else None)
    tracklets = track_segment((f.detections if f is not None else nothing for f in frames), start, stop,
                              predictor.tracking, source=source)
    unique = np.full((stop - start, spec.num_unique, 3), np.nan)
    for offset, frame in enumerate(frames):
        if frame is not None:
            unique[offset] = frame.unique
    return AnimalSegment(tracklets, unique)


def predict_animal_segment(predictor: MultiAnimalPredictor, info: VideoInfo, start: int, stop: int,
                           on_batch=None, source=None) -> tuple[AnimalSegment, SegmentResult]:
    """Frames [start, stop) through the model, linked into the segment's tracklets. A frame that could
    not be decoded has no detections (and is listed as missing)."""
    frames: list[AnimalFrame | None] = [None] * (stop - start)

    def sink(index: int, chunk: list[AnimalFrame]) -> None:
        frames[index - start : index - start + len(chunk)] = chunk

    ranged = predict_range(predictor, info, start, stop, sink, on_batch=on_batch, source=source)
    segment = link_frames(predictor, frames, start, stop, storage.redact_uri(info.uri))
    result = SegmentResult(video_uri=storage.redact_uri(info.uri), start=start, stop=stop, video=video_facts(info),
                           **asdict(ranged))
    return segment, result


def _placed(segment: AnimalSegment, result: SegmentResult, first: int) -> tuple[AnimalSegment, SegmentResult]:
    """A piece whose frames count from its own first one (spans between cues) numbered from `first`."""
    placed = result.placed_at(first)
    return AnimalSegment(segment.tracklets.shifted(placed.start - result.start), segment.unique), placed


@dataclass
class TrackingFigures:
    """What tracking found in a video (truth unknown): for _meta.json, the manifest and metrics."""

    tracklets: int = 0  # linked frame to frame, across the whole video (segments joined)
    tracklets_kept: int = 0  # taken by an individual when stitching
    individuals: int = 0  # the project's
    individuals_found: int = 0  # individuals with at least one detection
    # Where an individual's track passes from one tracklet to the next (the stitch decided who it was
    # across a gap or a crossing): the places an identity switch can be; truth unknown here.
    identity_joins: int = 0
    detections: int = 0  # animals written to the table, summed over frames
    frames_with_every_individual: int = 0
    per_individual: dict[str, int] = field(default_factory=dict)  # frames in which each one is present


def join_animal_segments(segment_uris: list[str], names: AnimalNames, frame_count: int | None, base_uri: str,
                         formats: tuple[str, ...] = (), tracking: TrackingConfig | None = None
                         ) -> tuple[Joined, TrackingFigures]:
    """The segments stored in `segment_uris` (segment files or pieces files, multianimal_store.read_pieces;
    in frame order, tiling [0, frame_count); relative pieces placed after the ones before them) -> one
    tracked table at `base_uri` (+ formats).
    Memory: the video's joined tracklet summaries and one piece at a time."""
    tracking = tracking or TrackingConfig()  # what the segments were linked with: the join links alike
    joined, expected, identities = Joined(), 0, None
    counts = (len(names.bodyparts), len(names.unique_bodyparts))

    def checked_summaries():
        """Each piece's summary, read, checked and handed to the join one at a time (never all at once)."""
        nonlocal expected, identities
        for piece in read_pieces(segment_uris, summary_only=True):
            segment, result = _placed(piece.segment, piece.result, expected)
            if result.start != expected:
                raise InputError(piece.source, f"segment starts at frame {result.start}, expected {expected}")
            check_names(segment.tracklets, segment.unique, *counts, identities, piece.source, False)
            check_edges(segment.tracklets, piece.source, tracking.min_likelihood)
            identities = segment.tracklets.tracklets.identity.shape[1]
            joined.add(result)
            expected = result.stop
            yield segment.tracklets

    whole = join_tracklets(checked_summaries(), tracking)
    if frame_count is not None and expected != frame_count:
        raise InputError(storage.redact_uri(base_uri), f"segments cover {expected} of {frame_count} frames")
    n = len(names.individuals)
    individual = stitch(whole.tracklets, n, tracking)
    kept, found = int((individual >= 0).sum()), len(set(individual[individual >= 0].tolist()))
    figures = TrackingFigures(tracklets=len(whole.tracklets), tracklets_kept=kept, individuals=n,
                              individuals_found=found, identity_joins=kept - found)
    present = np.zeros(n, np.int64)
    with storage.scratch_dir() as scratch:
        writer = AnimalTableWriter(names.scorer, names.individuals, names.bodyparts, names.unique_bodyparts,
                                   scratch, formats=formats)
        try:
            read = 0
            for piece in read_pieces(segment_uris):
                if read == len(joined.bounds):  # the files changed between the passes
                    raise InputError(piece.source, f"a piece more than the {read} read before")
                rows, (start, stop) = whole.rows_of_segment[read], joined.bounds[read]
                segment, result = _placed(piece.segment, piece.result, start)
                if (result.start, result.stop) != (start, stop):  # the files changed between the passes
                    raise InputError(piece.source, f"frames [{result.start}, {result.stop}), read before as "
                                                   f"[{start}, {stop})")
                check_names(segment.tracklets, segment.unique, *counts, None, piece.source, True)
                poses = segment_poses(segment.tracklets, individual[rows], n)
                here = ~np.isnan(poses[..., :2]).all(axis=(2, 3))  # (frames, individuals)
                present += here.sum(axis=0)
                figures.frames_with_every_individual += int(here.all(axis=1).sum())
                writer.append_tracks(result.start, poses, segment.unique)
                read += 1
            if read != len(joined.bounds):
                raise InputError(storage.redact_uri(base_uri), f"{read} segments read, {len(joined.bounds)} before")
            joined.outputs = writer.publish(base_uri)
            joined.table_sha256 = writer.table_sha256
        finally:
            writer.close()
    figures.detections = int(present.sum())
    figures.per_individual = {name: int(count) for name, count in zip(names.individuals, present)}
    return joined, figures
