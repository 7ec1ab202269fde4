"""One video through a multi-animal model in one process: detections linked into tracklets (kept beside
the table as `<base>_tracklets.npz`), stitched into the project's individuals, written as DeepLabCut's
tracked table `<video><scorer>_el.h5` (+ `.csv`) with its `_meta.json`.

The video is predicted and linked in consecutive pieces of at most `infer.multianimal_piece_frames`
frames, each a segment of infer.multianimal_segments, stored one after another in the one tracklets file
(infer.multianimal_store) and joined by the same code an archive job's join runs: memory holds one piece,
however long the video, and the table is a sharded run's whatever the pieces. A rerun whose video, model,
inference arithmetic and tracking settings are the same reuses the stored tracklets and only stitches and
writes again.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict

import numpy as np
from tqdm.auto import tqdm

from posecluster import storage
from posecluster.data.video import VideoInfo, probe
from posecluster.errors import InputError
from posecluster.infer.analyze import AnalysisResult
from posecluster.infer.multianimal_predictor import MultiAnimalPredictor
from posecluster.infer.multianimal_segments import (
    AnimalNames, TrackingFigures, join_animal_segments, predict_animal_segment,
)
from posecluster.infer.multianimal_store import FORMAT, PiecesWriter, stored_key
from posecluster.infer.naming import Place, place_of, tracked_base, tracklets_file
from posecluster.infer.results import forget_meta, publish_meta, refuse_another_videos_table, remove_stale_outputs

log = logging.getLogger(__name__)


def names_of(predictor: MultiAnimalPredictor) -> AnimalNames:
    return AnimalNames(predictor.scorer, predictor.individuals, predictor.bodyparts, predictor.unique_bodyparts)


def detections_key(identity: storage.ObjectIdentity, predictor: MultiAnimalPredictor) -> str:
    """What stored tracklets were made from: the video's identity, the model's bytes, the arithmetic that
    ran on which kind of device, the reader's numbering, the linking settings and how segments are linked
    (an older file's key differs, so it is computed again). Stitching settings are not in it: a rerun
    with other ones stitches the stored tracklets again."""
    made_from = {"video": identity.key(), "model": predictor.trained.sha256, "precision": predictor.precision,
                 "device": predictor.device.type, "reader": VideoInfo.CACHE_VERSION,
                 "linking": predictor.tracking.linking_settings(), "tracklets_format": FORMAT}
    return hashlib.sha256(json.dumps(made_from, sort_keys=True).encode()).hexdigest()[:24]


def piece_bounds(frame_count: int, keyframes, piece_frames: int) -> list[tuple[int, int]]:
    """[0, frame_count) in consecutive pieces, each ending at the last keyframe within `piece_frames` frames
    of its start, or at the first one after where none lies within (a group of pictures longer than a
    piece is held whole): each piece's read starts where decoding starts, so no frame is decoded twice
    (a cut inside a group of pictures would decode it again from its keyframe for every piece)."""
    cuts = np.unique(np.asarray(keyframes, np.int64))
    cuts = np.append(cuts[(cuts > 0) & (cuts < frame_count)], frame_count)
    bounds, start = [], 0
    while start < frame_count:
        within = cuts[(cuts > start) & (cuts <= start + piece_frames)]
        stop = int(within[-1]) if len(within) else int(cuts[cuts > start][0])
        bounds.append((start, stop))
        start = stop
    return bounds


def predict_pieces(predictor: MultiAnimalPredictor, info: VideoInfo, uri: str, key: str,
                   progress: bool) -> tuple[int, float]:
    """Every frame of the video predicted and linked a piece at a time, stored at `uri` (published whole
    when every piece is in). Returns the frames predicted and the seconds it took."""
    frames, seconds = 0, 0.0
    with tqdm(total=info.frame_count, disable=not progress, unit="frame",
              desc=storage.basename(storage.object_path(info.uri))) as bar, PiecesWriter(uri, key) as writer:
        for start, stop in piece_bounds(info.frame_count, info.keyframes, predictor.infer.multianimal_piece_frames):
            segment, ranged = predict_animal_segment(predictor, info, start, stop, on_batch=bar.update)
            writer.add(segment, ranged)
            frames, seconds = frames + ranged.frames, seconds + ranged.seconds
            del segment  # before the next piece is predicted
        writer.publish()
    return frames, seconds


def tracking_meta(predictor: MultiAnimalPredictor, figures: TrackingFigures) -> dict:
    """The `animals` section of a tracked table's _meta.json."""
    return {"individuals": predictor.individuals, "unique_bodyparts": predictor.unique_bodyparts,
            "graph": [list(edge) for edge in predictor.spec.graph], "identity_head": predictor.spec.identity,
            "tracking": asdict(figures), "tracking_config": predictor.tracking.model_dump(mode="json")}


def analyze_animals_video(predictor: MultiAnimalPredictor, video_uri: str, out_folder: str | Place,
                          formats: tuple[str, ...] = (), progress: bool = True) -> AnalysisResult:
    """Detect, track and stitch every frame of one video; publish its tracked table where infer.naming
    says (tracked_base of the video's base in `out_folder`'s layout)."""
    info = probe(video_uri)
    if info.frame_count == 0:
        raise InputError(video_uri, "no frame could be decoded")
    place = place_of(out_folder)
    base = tracked_base(place.base(video_uri, predictor.scorer))
    refuse_another_videos_table(video_uri, base)
    identity = storage.identity(video_uri)
    key = detections_key(identity, predictor)
    pieces = tracklets_file(base)
    reused = stored_key(pieces) == key
    frames_predicted, seconds = 0, 0.0
    if reused:
        try:
            forget_meta(base)  # never the earlier run's record beside this run's tables
            joined, figures = join_animal_segments([pieces], names_of(predictor), info.frame_count, base, formats,
                                                   predictor.tracking)
        except InputError as exc:  # damaged since it was written (or not ours): it is only a cache
            log.warning("%s; predicting the video again", exc)
            reused = False
    if not reused:
        frames_predicted, seconds = predict_pieces(predictor, info, pieces, key, progress)
        forget_meta(base)
        joined, figures = join_animal_segments([pieces], names_of(predictor), info.frame_count, base, formats,
                                               predictor.tracking)
    result = AnalysisResult(
        video=storage.redact_uri(storage.absolute(video_uri)),
        outputs={fmt: storage.absolute(uri) for fmt, uri in joined.outputs.items()},
        frames=info.frame_count, frames_predicted=frames_predicted, missing_frames=joined.missing,
        seconds=seconds, fps=frames_predicted / seconds if seconds else 0.0,
        status="done-with-warnings" if joined.missing or info.warnings else "done", warnings=list(info.warnings))
    meta = {
        **asdict(result),
        "video_identity": {**asdict(identity), "uri": result.video},
        "model": {"uri": predictor.trained.uri, "identity": predictor.trained.identity},
        "scorer": predictor.scorer,
        "bodyparts": predictor.bodyparts,
        "animals": tracking_meta(predictor, figures),
        "tracklets_file": {"uri": storage.redact_uri(storage.absolute(pieces)), "reused": reused, "key": key},
        "fps_video": info.fps,
        **joined.meta(),
        "precision": predictor.precision_record(),
        "config": predictor.config.model_dump(mode="json"),
    }
    publish_meta(base, meta, joined.table_sha256)
    remove_stale_outputs(base, [*joined.outputs.values(), pieces, f"{base}_meta.json"], place.plots(video_uri))
    return result
