"""The labeling loop on DeepLabCut's openfield video (2,330 frames, 640x480): what each step costs.

A ResNet-18 is trained from scratch for a few minutes (no ImageNet weights offline) so the pose table is
a real, imperfect one; then, timed in one run: extract-frames (k-means over every frame, and uniform),
the three filters, outlier detection (jump, uncertain, fitting) with the frames written into a project,
label-video against decoding alone, plots, and export with its check. A labeled frame and the x/y plot
are saved beside the results for looking at.

  python benchmarks/labeling_loop.py --epochs 25
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time

import av

from _common import RESULTS, require_openfield, save
from posecluster import api
from posecluster.analysis.filtering import FilterOptions
from posecluster.analysis.outliers import OutlierOptions
from posecluster.config import PoseclusterConfig, ProjectConfig
from posecluster.data.formats import dlc
from posecluster.data.project import read_project
from posecluster.data.video import DecodeReport, probe, read_frames
from posecluster.labeling.extract import ExtractOptions, extract_video
from posecluster.model.export import ExportOptions
from posecluster.train.evaluate import evaluate
from posecluster.train.loop import train
from posecluster.viz.labeled_video import LabelOptions


def timed(call):
    started = time.perf_counter()
    result = call()
    return result, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=25)
    parser.add_argument("--global-scale", type=float, default=0.3)
    args = parser.parse_args()
    openfield = require_openfield()
    video = f"{openfield}/videos/m3v1mp4.mp4"
    project = read_project(openfield)
    config = PoseclusterConfig(project=project.config, project_uri=openfield).with_overrides({
        "model": {"backbone": {"name": "resnet18", "weights": "none"}, "global_scale": args.global_scale},
        "augment": {"crop_size": [176, 144], "scale_range": [0.8, 1.25]},
        "train": {"epochs": args.epochs, "batch_size": 8, "checkpoint_every_epochs": 100, "progress": False,
                  "optimizer": {"schedule": [{"from_fraction": 0.0, "lr": 1e-3}, {"from_fraction": 0.8, "lr": 2e-4}]}},
        "split": {"training_fraction": 0.95, "shuffle": 1}, "infer": {"batch_size": 8},
    })
    figures: dict = {"video": "openfield m3v1mp4.mp4, 2,330 frames, 640x480 H.264"}
    with tempfile.TemporaryDirectory() as tmp:
        run, poses = f"{tmp}/run", f"{tmp}/poses"
        trained, seconds = timed(lambda: train(config, project.labels, run))
        evaluation = evaluate(run, project.labels)
        figures["model"] = (f"resnet18 from scratch, {args.epochs} epochs in {seconds:.0f} s, global_scale "
                            f"{args.global_scale}; test error {evaluation.test_error_px:.1f} px "
                            f"({evaluation.test_error_pcutoff_px:.1f} px with p-cutoff)")
        analysed, seconds = timed(lambda: api.analyze([video], run, poses, progress=False))
        figures["analyze_fps"] = analysed[0].frames / seconds

        labeling = f"{tmp}/labeling"
        dlc.write_project_config(f"{labeling}/config.yaml", ProjectConfig(task="of", scorer="Ann", bodyparts=project.config.bodyparts,
                                                                          pcutoff=project.config.pcutoff))
        for method in ("kmeans", "uniform"):
            result, seconds = timed(lambda: extract_video(video, labeling, ExtractOptions(method=method, n=20)))
            figures[f"extract_{method}_seconds"] = seconds
            figures[f"extract_{method}_frames"] = result.indices
        for method in ("median", "spline", "arima"):
            _, seconds = timed(lambda: api.filter_poses([poses], FilterOptions(method=method)))
            figures[f"filter_{method}_seconds"] = seconds
        outcomes, seconds = timed(lambda: api.extract_outlier_frames(
            [poses], labeling, OutlierOptions(algorithms=("jump", "uncertain", "fitting")), n=20))
        figures["outliers_seconds"] = seconds
        figures["outlier_candidates"] = outcomes[0].outputs["candidates"]
        figures["outlier_frames_written"] = len(outcomes[0].outputs["frames"])
        figures["outlier_reasons"] = {r: sum(r in v for v in outcomes[0].outputs["reasons"].values())
                                      for r in ("jump", "uncertain", "fitting")}

        info = probe(video)
        _, decode_seconds = timed(lambda: sum(1 for _ in read_frames(info, 0, info.frame_count, DecodeReport())))
        labeled, seconds = timed(lambda: api.label_videos([poses], f"{tmp}/labeled", LabelOptions(trail=5),
                                                          draw_skeleton=True))
        figures["label_video_fps"] = labeled[0].outputs["frames"] / seconds
        figures["decode_only_fps"] = info.frame_count / decode_seconds
        # Drawing and re-encoding on top of decoding, both measured here in this run.
        figures["label_video_vs_decode_only"] = figures["label_video_fps"] / figures["decode_only_fps"]
        plots, seconds = timed(lambda: api.plot_poses([poses], f"{tmp}/plots"))
        figures["plot_seconds"] = seconds
        export, seconds = timed(lambda: api.export_detector(run, f"{tmp}/export", ExportOptions(height=144, width=192)))
        figures["export_seconds"] = seconds
        figures["export_max_abs_difference"] = export.max_abs_difference

        with av.open(labeled[0].outputs["video"]) as container:
            for index, frame in enumerate(container.decode(video=0)):
                if index == 1511:
                    frame.to_image().save(RESULTS / "labeling_loop_labeled_frame1511.png")
                    break
        shutil.copy(plots[0].outputs["plot.png"], RESULTS / "labeling_loop_plot.png")
    for key, value in figures.items():
        print(f"{key}: {value}")
    save("labeling_loop", figures)


if __name__ == "__main__":
    main()
