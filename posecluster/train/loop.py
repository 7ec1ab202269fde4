"""The training loop: pure torch, knows nothing of Ray.

Distributed runners (posecluster.cluster) pass a TrainContext (rank, world size, device, a model wrapper
such as DDP, a per-epoch report hook) and a CheckpointStore; the plain single-process path uses defaults.
Only the main rank writes the run folder.
"""

from __future__ import annotations

import csv
import io
import logging
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
from torch.utils.data import DataLoader, DistributedSampler
from tqdm.auto import tqdm

from posecluster import metrics, storage
from posecluster.config import OptimizerConfig, PoseclusterConfig
from posecluster.data.labels import LabeledDataset
from posecluster.data.multianimal import MultiAnimalLabels
from posecluster.data.split import Split, indices_of, make_split
from posecluster.model.artifact import TrainedModel
from posecluster.model.device import resolve_device, set_batchnorm_frozen, wanted
from posecluster.model.pose_model import PoseModel
from posecluster.model.precision import CpuCapability, ReducedPrecision, choose_training, probe_cpu
from posecluster.model.weights import load_backbone_weights
from posecluster.train.calibrate import load_rows, pick_rows, project_video_frames, reduced_precision
from posecluster.train.checkpoint import CheckpointStore, UriCheckpointStore
from posecluster.train.families import training_family

log = logging.getLogger(__name__)


@dataclass
class TrainContext:
    rank: int = 0
    world_size: int = 1
    device: torch.device | None = None
    wrap_model: Callable[[torch.nn.Module], torch.nn.Module] = lambda model: model
    on_epoch: Callable[[dict], None] | None = None
    # The CPU's abilities (None: this machine's, probed); the seam for playing another CPU.
    cpu: CpuCapability | None = None

    @property
    def is_main(self) -> bool:
        return self.rank == 0


@dataclass
class TrainResult:
    run_uri: str
    model_uri: str | None
    epochs: int
    final_loss: float
    images_per_second: float
    seconds: float
    history: list[dict] = field(default_factory=list)


def build_model(config: PoseclusterConfig, num_bodyparts: int, pretrained: bool = True) -> PoseModel:
    return _with_backbone_weights(PoseModel(config.model, num_bodyparts), config, pretrained)


def _with_backbone_weights(model: torch.nn.Module, config: PoseclusterConfig, pretrained: bool) -> torch.nn.Module:
    if pretrained:
        loaded = load_backbone_weights(model.backbone, config.model.backbone.weights, config.model.backbone.name)
        log.info("backbone %s: %s", config.model.backbone.name, loaded)
    return model


def learning_rate(schedule: OptimizerConfig, step: int, total_steps: int) -> float:
    fraction = step / max(total_steps, 1)
    lr = schedule.schedule[0].lr
    for entry in schedule.schedule:
        if fraction >= entry.from_fraction:
            lr = entry.lr
    return lr


def make_optimizer(model: torch.nn.Module, config: OptimizerConfig) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    lr = config.schedule[0].lr
    if config.name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=config.momentum, weight_decay=config.weight_decay)
    return torch.optim.AdamW(params, lr=lr, weight_decay=config.weight_decay)


def prepare_split(config: PoseclusterConfig, labels: LabeledDataset, run_uri: str, is_main: bool) -> Split:
    """The run's split: the saved one when resuming (so evaluation matches), else a new seeded one."""
    uri = storage.join(run_uri, "split.json")
    if storage.exists(uri):
        return Split.load(uri)
    # Frames extracted for labeling but not labeled yet (all NaN) are not training data (DLC drops them too).
    labeled = [image for image, points in zip(labels.images, labels.keypoints) if not np.isnan(points).all()]
    split = make_split(labeled, config.split.training_fraction, config.split.shuffle)
    if is_main:
        split.save(uri)
    return split


def _history_csv(history: list[dict]) -> bytes:
    out = io.StringIO()
    if history:
        writer = csv.DictWriter(out, fieldnames=list(history[0]))
        writer.writeheader()
        writer.writerows(history)
    return out.getvalue().encode()


