"""Multi-animal model + frames -> each frame's assembled animals (tracking.FrameDetections) and unique
body parts, in original image pixels. Runs without Ray, through the same pipeline seam as the
single-animal Predictor (infer.pipeline.predict_frames reads `infer`, `batch_size`, `precision`,
`rechecked_frames` and `predict`)."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch

from posecluster.config import InferConfig
from posecluster.data.augment import resize_batch
from posecluster.model.device import resolve_device, wanted
from posecluster.model.multianimal_artifact import MultiAnimalTrained
from posecluster.model.multianimal_decode import decode_animals
from posecluster.model.multianimal_model import MultiAnimalPoseModel
from posecluster.model.precision import CpuCapability, choose_multianimal_inference, probe_cpu
from posecluster.tracking import FrameDetections

log = logging.getLogger(__name__)


@dataclass
class AnimalFrame:
    """One frame's output: the assembled animals (what tracking links) and the unique body parts (U, 3)."""

    detections: FrameDetections
    unique: np.ndarray


class MultiAnimalPredictor:
    """`predict(frames)` -> one AnimalFrame per frame. `tracking` (infer.tracking: the model's settings
    with the analysis's overrides) is how its segments are linked and stitched (part of what a stored
    segment was made with)."""

    def __init__(self, trained: MultiAnimalTrained, infer: InferConfig | None = None,
                 cpu: CpuCapability | None = None):
        self.trained = trained
        self.infer = infer or trained.config.infer
        self.tracking = self.infer.tracking
        self.config = trained.config.model_copy(update={"infer": self.infer})
        self.spec = trained.spec
        self.device = resolve_device(self.infer.device)
        self.cpu = cpu or probe_cpu()
        # No calibrated or checked reduced paths for this family yet: fp32 (auto/off); on/int8 refused.
        self.choice = choose_multianimal_inference(self.infer.mixed_precision, source=trained.uri or "the model")
        self.precision = self.choice.path
        # One frame at a time: a batch's composition changes a convolution's last bits, detections are
        # thresholded and tracks stitched globally, so a frame's detections must not depend on where a
        # segment cut the video (sharded == single-process, bit for bit). Batches aligned to absolute frame
        # indices and padded to one shape would keep that on GPUs; until then a GPU runs below its best.
        if self.infer.batch_size not in ("auto", 1):
            log.warning("infer.batch_size=%s ignored for a multi-animal model: frames go one at a time so that "
                        "sharded and single-process runs detect the same animals", self.infer.batch_size)
        self.batch_size = 1
        self.channels_last = wanted(self.infer.channels_last, self.device, on_cpu_too=True)
        model = MultiAnimalPoseModel.for_inference(self.config.model, self.spec, trained.state_dict)
        fmt = torch.channels_last if self.channels_last else torch.contiguous_format
        self.model = model.to(self.device, memory_format=fmt)
        self.rechecked_frames = 0  # the pipeline's counter; this family has no recheck chain
        log.info("multi-animal inference precision %s on %s: %s", self.precision, self.device, self.choice.reason)

    @property
    def scorer(self) -> str:
        return self.trained.scorer

    @property
    def bodyparts(self) -> list[str]:
        return list(self.spec.bodyparts)

    @property
    def unique_bodyparts(self) -> list[str]:
        return list(self.spec.unique_bodyparts)

    @property
    def individuals(self) -> list[str]:
        return list(self.spec.individuals)

    def precision_record(self) -> dict:
        return {"path": self.precision, "reason": self.choice.reason, "requested": self.infer.mixed_precision,
                "cpu": self.cpu.describe() if self.device.type == "cpu" else str(self.device),
                "batch_size": self.batch_size}

    @torch.inference_mode()
    def predict(self, frames: np.ndarray) -> list[AnimalFrame]:
        """uint8 frames (B,H,W,3) of one size -> B AnimalFrames."""
        batch = torch.from_numpy(np.ascontiguousarray(frames))
        if self.device.type == "cuda":
            batch = batch.pin_memory()
        batch = batch.to(self.device, non_blocking=True).permute(0, 3, 1, 2).float().div_(255.0)
        batch, factors = resize_batch(batch, self.config.model.global_scale)
        if self.channels_last:
            batch = batch.contiguous(memory_format=torch.channels_last)
        with self.choice.autocast(self.device):
            out = self.model(batch)
        animals = decode_animals(out, self.spec, self.model.stride, self.config.model.target.locref_stdev,
                                 self.trained.params, factors)
        return [AnimalFrame(FrameDetections(a.poses.astype(np.float64),
                                            None if a.identity is None else a.identity.astype(np.float64)),
                            a.unique.astype(np.float64)) for a in animals]
