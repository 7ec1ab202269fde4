"""Ensembles at inference: K members run on the SAME decoded, resized batch (each frame is decoded once),
and their predictions are combined by the Ensemble Kalman Smoother (posecluster.analysis.ensemble_smoothing).

`analyze` on an ensemble writes, beside each other (DLC naming, `<video><scorer>` as base):
  <base>.h5 (+ csv/parquet)       the EKS-smoothed track; likelihood = the members' mean likelihood
  <base>_ensemble_variance.h5     per frame and body part: ensemble_var_x/y, posterior_var_x/y (px²)
  <base>_member<k>.h5             each member's raw predictions
  <base>_meta.json                as for a single model, plus the members and the smoothing parameters
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from tqdm.auto import tqdm

from posecluster import storage
from posecluster.config import InferConfig
from posecluster.data.video import probe
from posecluster.infer.analyze import AnalysisResult
from posecluster.infer.ensemble_tables import smoothing_meta, write_ensemble_outputs
from posecluster.infer.naming import Place, place_of
from posecluster.infer.pipeline import predict_range, with_fallback
from posecluster.infer.predictor import Predictor
from posecluster.infer.results import forget_meta, publish_meta, refuse_another_videos_table, remove_stale_outputs
from posecluster.infer.multianimal_predictor import MultiAnimalPredictor
from posecluster.model.artifact import PinnedModel, TrainedModel, load_model, load_pinned, refuse_multianimal
from posecluster.model.multianimal_artifact import MultiAnimalTrained, load_any, load_pinned_any, pin_any
from posecluster.model.ensemble import PinnedEnsemble, ensemble_sha256, is_ensemble, member_uris, pin_ensemble


@dataclass(frozen=True)
class EnsembleModel:
    """What outputs and caches need to know about an ensemble (the counterpart of TrainedModel)."""

    uri: str
    identity: str  # changes when any member changes
    scorer: str
    bodyparts: list[str]


class EnsemblePredictor:
    """K members, one input pipeline: `predict(frames)` -> (B, K members, body parts, 3)."""

    def __init__(self, members: list[TrainedModel], infer: InferConfig | None = None, uri: str = ""):
        if not members:
            raise ValueError(f"{uri}: an ensemble needs at least one member")
        check_members(members)
        self.members = [Predictor(member, infer) for member in members]
        first = self.members[0]
        self.infer, self.config, self.bodyparts, self.device = first.infer, first.config, first.bodyparts, first.device
        # One batch goes through every member: the smallest any member chose (auto differs by path), and
        # each member's record says the size that ran.
        self.batch_size = min(member.batch_size for member in self.members)
        for member in self.members:
            member.batch_size = self.batch_size
        # Members choose their own path (one may carry a calibrated int8 version, another not).
        self.precision = "+".join(dict.fromkeys(member.precision for member in self.members))
        self.trained = _ensemble_model(uri, members)

    def precision_record(self) -> dict:
        return {"path": self.precision, "members": [member.precision_record() for member in self.members]}

    @property
    def rechecked_frames(self) -> int:
        """Member frames predicted again more exactly (each member rechecks its own maps)."""
        return sum(member.rechecked_frames for member in self.members)

    @property
    def exact_rows(self) -> np.ndarray:
        """Rows of the last batch that every member predicted in fp32 (Predictor.exact_rows)."""
        rows = self.members[0].exact_rows
        for member in self.members[1:]:
            rows = np.intersect1d(rows, member.exact_rows)
        return rows

    @property
    def calibrated_speedup(self) -> float | None:
        """The members run one after another: fp32's time over the ensemble's at each member's calibrated
        speed-up (an fp32 member 1x); None where a reduced member was not timed on a machine like this."""
        speedups = [1.0 if member.precision == "fp32" else member.calibrated_speedup for member in self.members]
        if any(speedup is None for speedup in speedups):
            return None
        return len(speedups) / sum(1 / speedup for speedup in speedups)

    @property
    def scorer(self) -> str:
        return self.trained.scorer

    @property
    def output_shape(self) -> tuple[int, ...]:
        """Per frame: (members, body parts, 3)."""
        return (len(self.members), len(self.bodyparts), 3)

    def predict(self, frames: np.ndarray) -> np.ndarray:
        batch, factors = self.members[0].prepare(frames)  # decoded and resized once for every member
        return np.stack([member.predict_prepared(batch, factors) for member in self.members], axis=1)

    def predict_exact(self, frames: np.ndarray) -> np.ndarray:
        """Every member in fp32 (infer.verify checks the members' paths on the video as one)."""
        return np.stack([member.predict_exact(frames) for member in self.members], axis=1)

    def predict_images(self, images: list[np.ndarray]) -> np.ndarray:
        """Images of any sizes -> (N, K members, body parts, 3)."""
        return np.stack([member.predict_images(images) for member in self.members], axis=1)


def check_members(members: list[TrainedModel]) -> None:
    """Members must predict the same body parts from the same input batch."""
    for member in members:
        refuse_multianimal(member, "an ensemble")
    first = members[0]
    for member in members[1:]:
        if list(member.bodyparts) != list(first.bodyparts):
            raise ValueError(f"{member.uri}: body parts {member.bodyparts} differ from {first.uri}'s "
                             f"{first.bodyparts}")
        if member.config.model.global_scale != first.config.model.global_scale:
            raise ValueError(f"{member.uri}: members must share model.global_scale (one input batch feeds "
                             "them all)")


def pin(model_uri: str) -> tuple[PinnedModel | PinnedEnsemble, str, list[str]]:
    """What an archive job's workers must load (a run's model file, or every member's), with the scorer
    and body parts its outputs carry. Refuses mismatched members here, before any worker starts."""
    if is_ensemble(model_uri):
        pinned, models = pin_ensemble(model_uri)
        check_members(models)
        described = _ensemble_model(model_uri, models)
        return pinned, described.scorer, described.bodyparts
    single, trained = pin_any(model_uri)  # a multi-animal file is pinned as PinnedAnimals
    return single, trained.scorer, list(trained.bodyparts)


def pinned_predictor(pinned: PinnedModel | PinnedEnsemble, infer_overrides: dict | None = None):
    """A worker's predictor for exactly the pinned bytes (ModelMismatchError if a file changed)."""
    if isinstance(pinned, PinnedEnsemble):
        return _predictor([load_pinned(member) for member in pinned.members], infer_overrides, pinned.uri)
    return _predictor([load_pinned_any(pinned)], infer_overrides)


def load_predictor(model_uri: str, infer_overrides: dict | None = None):
    """A Predictor for a run folder or model.pt (a MultiAnimalPredictor for a multi-animal one); an
    EnsemblePredictor for an ensemble folder. The infer section is the model's own (an ensemble's: its
    first member's) with `infer_overrides` applied."""
    if is_ensemble(model_uri):
        return _predictor([load_model(uri) for uri in member_uris(model_uri)], infer_overrides, model_uri)
    return _predictor([load_any(model_uri)], infer_overrides)


def _predictor(models: list[TrainedModel], infer_overrides: dict | None, ensemble_uri: str | None = None):
    infer = models[0].config.infer.with_overrides(infer_overrides or {})
    if ensemble_uri is not None:
        return EnsemblePredictor(models, infer, uri=ensemble_uri)
    if isinstance(models[0], MultiAnimalTrained):  # the one place a model's family picks its predictor
        return MultiAnimalPredictor(models[0], infer)
    return Predictor(models[0], infer)


def _ensemble_model(uri: str, members: list[TrainedModel]) -> EnsembleModel:
    # As PinnedEnsemble.identity: the same ensemble carries one identity in analyze's and infer's outputs.
    identity = ensemble_sha256([m.sha256 for m in members])[:16]
    return EnsembleModel(uri=uri, identity=identity, bodyparts=list(members[0].bodyparts),
                         scorer=f"{members[0].scorer}_ensemble{len(members)}")


def predict_members(predictor: EnsemblePredictor, video_uri: str, start: int = 0, stop: int | None = None,
                    progress: bool = False):
    """(info, members (K, frames, body parts, 3) with NaN where a frame could not be decoded, RangeResult)."""
    info = probe(video_uri)
    stop = info.frame_count if stop is None else min(stop, info.frame_count)
    members = np.full((len(predictor.members), stop - start, len(predictor.bodyparts), 3), np.nan, np.float32)

    def sink(first: int, chunk: np.ndarray) -> None:
        members[:, first - start : first - start + len(chunk)] = chunk.transpose(1, 0, 2, 3)

    def attempt(fallen: dict | None):
        members[:] = np.nan  # a rerun in fp32 (the members' sample left the tolerance) starts afresh
        with tqdm(total=stop - start, disable=not progress, unit="frame",
                  desc=storage.basename(storage.object_path(video_uri))) as bar:
            return predict_range(predictor, info, start, stop, sink, on_batch=bar.update, fallen=fallen)

    return info, members, with_fallback(attempt)


def analyze_ensemble_video(predictor: EnsemblePredictor, video_uri: str, out_folder: "str | Place",
                           formats: tuple[str, ...] = (), progress: bool = True,
                           smooth_param: float | None = None) -> AnalysisResult:
    """Every frame of one video through all members (one decode), smoothed, tables published."""
    info, members, ranged = predict_members(predictor, video_uri, progress=progress)
    place = place_of(out_folder)
    base = place.base(video_uri, predictor.scorer)
    refuse_another_videos_table(video_uri, base)
    forget_meta(base)  # never the earlier run's record beside this run's tables
    outputs, params, table_sha256 = write_ensemble_outputs(base, predictor.scorer, predictor.bodyparts, members, formats,
                                             smooth_param)
    result = AnalysisResult(video=storage.redact_uri(storage.absolute(video_uri)),
                            outputs={fmt: storage.absolute(uri) for fmt, uri in outputs.items()}, frames=info.frame_count, frames_predicted=ranged.frames,
                            missing_frames=ranged.missing, errors=ranged.errors, seconds=ranged.seconds,
                            fps=ranged.fps)
    meta = {
        **asdict(result),
        "video_identity": {**asdict(storage.identity(video_uri)), "uri": result.video},
        "model": {"uri": predictor.trained.uri, "identity": predictor.trained.identity},
        "ensemble": smoothing_meta([{"uri": m.trained.uri, "sha256": m.trained.sha256}
                                    for m in predictor.members], params),
        "scorer": predictor.scorer,
        "bodyparts": predictor.bodyparts,
        "fps_video": info.fps,
        "precision": {**predictor.precision_record(), "rechecked_frames": ranged.rechecked,
                      **({"video_check": ranged.check, "fell_back": ranged.check["fell_back"],
                          "path_that_ran": ranged.precision} if ranged.check else {})},
        "config": predictor.config.model_dump(mode="json"),
    }
    publish_meta(base, meta, table_sha256)
    remove_stale_outputs(base, [*outputs.values(), f"{base}_meta.json"], place.plots(video_uri))
    return result
