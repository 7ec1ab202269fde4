"""Inference speed and poses by precision on DeepLabCut's openfield video (640x480 H.264), beside DeepLabCut
3.0.2's analyze_videos on this machine (1.09 frames/s at batch 1, its best setting; ../shared/ENVIRONMENT.md).

Speed, in one run on the same frames: end-to-end frames/s of analyze_video (decode thread + resize + network
+ decode + streamed pose table) for fp32, bf16 (autocast) and int8 (the calibrated graph on ONNX Runtime)
at global_scale 1.0 and 0.8, batch 1, and the default as a user gets it (no flag: `auto` precision and
`auto` batch size); then a batch-size sweep of the reduced paths. Each figure is the median of --rounds passes, interleaved so that a load change on a
shared machine hits every path alike.

Poses (with --model RUN, a trained run such as train_scaling.py's fp32 run): bf16 and int8 against fp32
on every --pose-stride-th frame of the whole video, at both scales (mean and max |difference| in pixels,
share of (frame, body part) whose p-cutoff decision flips), and each path's error on the run's test
images. The int8 graph is calibrated for each scale on the project's labeled frames, as training does.
Without --model, a random ResNet-50 is timed (speed does not depend on the weights) and poses are skipped.

  python benchmarks/inference_speed.py --model /tmp/pc-runs/fp32 --frames 96 --pose-stride 5

The default against fp32 (benchmarks/_default_vs_fp32.py), over several trained models (e.g. training
budgets of 3, 20 and 100 epochs) and the openfield video plus one unlike the training images:

  python benchmarks/inference_speed.py --default-vs-fp32 e3=/tmp/runs/e3 e20=/tmp/runs/e20 --frames 300

(--frames long enough for the probe to pay off, infer.verify.shortest_range: 223 frames at a calibrated
2.08x, 367 at 1.655x; a shorter clip runs fp32 under the default.)
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
import time
from dataclasses import replace

import numpy as np
import torch

from _common import require_openfield, save
from _default_vs_fp32 import compare, unlike_video
from posecluster import storage
from posecluster.config import PoseclusterConfig
from posecluster.data.clips import spread_frames
from posecluster.data.dataset import load_images
from posecluster.data.project import read_project
from posecluster.data.split import Split, indices_of
from posecluster.data.video import DecodeReport, probe, read_frames
from posecluster.infer.analyze import analyze_video
from posecluster.infer.predictor import Predictor
from posecluster.model.artifact import TrainedModel, load_model
from posecluster.model.pose_model import PoseModel
from posecluster.model.precision import agreement, probe_cpu
from posecluster.train.calibrate import pick_rows, reduced_precision
from posecluster.train.evaluate import pixel_errors

DLC_ANALYZE_FPS = {"batch_1": 1.09, "batch_4": "0.70-0.75"}  # DeepLabCut 3.0.2 analyze_videos, this machine
PATHS = {"fp32": "off", "bf16": "on", "int8": "int8", "default": "auto"}


def at_scale(trained: TrainedModel, scale: float, images: list, rows: tuple[list[int], list[int]],
             frames: list) -> TrainedModel:
    """The model at global_scale `scale`, with an int8 graph calibrated (and checked, on labeled images and
    video frames, as training does) at that scale."""
    config = trained.config.with_overrides({"model": {"global_scale": scale}, "infer": {"batch_size": 1}})
    scaled = replace(trained, config=config, reduced=None)
    return replace(scaled, reduced=reduced_precision(scaled, images, *rows, video_frames=frames))


def predictor(trained: TrainedModel, setting: str, batch_size: int | str = 1) -> Predictor:
    infer = trained.config.infer.model_copy(update={"mixed_precision": setting, "batch_size": batch_size})
    return Predictor(trained, infer)


def end_to_end(p: Predictor, video: str, frames: int | None) -> float:
    p.predict(np.zeros((p.batch_size, 480, 640, 3), np.uint8))  # warm-up (kernels, ONNX Runtime arenas)
    p.rechecked_frames = 0  # a black frame's flat maps are all close calls: count the video's alone
    with tempfile.TemporaryDirectory() as out:
        return analyze_video(p, video, out, progress=False, stop=frames).fps


def speed(models: dict[float, TrainedModel], video: str, args) -> dict:
    figures: dict = {}
    for scale, trained in models.items():
        # Each path at batch 1 (DeepLabCut's best setting); the default as a user gets it: auto batch too.
        runs = {name: predictor(trained, setting, "auto" if name == "default" else 1) for name, setting in PATHS.items()}
        measured = {name: [] for name in runs}
        for _ in range(args.rounds):
            for name, p in runs.items():
                measured[name].append(end_to_end(p, video, args.frames))
        row = {name: float(np.median(values)) for name, values in measured.items()}
        # Frames the reduced paths predicted again (close calls) while timed (the poses section has the whole video's).
        row["rechecked_share_while_timed"] = {name: p.rechecked_frames / args.frames for name, p in runs.items()}
        row["default_path"] = runs["default"].precision
        row["default_batch_size"] = runs["default"].batch_size
        row["default_reason"] = runs["default"].choice.reason
        for name in PATHS:
            row[f"{name}_over_fp32"] = row[name] / row["fp32"]
            row[f"{name}_over_dlc_batch_1"] = row[name] / DLC_ANALYZE_FPS["batch_1"]
        sweep = {}
        for name in ("bf16", "int8"):
            sweep[name] = {size: end_to_end(predictor(trained, PATHS[name], size), video, args.frames)
                           for size in args.batch_sizes}
        best = max(((name, size, fps) for name, rates in sweep.items() for size, fps in rates.items()), key=lambda x: x[2])
        row["batch_sweep_fps"] = sweep
        row["best"] = {"path": best[0], "batch_size": best[1], "fps": best[2],
                       "over_dlc_batch_1": best[2] / DLC_ANALYZE_FPS["batch_1"]}
        figures[f"scale_{scale}"] = row
        print(f"scale {scale}: " + ", ".join(f"{n} {row[n]:.2f}" for n in PATHS) +
              f" frames/s (default = {row['default_path']} batch {row['default_batch_size']}); best {best[0]} batch {best[1]}: {best[2]:.2f}", flush=True)
    return figures


def whole_video(models: dict[float, TrainedModel], video: str) -> dict:
    """The default (auto precision, auto batch size) against fp32, end to end over every frame of the
    video, with the default's poses against fp32's on every frame: the share of close calls predicted again
    varies along a video, so short timed runs can flatter a reduced path."""
    figures = compare({f"scale_{scale}": trained for scale, trained in models.items()}, {"openfield whole video": video},
                      frames=None, rounds=1)
    for row in figures.values():
        row["default_over_dlc_batch_1"] = row["default_fps"] / DLC_ANALYZE_FPS["batch_1"]
        row["fp32_over_dlc_batch_1"] = row["fp32_fps"] / DLC_ANALYZE_FPS["batch_1"]
        print(f"whole video: default {row['default_over_dlc_batch_1']:.2f}x DeepLabCut's {DLC_ANALYZE_FPS['batch_1']} "
              f"frames/s (fp32 {row['fp32_over_dlc_batch_1']:.2f}x)", flush=True)
    return figures


def video_poses(trained: TrainedModel, video: str, stride: int) -> tuple[dict[str, np.ndarray], dict[str, int]]:
    """(frames, K, 3) poses of every `stride`-th frame by each path, one frame at a time (memory flat), and
    the frames each path predicted again more exactly (its rechecks)."""
    runs = {name: predictor(trained, PATHS[name]) for name in ("fp32", "bf16", "int8")}
    out = {name: [] for name in runs}
    info = probe(video)
    for index, frame in read_frames(info, 0, info.frame_count, DecodeReport()):
        if index % stride == 0:
            for name, p in runs.items():
                out[name].append(p.predict(frame[None])[0])
    return {name: np.stack(poses) for name, poses in out.items()}, {name: p.rechecked_frames for name, p in runs.items()}


def poses(models: dict[float, TrainedModel], video: str, labels, images, test_rows, args) -> dict:
    figures = {}
    pcutoff = next(iter(models.values())).config.project.pcutoff
    for scale, trained in models.items():
        found, rechecked = video_poses(trained, video, args.pose_stride)
        row = {"frames": len(found["fp32"]), "pcutoff": pcutoff, "recheck_margins": trained.reduced.recheck_margins}
        for name in ("bf16", "int8"):
            check = agreement(found["fp32"], found[name], pcutoff, rechecked[name])
            row[f"{name}_vs_fp32"] = {"mean_px": check.mean_px, "max_px": check.max_px, "flip_share": check.flip_share,
                                      "rechecked_share": check.rechecked_share, "passed": check.passed}
        test_images = [images[i] for i in test_rows]
        for name in ("fp32", "bf16", "int8"):
            predicted = predictor(trained, PATHS[name]).predict_images(test_images)
            row[f"{name}_test_error_px"] = float(np.nanmean(pixel_errors(predicted, labels.keypoints[test_rows])))
        for name in ("bf16", "int8"):
            row[f"{name}_test_error_over_fp32"] = row[f"{name}_test_error_px"] / row["fp32_test_error_px"]
        row["model_checks_on_labeled_frames"] = trained.reduced.describe()["checks"]
        figures[f"scale_{scale}"] = row
        print(f"scale {scale} poses over {row['frames']} frames: " + "; ".join(
            f"{n}: mean {row[f'{n}_vs_fp32']['mean_px']:.3f} px, flips {100 * row[f'{n}_vs_fp32']['flip_share']:.2f}%, "
            f"rechecked {100 * row[f'{n}_vs_fp32']['rechecked_share']:.1f}%, "
            f"test error {row[f'{n}_test_error_px']:.2f} vs fp32 {row['fp32_test_error_px']:.2f} px" for n in ("bf16", "int8")),
            flush=True)
    return figures


def random_model(openfield: str, project) -> TrainedModel:
    config = PoseclusterConfig(project=project.config, project_uri=openfield).with_overrides(
        {"model": {"backbone": {"name": "resnet50", "weights": "none"}}})
    state = PoseModel(config.model, len(project.config.bodyparts)).state_dict()
    return TrainedModel(config, list(project.config.bodyparts), state, identity="random")


def default_vs_fp32(args) -> None:
    openfield = require_openfield()
    models = dict(item.split("=", 1) for item in args.default_vs_fp32)
    started = time.perf_counter()
    uptime_before = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    with tempfile.TemporaryDirectory() as scratch:
        video = f"{openfield}/videos/m3v1mp4.mp4"
        videos = {}
        if "openfield" in args.videos:
            videos["openfield m3v1mp4.mp4"] = video
        if "unlike" in args.videos:
            videos["unlike: mirrored, 0.75x, inverted, B-frames"] = unlike_video(video, f"{scratch}/unlike.mp4", args.frames)
        figures = compare({name: load_model(run) for name, run in models.items()}, videos, args.frames, args.rounds)
    save(args.name, {"models": models, "cpu": probe_cpu().describe(), "frames_per_video": args.frames,
                     "rounds": args.rounds, "uptime_before": uptime_before,
                     "uptime_after": subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip(),
                     "seconds": time.perf_counter() - started, "default_vs_fp32": figures})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="a trained run folder (ResNet-50); without it: a random ResNet-50, no poses")
    parser.add_argument("--frames", type=int, default=96, help="frames per end-to-end measurement")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--scales", type=float, nargs="+", default=[1.0, 0.8])
    parser.add_argument("--pose-stride", type=int, default=5, help="compare poses on every N-th frame (1: all)")
    parser.add_argument("--calibration-images", type=int, default=64)
    parser.add_argument("--check-video-frames", type=int, default=100,
                        help="video frames the pose checks (what auto decides on) include, as training's")
    parser.add_argument("--whole-video", action="store_true",
                        help="only the default against fp32, end to end over the whole video (with --name)")
    parser.add_argument("--default-vs-fp32", nargs="+", metavar="NAME=RUN",
                        help="trained run folders: the default vs fp32 on the openfield video and an unlike one")
    parser.add_argument("--videos", nargs="+", choices=["openfield", "unlike"], default=["openfield", "unlike"],
                        help="with --default-vs-fp32: which videos")
    parser.add_argument("--name", default="inference_speed_precision")
    args = parser.parse_args()
    if args.default_vs_fp32:
        return default_vs_fp32(args)

    openfield = require_openfield()
    video = f"{openfield}/videos/m3v1mp4.mp4"
    project = read_project(openfield)
    images = load_images(project.labels)
    if args.model:
        trained = load_model(args.model)
        split = Split.load(storage.join(args.model, "split.json"))
        train_rows = indices_of(project.labels.images, split.train_images)
        test_rows = indices_of(project.labels.images, split.test_images)
    else:
        trained = random_model(openfield, project)
        train_rows, test_rows = list(range(len(images))), []
    rows = pick_rows(train_rows, test_rows, args.calibration_images)
    uptime_before = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    started = time.perf_counter()
    frames = spread_frames([video], args.check_video_frames)
    models = {scale: at_scale(trained, scale, images, rows, frames) for scale in args.scales}
    figures = {
        "video": "openfield m3v1mp4.mp4 (640x480 H.264, 2330 frames)",
        "model": args.model or "random resnet50 (speed only)",
        "backbone": trained.config.model.backbone.name,
        "cpu": probe_cpu().describe(),
        # --whole-video: every frame, one round of each path
        "frames_per_measurement": "all" if args.whole_video else args.frames,
        "rounds": 1 if args.whole_video else args.rounds,
        "dlc_3_0_2_analyze_fps": DLC_ANALYZE_FPS,
        "uptime_before": uptime_before,
        "calibration_seconds": time.perf_counter() - started,
    }
    if args.whole_video:
        figures["whole_video"] = whole_video(models, video)
    else:
        figures["speed"] = speed(models, video, args)
    if args.model and not args.whole_video:
        figures["poses"] = poses(models, video, project.labels, images, test_rows, args)
    figures["uptime_after"] = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    figures["seconds"] = time.perf_counter() - started
    save(args.name, figures)


if __name__ == "__main__":
    torch.set_num_threads(torch.get_num_threads())
    main()
