"""Training throughput and accuracy by precision on this CPU, beside DeepLabCut 3.0.2's figures (measured
on this machine, ../shared/ENVIRONMENT.md); and data-parallel scaling with Ray Train.

Sections (--sections, default: speed accuracy):
  speed     images/s at DeepLabCut's settings (ResNet-50 from scratch, batch 8, 448x448 crops, global_scale
            0.8), fp32 vs the default (auto: bf16 autocast where the CPU has bf16 instructions), one after
            the other in one run; the first epoch (start-up) is not counted.
  accuracy  the same budget (epochs) trained in fp32 and in bf16 from scratch at reduced cost (ResNet-50,
            global_scale 0.8, 176x144 crops, TrainingFraction 0.8 -> 24 test images), for each of --seeds;
            each model's test error predicted in fp32 (mean, mean at the p-cutoff, median: at this budget a
            few swapped peaks move the mean by several pixels from seed to seed, so the means over seeds are
            compared with their spread); --keep-runs keeps the runs (an fp32 one is what inference_speed.py
            --model checks reduced-precision poses with), --reuse-runs evaluates kept runs again.
  workers   1 vs 2 Ray Train workers and the per-step all-reduce time (global_scale 0.3, 176x144 crops).

  python benchmarks/train_scaling.py --sections speed accuracy --epochs 20 --keep-runs /tmp/pc-runs
  python benchmarks/train_scaling.py --sections accuracy --seeds 42 43 44 45 46 --keep-runs /tmp/pc-runs --reuse-runs
  python benchmarks/train_scaling.py --sections workers --epochs 2
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
import time

import numpy as np
import torch

from _common import require_openfield, save
from posecluster import storage
from posecluster.config import PoseclusterConfig
from posecluster.data.dataset import load_images
from posecluster.data.project import read_project
from posecluster.data.split import Split, indices_of
from posecluster.infer.predictor import Predictor
from posecluster.model.artifact import load_model
from posecluster.model.precision import probe_cpu
from posecluster.train.evaluate import pixel_errors, summarise
from posecluster.train.loop import train

# DeepLabCut 3.0.2, same machine and project (../shared/ENVIRONMENT.md): ResNet-50 (timm resnet50_gn),
# batch 8, 448x448 crops, AdamW 5e-4; 0.33 images/s measured under load, 0.53 on an idle machine.
DLC_TRAIN_IMAGES_PER_SECOND = {"loaded": 0.33, "idle": 0.53}


def _schedule(lr: float) -> dict:
    return {"schedule": [{"from_fraction": 0.0, "lr": lr}, {"from_fraction": 0.8, "lr": lr / 5},
                         {"from_fraction": 0.95, "lr": lr / 50}]}


def speed_section(openfield: str, project, args, tmp: str) -> dict:
    """DeepLabCut's training settings; images/s of the second epoch on, fp32 and the default side by side."""
    labels = project.labels.subset(list(range(args.speed_images)))
    config = PoseclusterConfig(project=project.config, project_uri=openfield).with_overrides({
        "model": {"backbone": {"name": "resnet50", "weights": "none"}},  # global_scale 0.8, crops 448x448
        "train": {"epochs": args.speed_epochs, "batch_size": 8, "progress": False, "int8_calibration_images": 0,
                  "checkpoint_every_epochs": args.speed_epochs},
        "split": {"training_fraction": 1.0},
    })
    figures = {"setting": f"resnet50 from scratch, batch 8, 448x448 crops, global_scale 0.8, {args.speed_epochs} "
                          f"epochs of {args.speed_images} openfield images; first epoch not counted"}
    for name, setting in (("fp32", "off"), ("default", "auto")):
        run = f"{tmp}/speed-{name}"
        result = train(config.with_overrides({"train": {"mixed_precision": setting}}), labels, run)
        rates = [h["images_per_second"] for h in result.history[1:]]
        figures[f"{name}_precision"] = result.history[-1]["precision"]
        figures[f"{name}_images_per_second"] = float(np.mean(rates))
        print(f"train {name} ({figures[f'{name}_precision']}): {figures[f'{name}_images_per_second']:.3f} images/s",
              flush=True)
    figures["default_over_fp32"] = figures["default_images_per_second"] / figures["fp32_images_per_second"]
    for state, rate in DLC_TRAIN_IMAGES_PER_SECOND.items():
        figures[f"default_over_dlc_{state}"] = figures["default_images_per_second"] / rate
        figures[f"fp32_over_dlc_{state}"] = figures["fp32_images_per_second"] / rate
    return figures


