"""Data-parallel training on Ray Train: the same loop as single-process training, placed on workers.

DDP over NCCL (GPUs) or gloo (CPU) through ray.train.torch.TorchTrainer. Every worker reads the labeled
images from storage once and keeps them in memory. Only rank 0 writes the run folder; checkpoints go
through Ray Train's persistent storage into <run>/checkpoints/epoch-NNNN/ (the same layout as
single-process runs, so either can resume the other). FailureConfig restarts the worker group from the
last checkpoint when a worker dies.

Learning rate rule: the configured schedule is for the configured batch size per worker; with W workers
the global batch is W x batch_size, and the learning rate is scaled by sqrt(W) (the square-root rule
for Adam-type optimizers; linear for SGD) unless train.scale_lr_with_workers is false.
"""

from __future__ import annotations

import math
import shutil
import tempfile
import time

import ray
import ray.train
import torch
from ray.train import Checkpoint, CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
from ray.train.torch import TorchTrainer

from posecluster import metrics, storage
from posecluster.config import PoseclusterConfig
from posecluster.data.dataset import load_images
from posecluster.data.project import read_project
from posecluster.storage import scope as job_scope
from posecluster.train.checkpoint import STATE_FILE, UriCheckpointStore, from_bytes, to_bytes
from posecluster.train.loop import TrainContext, TrainResult, train


def scaled_for_workers(config: PoseclusterConfig, workers: int) -> PoseclusterConfig:
    """The learning-rate rule for a global batch of workers x batch_size (see the module docstring)."""
    if workers <= 1 or not config.train.scale_lr_with_workers:
        return config
    factor = workers if config.train.optimizer.name == "sgd" else math.sqrt(workers)
    schedule = [{"from_fraction": s.from_fraction, "lr": s.lr * factor} for s in config.train.optimizer.schedule]
    return config.with_overrides({"train": {"optimizer": {"schedule": schedule}}})


class RayCheckpointStore:
    """Checkpoints through Ray Train: saved state is attached to the next ray.train.report."""

    def __init__(self, run_uri: str):
        self.fallback = UriCheckpointStore(run_uri)  # a run started without Ray, or a stopped job
        self._pending: str | None = None

    def latest(self) -> dict | None:
        checkpoint = ray.train.get_checkpoint()
        if checkpoint is None:
            return self.fallback.latest()
        with checkpoint.as_directory() as folder:
            with open(f"{folder}/{STATE_FILE}", "rb") as fh:
                return from_bytes(fh.read(), f"{checkpoint.path}/{STATE_FILE}")

    def save(self, state: dict, epoch: int) -> None:
        self._pending = tempfile.mkdtemp(prefix="posecluster-ckpt-")
        with open(f"{self._pending}/{STATE_FILE}", "wb") as fh:
            fh.write(to_bytes(state))
        self._pending_epoch = epoch

    def report(self, record: dict) -> None:
        """Called on every rank every epoch (Ray Train requires it)."""
        if self._pending is None:
            ray.train.report(record)
            return
        try:
            ray.train.report(record, checkpoint=Checkpoint.from_directory(self._pending),
                             checkpoint_dir_name=f"epoch-{self._pending_epoch:04d}")
        finally:
            shutil.rmtree(self._pending, ignore_errors=True)
            self._pending = None


def _worker(loop_config: dict) -> None:
    job_scope.install(loop_config["scope"])  # the driver's scope: this worker's reads and writes are checked too
    config = PoseclusterConfig.from_yaml_text(loop_config["config"])
    context = ray.train.get_context()
    rank, world = context.get_world_rank(), context.get_world_size()
    device = ray.train.torch.get_device()
    torch.set_num_threads(max(1, int(loop_config["threads"])))
    metrics.use(metrics.RayExporter())
    labels = read_project(loop_config["project"]).labels
    images = load_images(labels)  # once per worker, kept in memory

    def wrap(model: torch.nn.Module) -> torch.nn.Module:
        if world == 1:
            return model
        if device.type == "cuda":
            model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
            return torch.nn.parallel.DistributedDataParallel(model, device_ids=[device.index])
        return torch.nn.parallel.DistributedDataParallel(model)

    store = RayCheckpointStore(loop_config["run"])
    train(config, labels, loop_config["run"], TrainContext(rank, world, device, wrap, store.report), store, images)


def train_distributed(config: PoseclusterConfig, project_uri: str, run_uri: str, workers: int,
                      gpus_per_worker: float = 0.0, cpus_per_worker: float = 1.0,
                      max_failures: int = 2) -> TrainResult:
    """Train with `workers` DDP workers; returns the rank-0 result as read back from the run folder."""
    from posecluster.cluster.runtime import connect

    connect()
    config = scaled_for_workers(config, workers)
    arrow_fs, path = storage.arrow_filesystem(run_uri)
    trainer = TorchTrainer(
        _worker,
        train_loop_config={"config": config.to_yaml(), "project": project_uri, "run": run_uri,
                           "threads": cpus_per_worker, "scope": job_scope.current()},
        scaling_config=ScalingConfig(num_workers=workers, use_gpu=gpus_per_worker > 0,
                                     resources_per_worker={"CPU": cpus_per_worker, "GPU": gpus_per_worker}
                                     if gpus_per_worker > 0 else {"CPU": cpus_per_worker}),
        run_config=RunConfig(
            name="checkpoints",
            storage_path=path,
            storage_filesystem=arrow_fs,
            failure_config=FailureConfig(max_failures=max_failures),
            checkpoint_config=CheckpointConfig(num_to_keep=config.train.keep_checkpoints),
        ),
    )
    started = time.perf_counter()
    fitted = trainer.fit()
    seconds = time.perf_counter() - started  # the workers' own timings stay inside Ray Train
    if fitted.error:
        raise fitted.error
    history = fitted.metrics_dataframe.to_dict("records") if fitted.metrics_dataframe is not None else []
    return TrainResult(
        run_uri=run_uri,
        model_uri=storage.join(run_uri, "model.pt"),
        epochs=config.train.epochs,
        final_loss=float(fitted.metrics.get("loss", float("nan"))) if fitted.metrics else float("nan"),
        images_per_second=float(fitted.metrics.get("images_per_second", 0.0)) if fitted.metrics else 0.0,
        seconds=seconds,
        history=history,
    )
