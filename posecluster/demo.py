"""The single-machine flow end to end on data posecluster renders itself.

Render a DLC-layout project and a video, train a small detector from scratch, evaluate it the way DLC
does, analyze the video, and compare everything with the known truth and with a chance baseline.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from posecluster import storage
from posecluster.config import PoseclusterConfig
from posecluster.data import synthetic
from posecluster.data.formats.poses import read_pose_table, table_to_array
from posecluster.data.project import read_project
from posecluster.data.split import Split, indices_of
from posecluster.infer.analyze import analyze_video
from posecluster.infer.predictor import Predictor
from posecluster.train.checkpoint import load_model
from posecluster.train.evaluate import evaluate
from posecluster.train.loop import train


@dataclass
class DemoReport:
    project_uri: str
    run_uri: str
    pose_table: str
    train_seconds: float
    train_images_per_second: float
    train_error_px: float
    test_error_px: float
    chance_error_px: float
    video_error_px: float
    video_frames: int
    video_fps: float

    def lines(self) -> list[str]:
        return [
            f"project (rendered):   {self.project_uri}",
            f"model:                {self.run_uri}",
            f"pose table:           {self.pose_table}",
            f"training:             {self.train_seconds:.0f} s, {self.train_images_per_second:.1f} images/s",
            f"labeled-frame error:  train {self.train_error_px:.2f} px, test {self.test_error_px:.2f} px",
            f"chance (mean pose):   {self.chance_error_px:.2f} px on the test images "
            f"-> the detector is {self.chance_error_px / max(self.test_error_px, 1e-9):.1f}x better",
            f"video vs truth:       {self.video_error_px:.2f} px mean over {self.video_frames} frames",
            f"analysis speed:       {self.video_fps:.1f} frames/s (decode + inference, this machine)",
        ]


def demo_config(base: PoseclusterConfig, epochs: int = 30) -> PoseclusterConfig:
    """A small, from-scratch ResNet-18 at full resolution of the small rendered frames."""
    return base.with_overrides(
        {
            "model": {"backbone": {"name": "resnet18", "weights": "none"}, "global_scale": 1.0},
            "augment": {"crop_size": [128, 128], "scale_range": [0.8, 1.2]},
            "train": {"epochs": epochs, "batch_size": 8, "checkpoint_every_epochs": 10,
                      "optimizer": {"schedule": [{"from_fraction": 0.0, "lr": 1e-3},
                                                 {"from_fraction": 0.8, "lr": 2e-4}]}},
            "split": {"training_fraction": 0.8},
            "infer": {"batch_size": 16},
        }
    )


def chance_error(labels, split: Split) -> float:
    """Error of always answering the mean training pose: what a detector that learned nothing gets."""
    train_rows = indices_of(labels.images, split.train_images)
    test_rows = indices_of(labels.images, split.test_images)
    mean_pose = np.nanmean(labels.keypoints[train_rows], axis=0)
    errors = np.linalg.norm(labels.keypoints[test_rows] - mean_pose, axis=-1)
    return float(np.nanmean(errors))


def run_demo(out: str, labeled_frames: int = 48, epochs: int = 30, video_frames: int = 150,
             progress: bool = True, seed: int = 0) -> DemoReport:
    out = out.rstrip("/")
    project_uri, run_uri = storage.join(out, "project"), storage.join(out, "model")
    rendered = synthetic.write_project(project_uri, labeled_frames=labeled_frames,
                                       scene=synthetic.Scene(seed=seed), video_frames=video_frames)
    project = read_project(project_uri)
    config = demo_config(PoseclusterConfig(project=project.config, project_uri=project_uri), epochs)
    config = config.with_overrides({"train": {"progress": progress}})
    trained = train(config, project.labels, run_uri)
    evaluation = evaluate(run_uri, project.labels)
    split = Split.load(storage.join(run_uri, "split.json"))
    predictor = Predictor(load_model(run_uri))
    video = rendered.videos[0]
    analysis = analyze_video(predictor, video.uri, storage.join(out, "poses"), progress=progress)
    poses = table_to_array(read_pose_table(analysis.outputs["h5"]), project.labels.bodyparts)
    video_error = float(np.nanmean(np.linalg.norm(poses[..., :2] - video.truth, axis=-1)))
    return DemoReport(
        project_uri=project_uri,
        run_uri=run_uri,
        pose_table=analysis.outputs["h5"],
        train_seconds=trained.seconds,
        train_images_per_second=trained.images_per_second,
        train_error_px=evaluation.train_error_px,
        test_error_px=evaluation.test_error_px,
        chance_error_px=chance_error(project.labels, split),
        video_error_px=video_error,
        video_frames=analysis.frames,
        video_fps=analysis.fps,
    )
