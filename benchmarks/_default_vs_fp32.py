"""The default (`auto` precision, `auto` batch size) against fp32, end to end, as a user gets it: for each
trained model and each video, frames/s of both (rounds interleaved, order alternating, so that a load
change on a shared machine hits both alike) and the default's published table against fp32's on every
frame (mean px, p-cutoff flips): the tolerance (model.precision) must hold on every video, including one
unlike the training images, and the default must never be the slower of the two.

Videos: the openfield video as recorded, and an "unlike" one: the same mice seen by another camera
(mirrored, a quarter smaller, inverted contrast, re-encoded with B-frames): poses the calibration never saw.
"""

from __future__ import annotations

import json
import tempfile

import av
import numpy as np

from posecluster import storage
from posecluster.data.formats.poses import read_pose_table, table_to_array
from posecluster.data.video import DecodeReport, probe, read_frames
from posecluster.infer.analyze import analyze_video
from posecluster.infer.predictor import Predictor
from posecluster.model.artifact import TrainedModel
from posecluster.model.precision import agreement


def unlike_video(source: str, uri: str, frames: int) -> str:
    """The first `frames` frames of `source` as another camera would see them, written to `uri` (mp4)."""
    info = probe(source)
    width, height = (int(info.width * 0.75) // 2) * 2, (int(info.height * 0.75) // 2) * 2
    with av.open(uri, mode="w") as container:
        stream = container.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"crf": "23", "bf": "2", "g": "48", "preset": "veryfast"}
        for _, rgb in read_frames(info, 0, min(frames, info.frame_count), DecodeReport()):
            image = av.VideoFrame.from_ndarray(np.ascontiguousarray(255 - rgb[:, ::-1]), format="rgb24")
            for packet in stream.encode(image.reformat(width=width, height=height)):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return uri


def _run(trained: TrainedModel, setting: str, video: str, frames: int | None) -> tuple[float, np.ndarray, dict]:
    batch = 1 if setting == "off" else "auto"
    predictor = Predictor(trained, trained.config.infer.model_copy(update={"mixed_precision": setting, "batch_size": batch}))
    with tempfile.TemporaryDirectory() as out:
        result = analyze_video(predictor, video, out, progress=False, stop=frames)
        table = read_pose_table(result.outputs["h5"])
        meta_uri = next(u for u in storage.list_files(out) if u.endswith("_meta.json"))
        precision = json.loads(storage.read_bytes(meta_uri))["precision"]
    return result.fps, table_to_array(table, predictor.bodyparts), precision


def compare(models: dict[str, TrainedModel], videos: dict[str, str], frames: int | None, rounds: int) -> dict:
    figures: dict = {}
    for model_name, trained in models.items():
        pcutoff = trained.config.project.pcutoff
        for video_name, video in videos.items():
            fps: dict[str, list[float]] = {"fp32": [], "default": []}
            poses: dict[str, np.ndarray] = {}
            records: dict[str, dict] = {}
            for round_ in range(rounds):
                for name in (("fp32", "default") if round_ % 2 == 0 else ("default", "fp32")):
                    rate, poses[name], records[name] = _run(trained, "off" if name == "fp32" else "auto", video, frames)
                    fps[name].append(rate)
            check = agreement(poses["fp32"], poses["default"], pcutoff)
            default = records["default"]
            row = {
                "frames": int(len(poses["fp32"])),
                "fp32_fps": float(np.median(fps["fp32"])), "default_fps": float(np.median(fps["default"])),
                "fps_by_round": fps,
                "default_path_chosen": default.get("path"), "default_path_that_ran": default.get("path_that_ran", default.get("path")),
                "default_reason": default.get("reason"), "fell_back": default.get("fell_back"),
                "video_check": default.get("video_check"),
                "default_vs_fp32": {"mean_px": check.mean_px, "max_px": check.max_px, "flip_share": check.flip_share,
                                    "within_tolerance": check.passed},
            }
            row["default_over_fp32"] = row["default_fps"] / row["fp32_fps"]
            figures[f"{model_name} / {video_name}"] = row
            print(f"{model_name} / {video_name}: default {row['default_fps']:.2f} ({row['default_path_that_ran']}, "
                  f"chosen {row['default_path_chosen']}, fell back {row['fell_back']}) vs fp32 {row['fp32_fps']:.2f} "
                  f"frames/s = {row['default_over_fp32']:.2f}x; poses vs fp32: mean {check.mean_px:.3f} px, "
                  f"max {check.max_px:.2f} px, flips {100 * check.flip_share:.2f}%", flush=True)
    return figures
