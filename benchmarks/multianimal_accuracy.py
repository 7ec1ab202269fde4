"""Accuracy of the bottom-up multi-animal model on a rendered 3-animal maDLC project, trained on CPU (issue 31).

The project is posecluster.data.synthetic_multianimal's: N look-alike animals (identity: false) on
crossing paths, one leaving the frame, a fixed landmark as unique body part; labeled frames every 5th
frame of their own stretch of time, 3% of visible points left unlabeled. Training is the demo's
(`posecluster demo --animals 3`, posecluster.demo_multianimal): ResNet-18 from scratch (no ImageNet
weights offline), the whole frame at global_scale 1.0, batch 8, AdamW 2e-3 then 4e-4 for the last 20%,
PAF graph from the skeleton, the machine's default training precision. Evaluation: held-out (test) and
training images predicted and assembled, predicted animals matched to labeled ones (Hungarian on mean
keypoint distance); per body part mean Euclidean error in pixels ("RMSE" in DeepLabCut's tables) with
and without the p-cutoff (0.4, the rendered project's), how many labeled animals were found, and
DeepLabCut 3.0's OKS mAP (train/multianimal_metrics).

  cd benchmarks && python multianimal_accuracy.py --epochs 30 --labeled-frames 60
"""

from __future__ import annotations

import argparse
import tempfile
import time

import torch

from _common import RESULTS, save
from posecluster.data.synthetic_multianimal import MultiAnimalScene
from posecluster.demo_multianimal import run_multianimal_demo


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--animals", type=int, default=3)
    parser.add_argument("--labeled-frames", type=int, default=60)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--width", type=int, default=128)
    parser.add_argument("--height", type=int, default=96)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--name", default="multianimal_accuracy")
    args = parser.parse_args()
    scene = MultiAnimalScene(width=args.width, height=args.height, animals=args.animals, seed=args.seed)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        report = run_multianimal_demo(tmp, labeled_frames=args.labeled_frames, epochs=args.epochs, video_frames=2,
                                      progress=False, scene=scene)
    budget = (f"ResNet-18 from scratch, {args.epochs} epochs, batch 8, {args.width}x{args.height} frames at "
              f"global_scale 1.0, {args.labeled_frames} labeled frames (80% train), CPU, "
              f"{torch.get_num_threads()} threads")
    lines = [f"budget: {budget}", *report.lines()[2:6]]
    print("\n".join(lines))
    result = {
        "command": f"python benchmarks/multianimal_accuracy.py --epochs {args.epochs} --labeled-frames "
                   f"{args.labeled_frames} --animals {args.animals} --width {args.width} --height {args.height}",
        "budget": budget,
        "animals": args.animals,
        "body_length_px": report.body_length_px,
        "train_seconds": report.train_seconds,
        "train_images_per_second": report.train_images_per_second,
        "train_error_px": report.train_error_px,
        "test_error_px": report.test_error_px,
        "test_error_pcutoff_px": report.test_error_pcutoff_px,
        "per_bodypart_test_px": report.per_bodypart_test_px,
        "animals_found": report.matched,
        "test_map": report.test_map,
        "wall_seconds": time.perf_counter() - started,
    }
    save(args.name, result)
    (RESULTS / f"{args.name}.txt").write_text("\n".join([f"$ {result['command']}", *lines]) + "\n")


if __name__ == "__main__":
    main()