def test_errors_fp32(run: str, labels, images) -> dict:
    """Test-image errors in original pixels, predicted in fp32 (isolates how the model was trained): the
    mean (DeepLabCut's test error), the mean over predictions at or above the p-cutoff (its second
    figure), and the median. With 24 test images one swapped peak (~300 px) moves the mean by 3 px."""
    trained = load_model(run)
    split = Split.load(storage.join(run, "split.json"))
    rows = indices_of(labels.images, split.test_images)
    predictor = Predictor(trained, trained.config.infer.model_copy(update={"mixed_precision": "off"}))
    predicted = predictor.predict_images([images[i] for i in rows])
    errors = pixel_errors(predicted, labels.keypoints[rows])
    error, with_cutoff = summarise(errors, predicted[..., 2], trained.config.project.pcutoff)
    return {"test_error_px": error, "test_error_pcutoff_px": with_cutoff,
            "test_error_median_px": float(np.nanmedian(errors)), "test_errors_over_50px": int(np.nansum(errors > 50))}


def accuracy_section(openfield: str, project, args, runs: str) -> dict:
    """Each seed trained in fp32 and in bf16 with the same budget; test errors predicted in fp32. One
    pair of runs differs by its training trajectory as much as by its arithmetic, so several seeds
    give the spread that a bf16/fp32 ratio has to be read against."""
    config = PoseclusterConfig(project=project.config, project_uri=openfield).with_overrides({
        "model": {"backbone": {"name": "resnet50", "weights": "none"}, "global_scale": 0.8},
        "augment": {"crop_size": [176, 144], "scale_range": [0.8, 1.25]},
        "train": {"epochs": args.epochs, "batch_size": 8, "progress": False, "checkpoint_every_epochs": args.epochs,
                  "optimizer": _schedule(args.lr)},
        "split": {"training_fraction": 0.8, "shuffle": 1},
    })
    images = load_images(project.labels)
    figures = {"budget": f"resnet50 from scratch, {args.epochs} epochs of the 92 training images "
                         f"(TrainingFraction 0.8, shuffle 1, 24 test images), batch 8, global_scale 0.8, "
                         f"176x144 crops, AdamW {args.lr} with step decay; test error predicted in fp32",
               "seeds": args.seeds, "runs": {}}
    for seed in args.seeds:
        for name, setting in (("fp32", "off"), ("bf16", "on")):
            if name not in args.train_precisions:
                continue
            run = f"{runs}/{name}-seed{seed}"
            started = time.perf_counter()
            if args.reuse_runs and storage.exists(storage.join(run, "model.pt")):
                row = {"run": run, "reused": True, **_trained_facts(run)}
            else:
                result = train(config.with_overrides({"train": {"mixed_precision": setting, "seed": seed}}),
                               project.labels, run, images=images)
                row = {"run": run, "train_seconds": time.perf_counter() - started,
                       "images_per_second": result.images_per_second, "final_loss": result.final_loss}
            reduced = load_model(run).reduced
            row.update(test_errors_fp32(run, project.labels, images))
            row["checks_on_labeled_frames"] = reduced.describe()["checks"] if reduced is not None else None
            figures["runs"][f"{name}-seed{seed}"] = row
            print(f"{name} seed {seed}: test error {row['test_error_px']:.2f} px (p-cutoff {row['test_error_pcutoff_px']:.2f}, "
                  f"median {row['test_error_median_px']:.2f}), loss {row['final_loss']:.5f}", flush=True)
    for name in args.train_precisions:
        rows = [r for key, r in figures["runs"].items() if key.startswith(name)]
        for figure in ("test_error_px", "test_error_pcutoff_px", "test_error_median_px"):
            values = [r[figure] for r in rows]
            figures[f"{name}_{figure}_by_seed"] = values
            figures[f"{name}_{figure}_mean"] = float(np.mean(values))
            figures[f"{name}_{figure}_sd"] = float(np.std(values, ddof=1)) if len(values) > 1 else None
    if len(args.train_precisions) == 2:
        for figure in ("test_error_px", "test_error_pcutoff_px", "test_error_median_px"):
            figures[f"bf16_over_fp32_{figure}"] = figures[f"bf16_{figure}_mean"] / figures[f"fp32_{figure}_mean"]
    return figures


def _trained_facts(run: str) -> dict:
    """The final loss and speed of a run trained before (its history.csv's last row)."""
    last = storage.read_bytes(storage.join(run, "history.csv")).decode().strip().splitlines()
    header, values = last[0].split(","), last[-1].split(",")
    row = dict(zip(header, values))
    return {"final_loss": float(row["loss"]), "precision": row.get("precision")}


