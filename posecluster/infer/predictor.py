"""Model + frames -> poses in original image pixels. Runs without Ray."""

from __future__ import annotations

import logging

import numpy as np
import torch

from posecluster.config import InferConfig
from posecluster.data.augment import resize_batch
from posecluster.model.artifact import TrainedModel
from posecluster.model.decode import cutoff_margins, decode, rival_margins, shifted_cell_margins
from posecluster.model.device import resolve_device, wanted
from posecluster.model.pose_model import PoseModel
from posecluster.model.precision import NEIGHBOUR_MOVE_CELLS, CpuCapability, Precision, choose_inference, \
    default_batch_size, probe_cpu, recheck_chain
from posecluster.model.quantize import Int8Runner

log = logging.getLogger(__name__)


class Predictor:
    """`cpu` is the seam for the CPU's abilities (default: this machine's, model.precision.probe_cpu);
    `path` runs that arithmetic whatever infer.mixed_precision says (calibration checks each path)."""

    def __init__(self, trained: TrainedModel, infer: InferConfig | None = None, cpu: CpuCapability | None = None,
                 path: str | None = None):
        self.trained = trained
        self.infer = infer or trained.config.infer
        # The config actually used (what _meta.json records): the model's, with this analysis's infer section.
        self.config = trained.config.model_copy(update={"infer": self.infer})
        self.bodyparts = trained.bodyparts
        self.device = resolve_device(self.infer.device)
        self.cpu = cpu or probe_cpu()
        self.choice = Precision(path, f"{path} asked for") if path else choose_inference(
            self.infer.mixed_precision, self.device, self.cpu, trained.reduced, source=trained.uri or "the model",
            min_speedup=self.infer.precision_min_speedup)
        self.precision = self.choice.path  # fp32, bf16, fp16 or int8: what ran, for outputs and caches
        size = self.infer.batch_size
        self.batch_size = default_batch_size(self.device, self.precision) if size == "auto" else size
        # channels_last also speeds up the CPU forward pass (ResNet-50 at 384x512: +8% here), the int8
        # path's too: its rechecks, probe and fallback run this fp32 model (ONNX Runtime is handed plain
        # NCHW by Int8Runner). Without it an int8 predictor's fp32 ran 3.5% slower than an fp32 one's.
        self.channels_last = wanted(self.infer.channels_last, self.device, on_cpu_too=True)
        model = PoseModel.for_inference(self.config.model, len(self.bodyparts), trained.state_dict)
        fmt = torch.channels_last if self.channels_last else torch.contiguous_format
        self.model = model.to(self.device, memory_format=fmt)
        self.int8 = Int8Runner(trained.reduced.int8_onnx, torch.get_num_threads()) if self.precision == "int8" else None
        # Close calls between two peaks (or two neighbouring cells that decode apart) are predicted again
        # by a more exact path (model.precision): empty for fp32 and models calibrated before margins.
        margins = trained.reduced.recheck_margins if trained.reduced is not None else {}
        self.recheck_chain = recheck_chain(self.precision, self.device, self.cpu, margins)
        # `auto` never takes such a path (choose_inference); a forced one runs as asked, said loudly.
        self.unrechecked = "" if path or self.precision == "fp32" or self.recheck_chain else (
            f"infer.mixed_precision={self.infer.mixed_precision} runs {self.precision} without rechecks: "
            f"{trained.uri or 'the model'} has no {self.precision} recheck margin (calibrated before they existed); "
            f"close calls between two peaks can move keypoints by cells. Recalibrate it: `posecluster calibrate RUN`")
        if self.unrechecked:
            log.warning("%s", self.unrechecked)
        self.rechecked_frames = 0  # frames predicted again (by any step of the chain)
        # Rows of the last forward pass whose outputs are fp32's own (all of them on the fp32 path; on a
        # reduced path the frames its rechecks predicted again in fp32): infer.verify's probe reuses them.
        self.exact_rows = np.empty(0, dtype=np.int64)
        steps = ", then ".join(f"within {margin:.3f} logits by {path}" for margin, path in self.recheck_chain)
        log.info("inference precision %s on %s: %s%s", self.precision, self.device, self.choice.reason,
                 f"; frames with a rival peak are predicted again: {steps}" if steps else "")

    @property
    def calibrated_speedup(self) -> float | None:
        """fp32's time over this path's as calibration timed it on a machine like this (None: not timed here)."""
        return self.choice.speedup

    @property
    def amp(self) -> bool:
        """Whether autocast runs (bf16/fp16)."""
        return self.precision in ("bf16", "fp16")

    def precision_record(self) -> dict:
        """What _meta.json says about the arithmetic: the path that ran, why, and the int8 graph's hash."""
        record = {"path": self.precision, "reason": self.choice.reason, "requested": self.infer.mixed_precision,
                  "cpu": self.cpu.describe() if self.device.type == "cpu" else str(self.device),
                  "batch_size": self.batch_size}
        if self.precision == "int8":
            record["int8_sha256"] = self.trained.reduced.int8_sha256
        if self.recheck_chain:
            record["rechecks"] = [{"margin_logits": margin, "path": path} for margin, path in self.recheck_chain]
        if self.unrechecked:
            record["warning"] = self.unrechecked
        return record

    @property
    def scorer(self) -> str:
        return self.trained.scorer

    @property
    def output_shape(self) -> tuple[int, ...]:
        """Per frame: (body parts, 3)."""
        return (len(self.bodyparts), 3)

    def prepare(self, frames: np.ndarray) -> tuple[torch.Tensor, tuple[float, float]]:
        """uint8 frames (B,H,W,3) -> the network's input batch (resized by global_scale) and the factors."""
        batch = torch.from_numpy(np.ascontiguousarray(frames))
        if self.device.type == "cuda":  # uint8 crosses the bus (4x less than float), from pinned memory
            batch = batch.pin_memory()
        batch = batch.to(self.device, non_blocking=True)
        batch = batch.permute(0, 3, 1, 2).float().div_(255.0)
        batch, factors = resize_batch(batch, self.config.model.global_scale)
        if self.channels_last:
            batch = batch.contiguous(memory_format=torch.channels_last)
        return batch, factors

    @torch.inference_mode()
    def predict(self, frames: np.ndarray) -> np.ndarray:
        """frames uint8 (B,H,W,3) of one size -> (B,K,3): x, y in DLC pixel coordinates, likelihood."""
        return self.predict_prepared(*self.prepare(frames))

    @torch.inference_mode()
    def predict_exact(self, frames: np.ndarray) -> np.ndarray:
        """frames -> poses by fp32 alone, at fp32's own batch size (infer.verify's probe and sample)."""
        size = self.batch_size if self.precision == "fp32" else default_batch_size(self.device, "fp32")
        chunks = []
        for first in range(0, len(frames), size):
            batch, factors = self.prepare(frames[first : first + size])
            chunks.append(self._decode(self.model(batch), factors))
        return np.concatenate(chunks)

    @torch.inference_mode()
    def predict_prepared(self, batch: torch.Tensor, factors: tuple[float, float]) -> np.ndarray:
        """The forward pass and decode on a batch `prepare` made (ensemble members share one)."""
        return self._decode(self.forward(batch), factors)

    def _decode(self, out: dict[str, torch.Tensor], factors: tuple[float, float]) -> np.ndarray:
        sx, sy = factors
        target = self.config.model.target
        poses = decode(out["scoremap"], out.get("locref"), self.model.stride, target.locref_stdev)
        poses[..., 0] = poses[..., 0] / sx - 0.5  # edge coordinates of the input -> pixel indices
        poses[..., 1] = poses[..., 1] / sy - 0.5
        return poses.cpu().numpy().astype(np.float64)

    def forward(self, batch: torch.Tensor) -> dict[str, torch.Tensor]:
        """Score maps and location refinement in fp32, by the chosen path (with its rechecks)."""
        self.exact_rows = np.arange(len(batch)) if self.precision == "fp32" else np.empty(0, dtype=np.int64)
        if self.int8 is not None:
            out = self.int8(batch)
        else:
            with self.choice.autocast(self.device):
                out = self.model(batch)
        return self._recheck(batch, out) if self.recheck_chain else out

    def _recheck(self, batch: torch.Tensor, out: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """`out` with the frames whose maps leave a rival peak within a step's margin replaced by the
        step's path's outputs, step after step (recheck_chain).

        The rows and the masks that narrow them live on the outputs' device (a GPU's, or the CPU for
        ONNX Runtime's int8): torch refuses to index a CPU tensor with a GPU mask. Outputs written back
        are moved to that device too (a path's forward pass runs on the model's)."""
        pending = torch.arange(len(batch), device=out["scoremap"].device)
        copied = False
        for margin, path in self.recheck_chain:
            pending = pending[(self.decision_margins(out, pending) < margin).any(dim=-1)]
            if not len(pending):
                break
            if not copied:  # ONNX Runtime's and autocast's outputs are not ours to write into
                out, copied = {name: value.float().clone() for name, value in out.items()}, True
                self.rechecked_frames += len(pending)
            with Precision(path, "recheck").autocast(self.device):
                exact = self.model(batch[pending.to(batch.device)])
            for name, value in exact.items():
                out[name][pending] = value.float().to(out[name].device)
            if path == "fp32":
                self.exact_rows = pending.cpu().numpy()
        return out

    def decision_margins(self, out: dict[str, torch.Tensor], frames: torch.Tensor) -> torch.Tensor:
        """(len(frames), K): how far each map's top logit stands from a decision it could change: above
        the nearest cell that would move its keypoint (a rival peak, or a neighbour decoding more than
        half a cell away, NEIGHBOUR_MOVE_CELLS), or from the p-cutoff it could cross."""
        frames = frames.to(out["scoremap"].device)  # rows index the maps where the maps are
        scoremap, locref = out["scoremap"][frames], out.get("locref")
        moved = torch.minimum(rival_margins(scoremap), shifted_cell_margins(
            scoremap, None if locref is None else locref[frames], self.model.stride,
            self.config.model.target.locref_stdev, NEIGHBOUR_MOVE_CELLS * self.model.stride))
        return torch.minimum(moved, cutoff_margins(scoremap, self.config.project.pcutoff))

    @torch.inference_mode()
    def backbone_only(self, frames: np.ndarray) -> None:
        """The network's forward pass alone on the same input, without decoding (for throughput
        comparisons; the int8 graph cannot be cut, so its heads, about 2% of the work, are included)."""
        batch, _ = self.prepare(frames)
        self.forward(batch)
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def predict_images(self, images: list[np.ndarray]) -> np.ndarray:
        """Images of any sizes -> (N,K,3); same-sized images are batched together."""
        return self._predict_images(images, keep_maps=False)[0]

    def predict_images_with_maps(self, images: list[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray]]:
        """predict_images, and each image's (K,h,w) score logits as the path's forward pass (rechecks
        included) gave them."""
        return self._predict_images(images, keep_maps=True)

    def _predict_images(self, images: list[np.ndarray], keep_maps: bool) -> tuple[np.ndarray, list]:
        out = np.zeros((len(images), len(self.bodyparts), 3))
        maps: list[np.ndarray | None] = [None] * len(images)
        by_shape: dict[tuple, list[int]] = {}
        for i, image in enumerate(images):
            by_shape.setdefault(image.shape, []).append(i)
        size = self.batch_size
        for indices in by_shape.values():
            for start in range(0, len(indices), size):
                chunk = indices[start : start + size]
                with torch.inference_mode():
                    batch, factors = self.prepare(np.stack([images[i] for i in chunk]))
                    raw = self.forward(batch)
                    out[chunk] = self._decode(raw, factors)
                if keep_maps:
                    for i, scoremap in zip(chunk, raw["scoremap"].float().cpu().numpy()):
                        maps[i] = scoremap
        return out, maps
