"""Ensembles, the Ensemble Kalman Smoother and the unsupervised losses, measured where each can be measured.

(a) openfield test images (TrainingFraction 0.95, shuffle 1: 110 train / 6 test), with 100% and 25% of
    the training images (the 25% subset: a fixed random choice, --subset-seed): test error with and
    without p-cutoff for one network (member 0), the ensemble of 3 (mean and median of the members;
    seeds 0, 1, 2), and one network trained with the unsupervised losses (clips from m3v1mp4.mp4).
(b) rendered videos (posecluster.data.synthetic) with the truth on every frame, one with pixel noise
    raised and one with body parts occluded for a few frames at a time: mean error per frame for one
    network, the ensemble mean and median, and ensemble + EKS; the members are trained on a rendered project.
(c) jump rate on m3v1mp4.mp4 (no truth there): the fraction of frames where some body part above
    p-cutoff moves more than 20 px from the previous frame, for each openfield model of (a).

CPU only, ResNet-18 from scratch (no ImageNet weights offline), reduced input scale and few epochs: the
budget is printed in every row. All figures of one run come from the same machine state.

  python benchmarks/ensemble_accuracy.py --epochs 30 --global-scale 0.25
"""

from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np
import torch

from _common import require_openfield, save
from posecluster.analysis.ensemble_smoothing import ensemble_median, ensemble_stats, smooth_ensemble
from posecluster.config import PoseclusterConfig
from posecluster.data import synthetic
from posecluster.data.project import read_project
from posecluster.data.dataset import load_images
from posecluster.data.split import Split, indices_of
from posecluster.infer.ensemble import EnsemblePredictor, predict_members
from posecluster.infer.predictor import Predictor
from posecluster.train.checkpoint import load_model
from posecluster.train.loop import prepare_split, train

SEEDS = (0, 1, 2)


def base_config(project, uri, args, epochs: int, scale: float, crop) -> PoseclusterConfig:
    return PoseclusterConfig(project=project.config, project_uri=uri).with_overrides({
        "model": {"backbone": {"name": "resnet18", "weights": "none"}, "global_scale": scale},
        "augment": {"crop_size": list(crop), "scale_range": [0.8, 1.25]},
        "train": {"epochs": epochs, "batch_size": 8, "progress": False, "checkpoint_every_epochs": 1000,
                  "optimizer": {"schedule": [{"from_fraction": 0.0, "lr": args.lr},
                                             {"from_fraction": 0.8, "lr": args.lr / 5}]}},
        "split": {"training_fraction": 0.95, "shuffle": 1},
        "infer": {"batch_size": 16},
    })


def train_member(config, labels, run, split: Split, seed: int, unsupervised: dict | None = None) -> tuple[str, float]:
    split.save(f"{run}/split.json")  # the loop trains on the split it finds in the run folder
    overrides = {"train": {"seed": seed}}
    if unsupervised:
        overrides["unsupervised"] = unsupervised
    started = time.perf_counter()
    train(config.with_overrides(overrides), labels, run)
    return run, time.perf_counter() - started


def errors(poses: np.ndarray, truth: np.ndarray, pcutoff: float) -> tuple[float, float]:
    distance = np.linalg.norm(poses[..., :2] - truth, axis=-1)
    labeled = np.isfinite(distance)
    confident = labeled & (poses[..., 2] >= pcutoff)
    return float(distance[labeled].mean()), float(distance[confident].mean()) if confident.any() else float("nan")


def jump_rate(poses: np.ndarray, pcutoff: float, threshold: float = 20.0) -> float:
    step = np.linalg.norm(np.diff(poses[..., :2], axis=0), axis=-1)
    confident = (poses[1:, :, 2] >= pcutoff) & (poses[:-1, :, 2] >= pcutoff)
    return float(np.any((step > threshold) & confident, axis=1).mean())


