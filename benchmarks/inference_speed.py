"""Inference speed on DeepLabCut's openfield video (640x480 H.264): end to end vs backbone only vs decode only.

All three are measured in the same run, on the same frames, batch size and input size:
  decode only   PyAV decode + RGB conversion of the frame range (what the decoding thread does)
  backbone only the ResNet forward pass alone on a batch of those frames (resized as for inference)
  end to end    analyze_video: decode thread + resize + full model + decode + streamed pose table
On CPU the backbone is nearly the whole cost, so end-to-end/backbone should be close to 1.

  python benchmarks/inference_speed.py --frames 96 --batch-size 1
"""

from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np
import torch

from _common import require_openfield, save
from posecluster.config import PoseclusterConfig
from posecluster.data.project import read_project
from posecluster.data.video import DecodeReport, probe, read_frames
from posecluster.infer.analyze import analyze_video
from posecluster.infer.predictor import Predictor
from posecluster.model.pose_model import PoseModel
from posecluster.train.checkpoint import TrainedModel


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=96)
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--backbone", default="resnet50")
    parser.add_argument("--global-scale", type=float, default=0.8)
    parser.add_argument("--name", default=None)
    args = parser.parse_args()

    openfield = require_openfield()
    video = f"{openfield}/videos/m3v1mp4.mp4"
    project = read_project(openfield, check_images=False).config
    config = PoseclusterConfig(project=project).with_overrides(
        {"model": {"backbone": {"name": args.backbone, "weights": "none"}, "global_scale": args.global_scale},
         "infer": {"batch_size": args.batch_size}}
    )
    # Speed does not depend on the weights: a randomly initialised model of the real architecture.
    state = PoseModel(config.model, len(project.bodyparts)).state_dict()
    predictor = Predictor(TrainedModel(config, project.bodyparts, state, identity="random"))
    info = probe(video)
    n = min(args.frames, info.frame_count)

    started = time.perf_counter()
    frames = [f for _, f in read_frames(info, 0, info.frame_count, DecodeReport())]
    decode_fps = len(frames) / (time.perf_counter() - started)
    batch = np.stack(frames[: args.batch_size])
    del frames

    predictor.backbone_only(batch)  # warm-up
    started = time.perf_counter()
    for _ in range(n // args.batch_size):
        predictor.backbone_only(batch)
    backbone_fps = (n // args.batch_size) * args.batch_size / (time.perf_counter() - started)

    with tempfile.TemporaryDirectory() as out:
        predictor.predict(batch)  # warm-up
        result = analyze_video(predictor, video, out, progress=False, stop=n)
    e2e_fps = result.fps

    figures = {
        "video": "openfield m3v1mp4.mp4 (640x480 H.264, 2330 frames)",
        "backbone": args.backbone,
        "input": f"{round(480 * args.global_scale)}x{round(640 * args.global_scale)} (global_scale {args.global_scale})",
        "batch_size": args.batch_size,
        "frames_measured": n,
        "decode_only_fps": decode_fps,
        "backbone_only_fps": backbone_fps,
        "end_to_end_fps": e2e_fps,
        "end_to_end_over_backbone": e2e_fps / backbone_fps,
        "device": str(predictor.device),
        "channels_last": predictor.channels_last,
        "mixed_precision": predictor.amp,
    }
    for key, value in figures.items():
        print(f"{key:>26}: {value:.3f}" if isinstance(value, float) else f"{key:>26}: {value}")
    name = args.name or f"inference_speed_{args.backbone}_b{args.batch_size}_{predictor.device.type}"
    save(name, figures)


if __name__ == "__main__":
    torch.set_num_threads(torch.get_num_threads())
    main()