def workers_section(openfield: str, project, args) -> dict:
    """1 vs 2 Ray Train workers on the same 2 cores, and the gradient all-reduce time per step."""
    import ray
    from ray.train import ScalingConfig
    from ray.train.torch import TorchTrainer

    from posecluster.cluster.training import train_distributed

    config = PoseclusterConfig(project=project.config, project_uri=openfield).with_overrides({
        "model": {"backbone": {"name": "resnet50", "weights": "none"}, "global_scale": 0.3},
        "augment": {"crop_size": [176, 144], "scale_range": [0.8, 1.25]},
        "train": {"epochs": args.epochs, "batch_size": 8, "progress": False, "checkpoint_every_epochs": args.epochs,
                  "int8_calibration_images": 0},
    })
    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR")
    figures = {"setting": f"resnet50 from scratch, global_scale 0.3, 176x144 crops, {args.epochs} epochs of 110 "
                          f"openfield images, batch 8 per worker"}
    with tempfile.TemporaryDirectory() as tmp:
        for workers, threads in ((1, 2), (2, 1)):
            started = time.perf_counter()
            result = train_distributed(config, openfield, f"{tmp}/w{workers}", workers=workers, cpus_per_worker=threads)
            rates = [h["images_per_second"] for h in result.history]
            figures[f"{workers}_worker_images_per_second"] = max(rates[1:] or rates)  # first epoch warms up
            figures[f"{workers}_worker_wall_seconds"] = time.perf_counter() - started
        result_file = f"{tmp}/allreduce.json"
        trainer = TorchTrainer(_allreduce_worker,
                               train_loop_config={"config": config.to_yaml(), "reps": 20, "result_file": result_file},
                               scaling_config=ScalingConfig(num_workers=2, resources_per_worker={"CPU": 1}))
        trainer.fit()
        with open(result_file) as fh:
            measured = json.load(fh)
    ray.shutdown()
    step_seconds_2 = 2 * 8 / figures["2_worker_images_per_second"]  # a step moves 8 images on each worker
    figures.update({
        "two_over_one_worker": figures["2_worker_images_per_second"] / figures["1_worker_images_per_second"],
        "parameters": measured["parameters"],
        "allreduce_seconds_per_step": measured["allreduce_s"],
        "communication_fraction_of_step": measured["allreduce_s"] / step_seconds_2,
    })
    return figures


def _allreduce_worker(loop_config: dict) -> None:
    import ray.train
    import torch.distributed as dist

    from posecluster.model.pose_model import PoseModel

    torch.set_num_threads(1)
    config = PoseclusterConfig.from_yaml_text(loop_config["config"])
    numel = sum(p.numel() for p in PoseModel(config.model, 4).parameters())
    grads = torch.randn(numel)
    for _ in range(2):
        dist.all_reduce(grads)
    started, reps = time.perf_counter(), loop_config["reps"]
    for _ in range(reps):
        dist.all_reduce(grads)
    seconds = (time.perf_counter() - started) / reps
    ray.train.report({"allreduce_s": seconds})
    if ray.train.get_context().get_world_rank() == 0:  # Result.metrics only carries checkpointed reports
        with open(loop_config["result_file"], "w") as fh:
            json.dump({"allreduce_s": seconds, "parameters": numel}, fh)


def _uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sections", nargs="+", default=["speed", "accuracy"], choices=["speed", "accuracy", "workers"])
    parser.add_argument("--epochs", type=int, default=20, help="accuracy budget (and workers' epochs)")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--speed-images", type=int, default=24, help="openfield images per speed epoch")
    parser.add_argument("--speed-epochs", type=int, default=3)
    parser.add_argument("--train-precisions", nargs="+", default=["fp32", "bf16"], choices=["fp32", "bf16"],
                        help="accuracy: which runs (two processes with one each finish sooner on a loaded machine)")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's choice, the cores)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[42, 43, 44], help="accuracy: one fp32 and one bf16 run each")
    parser.add_argument("--keep-runs", help="folder for the accuracy runs (default: a temporary folder)")
    parser.add_argument("--reuse-runs", action="store_true",
                        help="accuracy: evaluate a --keep-runs run that has its model.pt instead of training it again")
    parser.add_argument("--name", default="train_scaling_precision")
    args = parser.parse_args()

    if args.threads:
        torch.set_num_threads(args.threads)
    openfield = require_openfield()
    project = read_project(openfield)
    figures = {"cpu": probe_cpu().describe(), "uptime_before": _uptime(),
               "dlc_3_0_2_train_images_per_second": DLC_TRAIN_IMAGES_PER_SECOND}
    with tempfile.TemporaryDirectory() as tmp:
        if "speed" in args.sections:
            figures["speed"] = speed_section(openfield, project, args, tmp)
        if "accuracy" in args.sections:
            figures["accuracy"] = accuracy_section(openfield, project, args, args.keep_runs or f"{tmp}/runs")
        if "workers" in args.sections:
            figures["workers"] = workers_section(openfield, project, args)
    figures["uptime_after"] = _uptime()
    print(json.dumps(figures, indent=1, default=str))
    save(args.name if args.sections != ["workers"] else "train_scaling", figures)


if __name__ == "__main__":
    main()