def openfield_rows(args, tmp: str) -> tuple[list[dict], dict]:
    openfield = require_openfield()
    project = read_project(openfield)
    labels = project.labels
    pcutoff = project.config.pcutoff
    config = base_config(project, openfield, args, args.epochs, args.global_scale, args.crop)
    full = prepare_split(config, labels, f"{tmp}/split-probe", is_main=False)
    rng = np.random.default_rng(args.subset_seed)
    quarter = sorted(rng.choice(full.train_images, size=max(2, len(full.train_images) // 4), replace=False).tolist())
    test_rows = indices_of(labels.images, full.test_images)
    test_images = load_images(labels.subset(test_rows))
    truth = labels.keypoints[test_rows]
    video = f"{openfield}/videos/m3v1mp4.mp4"
    unsupervised = {"losses": [{"kind": "temporal"}, {"kind": "pca"}], "videos": [video],
                    "clip_frames": args.clip_frames}
    rows, timings = [], {}
    for name, train_images in (("100%", full.train_images), ("25%", quarter)):
        split = Split(full.training_fraction, full.shuffle, list(train_images), list(full.test_images))
        # Equal gradient steps for both fractions: fewer images, proportionally more epochs.
        epochs = args.epochs * max(1, round(len(full.train_images) / len(train_images)))
        cfg = config.with_overrides({"train": {"epochs": epochs}})
        budget = (f"resnet18 scratch, {epochs} epochs x {len(train_images)} images, batch 8, global_scale "
                  f"{args.global_scale}, crops {args.crop[0]}x{args.crop[1]}, CPU")
        members = []
        for seed in SEEDS[:1] if args.only_unsupervised else SEEDS:
            run, seconds = train_member(cfg, labels, f"{tmp}/{name}-seed{seed}", split, seed)
            members.append(run)
            timings[f"{name} seed{seed}"] = seconds
        unsup_run, seconds = train_member(cfg, labels, f"{tmp}/{name}-unsupervised", split, SEEDS[0], unsupervised)
        timings[f"{name} unsupervised"] = seconds
        predictions = np.stack([Predictor(load_model(run)).predict_images(test_images) for run in members])
        unsup = Predictor(load_model(unsup_run)).predict_images(test_images)
        compared = [("one network", predictions[0])]
        if len(members) > 1:
            compared += [("ensemble of 3, mean", ensemble_stats(predictions)[0]),
                         ("ensemble of 3, median", ensemble_median(predictions))]
        for label, poses in (*compared, ("one network + unsupervised losses", unsup)):
            error, error_p = errors(poses, truth, pcutoff)
            rows.append({"labels": name, "model": label, "test_error_px": error,
                         "test_error_pcutoff_px": error_p, "budget": budget})
        # (c) jump rate on the whole video: members on one decode, then the unsupervised network.
        ensemble = EnsemblePredictor([load_model(run) for run in members])
        _, video_members, _ = predict_members(ensemble, video)
        _, video_unsup, _ = predict_members(EnsemblePredictor([load_model(unsup_run)]), video)
        compared = [("one network", video_members[0])]
        if len(members) > 1:
            compared += [("ensemble of 3, mean", ensemble_stats(video_members)[0]),
                         ("ensemble of 3 + EKS", smooth_ensemble(video_members).poses)]
        for label, poses in (*compared, ("one network + unsupervised losses", video_unsup[0])):
            rows.append({"labels": name, "model": label, "jump_rate_m3v1mp4": jump_rate(poses, pcutoff),
                         "budget": budget})
    return rows, timings


def render_occluded(uri: str, scene: synthetic.Scene, frames: int, seed: int):
    """The demo's renderer with a dark patch over one body part for runs of 2-6 frames every 10-30 frames
    (a hand, a feeder, the other animal): what a single network stumbles on and a smoother bridges."""
    renderer = synthetic.Renderer(scene)
    states = renderer.trajectory(frames)
    truth = np.stack([renderer.keypoints(state) for state in states])
    rng = np.random.default_rng(seed)
    occluded = np.zeros(truth.shape[:2], dtype=bool)
    t = int(rng.integers(5, 15))
    while t < frames:
        length = int(rng.integers(2, 7))
        occluded[t : t + length, int(rng.integers(truth.shape[1]))] = True
        t += length + int(rng.integers(10, 30))

    def images():
        for i, state in enumerate(states):
            image = renderer.render(state)
            for x, y in truth[i, occluded[i]]:
                image[max(0, int(y) - 6) : int(y) + 7, max(0, int(x) - 6) : int(x) + 7] = (40, 40, 40)
            yield image

    synthetic.encode_video(uri, images(), scene.width, scene.height)
    return synthetic.RenderedVideo(uri=uri, truth=truth), occluded


def rendered_rows(args, tmp: str) -> list[dict]:
    scene = synthetic.Scene(width=96, height=80, seed=5, body_length=0.4)
    made = synthetic.write_project(f"{tmp}/rendered", labeled_frames=args.rendered_labels, scene=scene, video_frames=16)
    project = read_project(made.uri)
    config = base_config(project, made.uri, args, args.rendered_epochs, 1.0, (80, 80)).with_overrides(
        {"split": {"training_fraction": 0.9}})
    split = prepare_split(config, project.labels, f"{tmp}/rendered-split", is_main=False)
    members = [train_member(config, project.labels, f"{tmp}/rendered-seed{seed}", split, seed)[0] for seed in SEEDS]
    ensemble = EnsemblePredictor([load_model(run) for run in members])
    noisy = synthetic.render_video(f"{tmp}/rendered-video.mp4", synthetic.Scene(
        width=96, height=80, seed=11, body_length=0.4, noise_sigma=args.video_noise), args.video_frames)
    occluded, hidden = render_occluded(f"{tmp}/occluded-video.mp4", synthetic.Scene(
        width=96, height=80, seed=13, body_length=0.4), args.video_frames, seed=13)
    budget = (f"resnet18 scratch, {args.rendered_epochs} epochs x {len(split.train_images)} rendered images "
              f"96x80, videos of {args.video_frames} frames")
    rows = []
    for name, video, mask in ((f"pixel noise sigma {args.video_noise}", noisy, None),
                              (f"occluded parts ({hidden.any(axis=1).mean():.0%} of frames)", occluded, hidden)):
        _, poses, _ = predict_members(ensemble, video.uri)
        # EKS's observation is the members' median by default (Lightning Pose's default); with three
        # members the mean is the steadier centre, so both are reported (chosen before seeing either
        # figure: neither is tuned on these videos).
        smoothed, smoothed_mean = smooth_ensemble(poses), smooth_ensemble(poses, avg_mode="mean")
        first = len(rows)
        for label, track in (("one network", poses[0]), ("ensemble mean", ensemble_stats(poses)[0]),
                             ("ensemble median", ensemble_median(poses)),
                             ("ensemble + EKS (median observation, default)", smoothed.poses),
                             ("ensemble + EKS (mean observation)", smoothed_mean.poses)):
            distance = np.linalg.norm(track[..., :2] - video.truth, axis=-1)
            per_frame = np.nanmean(distance, axis=1)
            row = {"video": name, "model": label, "mean_error_vs_truth_px": float(np.nanmean(per_frame)),
                   "median_frame_error_px": float(np.nanmedian(per_frame)), "budget": budget}
            if mask is not None:
                row["error_on_occluded_parts_px"] = float(np.nanmean(distance[mask]))
            rows.append(row)
        for row in rows[first + 1 :]:
            row["ratio_to_one_network"] = row["mean_error_vs_truth_px"] / rows[first]["mean_error_vs_truth_px"]
        rows[first + 3]["smooth_params"] = smoothed.smooth_params
        rows[first + 4]["smooth_params"] = smoothed_mean.smooth_params
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=6, help="epochs at 100%% of the labels")
    parser.add_argument("--global-scale", type=float, default=0.25)
    parser.add_argument("--crop", type=int, nargs=2, default=[144, 112], metavar=("W", "H"))
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--clip-frames", type=int, default=4)
    parser.add_argument("--subset-seed", type=int, default=0)
    parser.add_argument("--rendered-labels", type=int, default=48)
    parser.add_argument("--rendered-epochs", type=int, default=20)
    parser.add_argument("--video-frames", type=int, default=300)
    parser.add_argument("--video-noise", type=float, default=12.0)
    parser.add_argument("--skip-openfield", action="store_true")
    parser.add_argument("--skip-rendered", action="store_true")
    parser.add_argument("--only-unsupervised", action="store_true",
                        help="openfield: one supervised network (seed 0) and one with the losses per fraction")
    parser.add_argument("--name", default="ensemble_accuracy")
    args = parser.parse_args()
    torch.manual_seed(0)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        rendered = [] if args.skip_rendered else rendered_rows(args, tmp)
        for row in rendered:
            print("(b)", row, flush=True)
        save(args.name, {"rendered_video": rendered, "openfield": "not measured yet in this run",
                         "wall_seconds": time.perf_counter() - started, "args": vars(args)})
        openfield, timings = ([], {}) if args.skip_openfield else openfield_rows(args, tmp)
        for row in openfield:
            print("(a/c)", row)
    save(args.name, {"rendered_video": rendered, "openfield": openfield, "train_seconds": timings,
                     "wall_seconds": time.perf_counter() - started, "args": vars(args),
                     "note": "accuracy figures; training times depend on what else ran on the CPU, compare "
                             "rows within this run only"})


if __name__ == "__main__":
    main()
