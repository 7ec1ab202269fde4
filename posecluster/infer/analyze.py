"""One video -> one DeepLabCut-compatible pose table (+ csv/parquet), written atomically with its metadata."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from tqdm.auto import tqdm

from posecluster import storage
from posecluster.data.formats.poses import PoseTableWriter
from posecluster.data.video import probe
from posecluster.infer.naming import Place, place_of
from posecluster.infer.pipeline import predict_range, with_fallback
from posecluster.infer.results import forget_meta, publish_meta, refuse_another_videos_table, remove_stale_outputs
from posecluster.infer.predictor import Predictor


@dataclass
class AnalysisResult:
    video: str
    outputs: dict[str, str]
    frames: int
    frames_predicted: int
    missing_frames: dict[int, str] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0
    fps: float = 0.0
    status: str = "done"  # or "done-with-warnings": frames missing (NaN rows, listed) or a damaged file
    warnings: list[str] = field(default_factory=list)


def analyze_video(
    predictor: Predictor,
    video_uri: str,
    out_folder: str | Place,
    formats: tuple[str, ...] = (),
    progress: bool = True,
    start: int = 0,
    stop: int | None = None,
) -> AnalysisResult:
    """Predict every frame (or [start, stop)) of one video and publish its pose table where infer.naming
    says: under `out_folder` by the archive layout (a function of the video's URI and `out_folder` alone),
    or by the layout given (naming.Destfolder: DeepLabCut's)."""
    info = probe(video_uri)
    stop = info.frame_count if stop is None else min(stop, info.frame_count)
    place = place_of(out_folder)
    base = place.base(video_uri, predictor.scorer)
    refuse_another_videos_table(video_uri, base)
    published: dict[str, str] = {}
    digests: dict[str, str] = {}

    def attempt(fallen: dict | None):
        """The table in a scratch folder of its own, published whole: an fp32 rerun starts afresh."""
        with storage.scratch_dir() as scratch:
            writer = PoseTableWriter(predictor.scorer, predictor.bodyparts, scratch, formats=formats)
            try:
                writer.pad_to(start)
                with tqdm(total=stop - start, disable=not progress, unit="frame", desc=storage.basename(storage.object_path(video_uri))) as bar:
                    ranged = predict_range(predictor, info, start, stop, writer.append, on_batch=bar.update, fallen=fallen)
                writer.pad_to(stop)
                forget_meta(base)  # never the earlier run's record beside this table
                published.update(writer.publish(base))
                digests["h5"] = writer.table_sha256
            finally:
                writer.close()
        return ranged

    ranged = with_fallback(attempt)
    outputs = published
    result = AnalysisResult(
        # _meta.json must still find the video from another working directory, and never holds a secret
        video=storage.redact_uri(storage.absolute(video_uri)),
        outputs={fmt: storage.absolute(uri) for fmt, uri in outputs.items()},
        frames=stop - start,
        frames_predicted=ranged.frames,
        missing_frames=ranged.missing,
        errors=ranged.errors,
        seconds=ranged.seconds,
        fps=ranged.fps,
        status="done-with-warnings" if ranged.missing or info.warnings else "done",
        warnings=list(info.warnings),
    )
    meta = {
        **asdict(result),
        "video_identity": {**asdict(storage.identity(video_uri)), "uri": result.video},
        "model": {"uri": predictor.trained.uri, "identity": predictor.trained.identity},
        "scorer": predictor.scorer,
        "bodyparts": predictor.bodyparts,
        "fps_video": info.fps,
        "rotation": info.rotation,  # degrees counter-clockwise applied to decoded frames (as OpenCV)
        "frame_numbering": info.numbering,
        "video_notes": info.notes,
        "clock_jumps": info.clock_jumps(),  # where the recording's clock jumped (frame: first on the new clock)
        "frame_sizes": [{"frame": f, "width": w, "height": h} for f, w, h in ranged.sizes],
        # Which arithmetic ran (fp32, bf16, fp16, int8), why, the int8 graph's sha256 when it ran, and how
        # many frames the reduced path predicted again more exactly (close calls between two peaks).
        "precision": {**predictor.precision_record(), "rechecked_frames": ranged.rechecked,
                      **({"video_check": ranged.check, "fell_back": ranged.check["fell_back"],
                          "path_that_ran": ranged.precision} if ranged.check else {})},
        "config": predictor.config.model_dump(mode="json"),
    }
    publish_meta(base, meta, digests.get("h5"))
    remove_stale_outputs(base, [*outputs.values(), f"{base}_meta.json"], place.plots(video_uri))
    return result