def train(
    config: PoseclusterConfig,
    labels: LabeledDataset | MultiAnimalLabels,
    run_uri: str,
    context: TrainContext | None = None,
    store: CheckpointStore | None = None,
    images: list | None = None,
) -> TrainResult:
    """Train the part detector on the training split of `labels`, writing the run folder `run_uri`.

    `images`, when given, are the already-loaded images of every row of `labels` (workers load them once).
    A multi-animal project (config.project.multianimal) trains the maDLC model: train/families.py.
    """
    context = context or TrainContext()
    store = store or UriCheckpointStore(run_uri, keep=config.train.keep_checkpoints)
    tcfg = config.train
    device = context.device or resolve_device(tcfg.device)
    torch.manual_seed(tcfg.seed)

    split = prepare_split(config, labels, run_uri, context.is_main)
    train_rows = indices_of(labels.images, split.train_images)
    family = training_family(config, labels, train_rows)  # single- or multi-animal, chosen once here
    network = family.family  # model.family: build_model, make_targets, loss
    dataset = family.dataset(config, labels, train_rows, images)  # `images`: of every row of `labels`
    sampler = DistributedSampler(
        dataset, num_replicas=context.world_size, rank=context.rank, shuffle=True, seed=tcfg.seed
    )
    loader = DataLoader(
        dataset,
        batch_size=tcfg.batch_size,
        sampler=sampler,
        num_workers=tcfg.loader_workers,
        persistent_workers=tcfg.loader_workers > 0,
        pin_memory=device.type == "cuda",
    )

    resume_state = store.latest()
    model = _with_backbone_weights(network.build_model(), config, pretrained=resume_state is None)
    cpu = context.cpu or probe_cpu()
    precision = choose_training(tcfg.mixed_precision, device, cpu)
    if context.is_main:
        log.info("training precision %s on %s: %s", precision.path, device, precision.reason)
    # oneDNN's bf16 kernels want channels_last on CPU as cuDNN's do on CUDA.
    channels_last = wanted(tcfg.channels_last, device, on_cpu_too=precision.path == "bf16")
    model = model.to(device, memory_format=torch.channels_last if channels_last else torch.contiguous_format)
    optimizer = make_optimizer(model, tcfg.optimizer)
    start_epoch, step, history = 0, 0, []
    if resume_state is not None:
        family.check_resumed(resume_state, run_uri)
        model.load_state_dict(resume_state["model"])
        optimizer.load_state_dict(resume_state["optimizer"])
        start_epoch, step, history = resume_state["epoch"], resume_state["step"], list(resume_state["history"])
        log.info("resuming %s from epoch %d", run_uri, start_epoch)
    resumed_at = start_epoch
    if context.is_main:
        config.save(storage.join(run_uri, "config.yaml"))
    trained = context.wrap_model(model)

    # Off unless config.unsupervised.losses names some; Pose PCA is fitted on the training labels.
    unlabeled = family.unlabeled_term(config, labels, train_rows, context.rank)
    scaler = torch.amp.GradScaler("cuda") if precision.needs_grad_scaler else None
    frozen_bn = config.model.backbone.batchnorm_frozen()
    total_steps = tcfg.epochs * len(loader)
    bar = tqdm(
        total=total_steps,
        initial=step,
        disable=not (tcfg.progress and context.is_main),
        desc="train",
        unit="step",
    )
    started = time.perf_counter()
    seen_images = 0
    exporter = metrics.current()
    for epoch in range(start_epoch, tcfg.epochs):
        sampler.set_epoch(epoch)
        dataset.set_epoch(epoch)
        trained.train()
        set_batchnorm_frozen(trained, frozen_bn)
        epoch_loss, epoch_batches, epoch_start = 0.0, 0, time.perf_counter()
        epoch_unlabeled: dict[str, float] = {}
        importance = unlabeled.importance(epoch) if unlabeled is not None else 0.0
        step_started = epoch_start
        for batch in loader:
            lr = learning_rate(tcfg.optimizer, step, total_steps)
            for group in optimizer.param_groups:
                group["lr"] = lr
            batch_images = batch["image"].to(device, non_blocking=True)
            if channels_last:
                batch_images = batch_images.contiguous(memory_format=torch.channels_last)
            with precision.autocast(device):  # the heads and the loss stay fp32 (PoseModel.forward)
                outputs = trained(batch_images)
            loss, parts = network.loss(outputs, network.make_targets(batch, outputs, model.stride))
            if unlabeled is not None:
                extra, extra_parts = unlabeled(trained, model, device, channels_last, precision, importance)
                loss = loss + extra
                parts.update(extra_parts, total=float(loss.detach()))
                for name, value in extra_parts.items():
                    epoch_unlabeled[name] = epoch_unlabeled.get(name, 0.0) + value
            optimizer.zero_grad(set_to_none=True)
            if scaler is not None:
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
            else:
                loss.backward()
                optimizer.step()
            step += 1
            epoch_batches += 1
            exporter.observe(metrics.STEP_TIME, time.perf_counter() - step_started)
            step_started = time.perf_counter()
            epoch_loss += parts["total"]
            seen_images += len(batch_images) * context.world_size
            rate = seen_images / max(time.perf_counter() - started, 1e-9)
            bar.update(1)
            bar.set_postfix(epoch=epoch + 1, loss=f"{parts['total']:.4f}", img_s=f"{rate:.1f}")
        record = {
            "epoch": epoch + 1,
            "attempt_started_at_epoch": resumed_at,  # > 0 after a resume or a restart from a checkpoint
            "step": step,
            "loss": epoch_loss / max(epoch_batches, 1),
            "lr": lr,
            "precision": precision.path,
            "images_per_second": epoch_batches * tcfg.batch_size * context.world_size
            / max(time.perf_counter() - epoch_start, 1e-9),
        }
        if unlabeled is not None:
            # The unsupervised losses' mean (unweighted) values (NaN while their importance is 0: not run).
            record["unsupervised_importance"] = importance
            record.update({f"unsupervised_{loss.name}": epoch_unlabeled.get(loss.name, float("nan"))
                           / max(epoch_batches, 1) for loss in unlabeled.losses})
        history.append(record)
        if context.is_main:
            exporter.set(metrics.TRAINING_LOSS, record["loss"])
            exporter.set(metrics.TRAINING_RATE, record["images_per_second"])
        last = epoch + 1 == tcfg.epochs
        if context.is_main and ((epoch + 1) % tcfg.checkpoint_every_epochs == 0 or last):
            state = {
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "epoch": epoch + 1,
                "step": step,
                "history": history,
                # What load_model needs, so any checkpoint can also be analyzed with.
                "config": config.to_yaml(),
                **family.record(),
            }
            store.save(state, epoch + 1)
            storage.atomic_write_bytes(storage.join(run_uri, "history.csv"), _history_csv(history))
        if context.on_epoch is not None:  # after the save: Ray Train reports the checkpoint with the metrics
            context.on_epoch(record)
    bar.close()
    seconds = time.perf_counter() - started
    model_uri = None
    if context.is_main:
        state = {k: v.cpu() for k, v in model.state_dict().items()}
        reduced = _calibrate(config, labels, state, split, images, cpu) if family.calibrates else None
        model_uri = family.save(run_uri, config, state, reduced)
    return TrainResult(
        run_uri=run_uri,
        model_uri=model_uri,
        epochs=tcfg.epochs,
        final_loss=history[-1]["loss"] if history else float("nan"),
        images_per_second=seen_images / max(seconds, 1e-9),
        seconds=seconds,
        history=history,
    )


def _calibrate(config: PoseclusterConfig, labels: LabeledDataset, state: dict, split: Split,
               images: list | None, cpu: CpuCapability) -> ReducedPrecision | None:
    """The int8 version and the bf16/int8 pose checks that model.pt will carry (train.calibrate), or None
    when turned off or when calibration fails: the trained weights are saved either way."""
    count = config.train.int8_calibration_images
    if not count:
        return None
    calibration, check = pick_rows(indices_of(labels.images, split.train_images),
                                   indices_of(labels.images, split.test_images), count)
    images = images if images is not None else load_rows(labels, calibration + check)
    trained = TrainedModel(config, list(labels.bodyparts), state, identity="calibrating")
    try:
        return reduced_precision(trained, images, calibration, check, cpu, video_frames=project_video_frames(trained))
    except Exception as exc:  # noqa: BLE001 - a failed calibration must not lose the trained model
        log.warning("int8 calibration failed, model saved without it (auto runs fp32 until `posecluster "
                    "calibrate` checks the reduced paths): %s: %s", type(exc).__name__, exc)
        return None
