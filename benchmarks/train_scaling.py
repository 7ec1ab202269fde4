"""Data-parallel training throughput on this machine: 1 vs 2 Ray Train workers, and the per-step
communication time (the gradient all-reduce, measured inside the 2-worker gloo group).

The same openfield setting as the accuracy benchmark (ResNet-50 from scratch, global_scale 0.3, 176x144
crops). With 2 cores, one worker with 2 threads and two workers with 1 thread each use the same CPU:
the ratio shows what data parallelism costs or gains when it does not add hardware.

  python benchmarks/train_scaling.py --epochs 2
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time

import ray
import ray.train
import torch
from ray.train import ScalingConfig
from ray.train.torch import TorchTrainer

from _common import require_openfield, save
from posecluster.cluster.training import train_distributed
from posecluster.config import PoseclusterConfig
from posecluster.data.project import read_project
from posecluster.model.pose_model import PoseModel


def _allreduce_worker(loop_config: dict) -> None:
    import torch.distributed as dist

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--backbone", default="resnet50")
    parser.add_argument("--global-scale", type=float, default=0.3)
    args = parser.parse_args()

    openfield = require_openfield()
    project = read_project(openfield).config
    config = PoseclusterConfig(project=project, project_uri=openfield).with_overrides({
        "model": {"backbone": {"name": args.backbone, "weights": "none"}, "global_scale": args.global_scale},
        "augment": {"crop_size": [176, 144], "scale_range": [0.8, 1.25]},
        "train": {"epochs": args.epochs, "batch_size": 8, "progress": False, "checkpoint_every_epochs": args.epochs},
    })
    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR")
    figures = {"setting": f"{args.backbone} from scratch, global_scale {args.global_scale}, 176x144 crops, "
                          f"{args.epochs} epochs of 110 openfield images, global batch 8 per worker"}
    with tempfile.TemporaryDirectory() as tmp:
        for workers, threads in ((1, 2), (2, 1)):
            started = time.perf_counter()
            result = train_distributed(config, openfield, f"{tmp}/w{workers}", workers=workers, cpus_per_worker=threads)
            rates = [h["images_per_second"] for h in result.history]
            figures[f"{workers}_worker_images_per_second"] = max(rates[1:] or rates)  # first epoch warms up
            figures[f"{workers}_worker_wall_seconds"] = time.perf_counter() - started
            print(f"{workers} worker(s) x {threads} thread(s): {figures[f'{workers}_worker_images_per_second']:.2f} images/s")
        result_file = f"{tmp}/allreduce.json"
        trainer = TorchTrainer(_allreduce_worker,
                               train_loop_config={"config": config.to_yaml(), "reps": 20, "result_file": result_file},
                               scaling_config=ScalingConfig(num_workers=2, resources_per_worker={"CPU": 1}))
        trainer.fit()
        with open(result_file) as fh:
            metrics = json.load(fh)
    step_seconds_2 = 2 * 8 / figures["2_worker_images_per_second"]  # a step moves 8 images on each worker
    figures.update({
        "two_over_one_worker": figures["2_worker_images_per_second"] / figures["1_worker_images_per_second"],
        "parameters": metrics["parameters"],
        "allreduce_seconds_per_step": metrics["allreduce_s"],
        "step_seconds_2_workers": step_seconds_2,
        "communication_fraction_of_step": metrics["allreduce_s"] / step_seconds_2,
    })
    for key, value in figures.items():
        print(f"{key:>34}: {value:.4f}" if isinstance(value, float) else f"{key:>34}: {value}")
    save("train_scaling", figures)
    ray.shutdown()


if __name__ == "__main__":
    main()
