"""Accuracy on DeepLabCut's openfield project: ResNet-50 from scratch under a fixed CPU budget.

TrainingFraction 0.95, shuffle 1 (110 train / 6 test images), no pretrained weights (none can be
downloaded here). The budget is a number of epochs chosen to fit about 30 minutes on this 2-core
machine; a from-scratch ResNet-50 cannot converge at full resolution in that time (DLC 3.0 measured
119.5 px test error after 3 full-resolution epochs here), so the input is scaled down. Errors are
reported in original image pixels, with and without the p-cutoff, as DLC reports them.

  python benchmarks/accuracy_openfield.py --epochs 40 --global-scale 0.3
"""

from __future__ import annotations

import argparse
import tempfile
import time

from _common import require_openfield, save
from posecluster.config import PoseclusterConfig
from posecluster.data.project import read_project
from posecluster.train.evaluate import evaluate
from posecluster.train.loop import train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--global-scale", type=float, default=0.3)
    parser.add_argument("--crop", type=int, nargs=2, default=[176, 144], metavar=("W", "H"))
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--backbone", default="resnet50")
    parser.add_argument("--run", help="run folder URI (default: a temporary folder)")
    parser.add_argument("--name", default="accuracy_openfield_resnet50_scratch")
    args = parser.parse_args()

    openfield = require_openfield()
    project = read_project(openfield)
    config = PoseclusterConfig(project=project.config, project_uri=openfield).with_overrides(
        {
            "model": {"backbone": {"name": args.backbone, "weights": "none"}, "global_scale": args.global_scale},
            # Low resolution: narrower scale jitter so the mouse stays several cells wide.
            "augment": {"crop_size": list(args.crop), "scale_range": [0.8, 1.25]},
            "train": {"epochs": args.epochs, "batch_size": args.batch_size, "checkpoint_every_epochs": 10,
                      "optimizer": {"schedule": [{"from_fraction": 0.0, "lr": args.lr},
                                                 {"from_fraction": 0.8, "lr": args.lr / 5},
                                                 {"from_fraction": 0.95, "lr": args.lr / 50}]}},
            "split": {"training_fraction": 0.95, "shuffle": 1},
        }
    )
    with tempfile.TemporaryDirectory() as tmp:
        run = args.run or f"{tmp}/run"
        started = time.perf_counter()
        trained = train(config, project.labels, run)
        train_seconds = time.perf_counter() - started
        evaluation = evaluate(run, project.labels)
        figures = {
            "project": "openfield (DLC example), 4 body parts, 640x480",
            "split": "TrainingFraction 0.95, shuffle 1",
            "backbone": f"{args.backbone}, random init (no ImageNet weights offline)",
            "budget": f"{args.epochs} epochs x {evaluation.train_images} images, batch {args.batch_size}, "
                      f"global_scale {args.global_scale}, crops {args.crop[0]}x{args.crop[1]}",
            "train_seconds": train_seconds,
            "train_images_per_second": trained.images_per_second,
            "final_loss": trained.final_loss,
            "train_error_px": evaluation.train_error_px,
            "test_error_px": evaluation.test_error_px,
            "train_error_pcutoff_px": evaluation.train_error_pcutoff_px,
            "test_error_pcutoff_px": evaluation.test_error_pcutoff_px,
            "pcutoff": evaluation.pcutoff,
            "per_bodypart": evaluation.per_bodypart,
            "loss_by_epoch": [round(h["loss"], 5) for h in trained.history],
            "dlc_3_0_reference": "DLC 3.0.2 on this machine: 0.33-0.53 images/s at 448x448 crops; "
                                 "119.5 px test error after 3 epochs from scratch (ENVIRONMENT.md)",
        }
        print(evaluation.summary())
        print(f"trained {args.epochs} epochs in {train_seconds:.0f} s ({trained.images_per_second:.2f} images/s)")
        save(args.name, figures)


if __name__ == "__main__":
    main()
