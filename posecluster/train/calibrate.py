"""A trained model's reduced-precision versions, made and checked on the project's own labeled frames.

int8: the backbone is calibrated (model.quantize) on training images, resized by global_scale exactly
as analyze resizes video frames. Then on labeled images the calibration did not see (test images first)
and on frames spread over the project's videos, each reduced path's logit error near the peaks gives its
recheck margin, and its poses (rechecks included) are compared with fp32's and timed against fp32's:
margins, agreements and speeds go into model.pt, and `auto` at inference uses a path only where its
agreement is within tolerance and it was faster than fp32 (model.precision).
"""

from __future__ import annotations

import logging
import time
from dataclasses import replace

import numpy as np
import torch

from posecluster import storage
from posecluster.data.clips import spread_frames
from posecluster.data.dataset import load_images
from posecluster.data.labels import LabeledDataset
from posecluster.data.split import Split, indices_of
from posecluster.infer.predictor import Predictor
from posecluster.model.artifact import TrainedModel, load_model, refuse_multianimal, save_reduced_precision
from posecluster.model.pose_model import PoseModel
from posecluster.model.precision import CpuCapability, ReducedPrecision, agreement, default_batch_size, recheck_margin, \
    timing_place
from posecluster.model.quantize import quantize_detector
from posecluster.storage.scope import check as check_scope

log = logging.getLogger(__name__)

# Images each CPU path is timed on against fp32 (enough to average a few rechecks in, few enough to cost
# seconds where the checks cost minutes).
TIMED_IMAGES = 16


def pick_rows(train_rows: list[int], test_rows: list[int], count: int) -> tuple[list[int], list[int]]:
    """(calibration rows: up to `count` training rows evenly spread; check rows: the test rows, then the
    training rows calibration left out, up to `count`; the calibration rows when nothing else is left)."""
    spread = np.linspace(0, len(train_rows) - 1, num=min(count, len(train_rows))).round().astype(int)
    calibration = [train_rows[i] for i in dict.fromkeys(spread.tolist())]
    calibrated = set(calibration)
    unseen = list(test_rows) + [row for row in train_rows if row not in calibrated]
    return calibration, (unseen or calibration)[:count]


def reduced_precision(trained: TrainedModel, images: list[np.ndarray], calibration_rows: list[int],
                      check_rows: list[int], cpu: CpuCapability | None = None,
                      video_frames: list[np.ndarray] = ()) -> ReducedPrecision:
    """Calibrate the int8 graph on images[calibration_rows]; measure each reduced path's recheck margin
    and then check it (rechecks included) against fp32 on images[check_rows] (a list covering every row of
    the labels; rows not named may be None) and on `video_frames`: frames of the project's videos, where a
    less trained model's poses sit between two peaks more often than on labeled frames, and where the
    poses that matter are."""
    infer = trained.config.infer.model_copy(update={"device": "cpu", "batch_size": 1})
    fp32 = Predictor(trained, infer.model_copy(update={"mixed_precision": "off"}), cpu=cpu)
    batches = [fp32.prepare(images[row][None])[0] for row in calibration_rows]
    model = PoseModel.for_inference(trained.config.model, len(trained.bodyparts), trained.state_dict)
    graph, made = quantize_detector(model, batches)
    reduced = ReducedPrecision(int8_onnx=graph, calibration=made)
    check = [images[row] for row in check_rows] + list(video_frames)
    reference, reference_maps = fp32.predict_images_with_maps(check)
    # Each path by the arithmetic it will run: int8 on CPU; bf16 and fp16 autocast on the GPU where one is
    # present, else bf16 by CPU autocast and fp16 (GPUs without bf16) by model.half_emulation.
    autocast_on = {"device": "cuda" if torch.cuda.is_available() else "cpu"}
    paths = {"bf16": autocast_on, "fp16": autocast_on, "int8": {}}
    margins = {}
    for path, device in paths.items():
        unchecked = Predictor(replace(trained, reduced=reduced), infer.model_copy(update=device), cpu=cpu, path=path)
        margins[path] = recheck_margin(reference_maps, unchecked.predict_images_with_maps(check)[1])
    reduced = replace(reduced, recheck_margins=margins)
    checks = {}
    for path, device in paths.items():
        checked = Predictor(replace(trained, reduced=reduced), infer.model_copy(update=device), cpu=cpu, path=path)
        poses = checked.predict_images(check)
        found = agreement(reference, poses, trained.config.project.pcutoff, checked.rechecked_frames,
                          arithmetic=checked.choice.arithmetic(checked.device))
        # Timed where the path runs on the CPU fp32 ran on (int8, bf16 without a GPU): fp16 emulated
        # here, or a GPU's autocast, is timed by infer.verify where it runs.
        timed = checked.device.type == fp32.device.type and not (path == "fp16" and checked.device.type == "cpu")
        checks[path] = replace(found, speedup=speed_vs_fp32(fp32, checked, check),
                               timed_on=timing_place(checked.device, checked.cpu)) if timed else found
        log.info("%s vs fp32 (recheck margin %.3f logits): %s", path, margins[path], checks[path].describe())
    return replace(reduced, checks=checks)


def speed_vs_fp32(fp32: Predictor, path: Predictor, images: list[np.ndarray]) -> float:
    """fp32's time over `path`'s (its rechecks included) on up to TIMED_IMAGES of `images`, each at the batch
    size `auto` runs it at; the two take turns chunk by chunk, so that a change of load on a shared
    machine hits both alike. `path`'s recheck count is left as the check made it."""
    chosen = [images[i] for i in dict.fromkeys(np.linspace(0, len(images) - 1, min(TIMED_IMAGES, len(images)))
                                                .round().astype(int).tolist())]
    size, rechecked, kept_size = default_batch_size(path.device, path.precision), path.rechecked_frames, path.batch_size
    path.batch_size = size
    try:
        fp32.predict_images(chosen[:1]), path.predict_images(chosen[:size])  # warm-up: kernels, ONNX Runtime's arenas
        spent = {"fp32": 0.0, "path": 0.0}
        for turn, first in enumerate(range(0, len(chosen), size)):
            chunk = chosen[first : first + size]
            for name in (("fp32", "path") if turn % 2 == 0 else ("path", "fp32")):
                began = time.perf_counter()
                (fp32 if name == "fp32" else path).predict_images(chunk)
                spent[name] += time.perf_counter() - began
    finally:
        path.batch_size, path.rechecked_frames = kept_size, rechecked
    return spent["fp32"] / max(spent["path"], 1e-9)


def calibrate_run(run_uri: str, labels: LabeledDataset, images: list[np.ndarray] | None = None,
                  count: int | None = None) -> TrainedModel:
    """Calibrate a finished run's model.pt on its project's labeled frames (its own split) and rewrite it
    with the reduced-precision section. `images`: the loaded images of every row of `labels`."""
    trained = load_model(run_uri)
    refuse_multianimal(trained, "calibration (bf16/int8)")
    count = count or trained.config.train.int8_calibration_images or 64
    split = Split.load(storage.join(run_uri, "split.json"))
    train_rows = indices_of(labels.images, split.train_images)
    calibration, check = pick_rows(train_rows, indices_of(labels.images, split.test_images), count)
    images = images if images is not None else load_rows(labels, calibration + check)
    frames = project_video_frames(trained)
    return save_reduced_precision(trained.uri, reduced_precision(trained, images, calibration, check, video_frames=frames))


def project_video_frames(trained: TrainedModel) -> list[np.ndarray]:
    """train.precision_check_video_frames frames spread over the project's videos/ folder (none when the
    project has no videos there)."""
    count, project = trained.config.train.precision_check_video_frames, trained.config.project_uri
    if not count or not project:
        return []
    check_scope(project, "read", named_by=trained.uri)  # model.pt's own pointer: within the job's scope
    frames = spread_frames([storage.join(project, "videos")], count)
    log.info("checking reduced precision on %d frames of the project's videos too", len(frames))
    return frames


def load_rows(labels: LabeledDataset, rows: list[int]) -> list[np.ndarray | None]:
    """A list as long as `labels` with the images of `rows` loaded (None elsewhere)."""
    needed = sorted(set(rows))
    images: list[np.ndarray | None] = [None] * len(labels)
    for row, image in zip(needed, load_images(labels.subset(needed))):
        images[row] = image
    return images
