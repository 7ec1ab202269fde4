"""Archive throughput on this machine, all measured in one run:

  1. frames/s of an archive run reading from S3 (a moto server on loopback) vs the same files on disk
  2. 1 vs 2 Ray workers on local files, and what limits the second worker
  3. end-to-end frames/s vs backbone-only frames/s (same batch, input size and threads per worker)

The archive: DeepLabCut's openfield video (2,330 frames, 640x480) plus rendered 640x480 videos. The model
is a randomly initialised detector of the chosen architecture (speed does not depend on the weights).

  python benchmarks/archive_throughput.py --backbone resnet18 --global-scale 0.5 --rendered 2 --frames 300
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
import time

import numpy as np
import torch

from _common import require_openfield, save
from posecluster import storage
from posecluster.cluster.archive import ArchiveOptions, run_archive
from posecluster.config import PoseclusterConfig
from posecluster.data import synthetic
from posecluster.data.project import read_project
from posecluster.data.video import DecodeReport, probe, read_frames
from posecluster.infer.predictor import Predictor
from posecluster.model.pose_model import PoseModel
from posecluster.train.checkpoint import TrainedModel, save_model


def start_moto() -> str:
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    os.environ.update(AWS_ENDPOINT_URL=endpoint, AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench",
                      AWS_DEFAULT_REGION="us-east-1")
    import boto3

    boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket="bench")
    return endpoint


def backbone_fps(predictor: Predictor, frame: np.ndarray, batch: int, threads: int, seconds: float = 20.0) -> float:
    torch.set_num_threads(threads)
    frames = np.stack([frame] * batch)
    predictor.backbone_only(frames)
    done, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        predictor.backbone_only(frames)
        done += batch
    return done / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backbone", default="resnet18")
    parser.add_argument("--global-scale", type=float, default=0.5)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--rendered", type=int, default=2, help="rendered 640x480 videos besides openfield")
    parser.add_argument("--frames", type=int, default=300, help="frames per rendered video")
    parser.add_argument("--segment-frames", type=int, default=300)
    parser.add_argument("--name", default="archive_throughput")
    args = parser.parse_args()

    openfield = require_openfield()
    start_moto()
    import ray

    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR")
    project = read_project(openfield, check_images=False).config
    config = PoseclusterConfig(project=project).with_overrides(
        {"model": {"backbone": {"name": args.backbone, "weights": "none"}, "global_scale": args.global_scale},
         "infer": {"batch_size": args.batch_size}})
    state = PoseModel(config.model, len(project.bodyparts)).state_dict()

    with tempfile.TemporaryDirectory() as tmp:
        local_root, s3_root = f"{tmp}/archive", "s3://bench/archive"
        videos = {"openfield.mp4": f"{openfield}/videos/m3v1mp4.mp4"}
        for i in range(args.rendered):
            path = f"{tmp}/rendered{i}.mp4"
            synthetic.render_video(path, synthetic.Scene(width=640, height=480, seed=i, noise_sigma=3), args.frames, gop=100)
            videos[f"rendered{i}.mp4"] = path
        for name, path in videos.items():
            storage.atomic_upload(path, f"{local_root}/videos/{name}")
            storage.atomic_upload(path, f"{s3_root}/videos/{name}")
        for root in (local_root, s3_root):
            save_model(f"{root}/model", config, project.bodyparts, state)
        total_frames = sum(probe(p).frame_count for p in videos.values())

        def archive_run(root: str, workers: int, out: str) -> float:
            opts = ArchiveOptions(model=f"{root}/model", out=f"{root}/{out}", workers=workers,
                                  segment_frames=args.segment_frames, progress=False)
            report = run_archive([f"{root}/videos/"], opts)
            assert not report.failed, [v.error for v in report.failed]
            print(f"  {root.split(':')[0] if '://' in root else 'local'} x{workers} workers: "
                  f"{report.frames_computed} frames in {report.seconds:.1f} s = {report.fps:.2f} frames/s")
            return report.fps

        runs = {
            "local_1_worker_fps": archive_run(local_root, 1, "out-l1"),
            "local_2_workers_fps": archive_run(local_root, 2, "out-l2"),
            "s3_2_workers_fps": archive_run(s3_root, 2, "out-s2"),
        }
        predictor = Predictor(TrainedModel(config, project.bodyparts, state, identity="bench"))
        info = probe(videos["openfield.mp4"])
        frame = next(read_frames(info, 0, 1, DecodeReport()))[1]
        decode_started = time.perf_counter()
        torch.set_num_threads(1)
        decoded = sum(1 for _ in read_frames(info, 0, info.frame_count, DecodeReport()))
        decode_fps = decoded / (time.perf_counter() - decode_started)
        b1 = backbone_fps(predictor, frame, args.batch_size, threads=1)
        b2 = backbone_fps(predictor, frame, args.batch_size, threads=2)

    figures = {
        "archive": f"openfield (2330 frames) + {args.rendered} rendered x {args.frames} frames, 640x480 H.264",
        "total_frames": total_frames,
        "model": f"{args.backbone} (random init), global_scale {args.global_scale}, batch {args.batch_size}",
        "segment_frames": args.segment_frames,
        **runs,
        "s3_over_local": runs["s3_2_workers_fps"] / runs["local_2_workers_fps"],
        "two_over_one_worker": runs["local_2_workers_fps"] / runs["local_1_worker_fps"],
        "decode_only_fps_1_thread": decode_fps,
        "backbone_only_fps_1_thread": b1,
        "backbone_only_fps_2_threads": b2,
        "end_to_end_over_backbone_1_worker": runs["local_1_worker_fps"] / b1,
        "end_to_end_over_backbone_2_workers": runs["local_2_workers_fps"] / b2,
    }
    for key, value in figures.items():
        print(f"{key:>36}: {value:.3f}" if isinstance(value, float) else f"{key:>36}: {value}")
    save(args.name, figures)
    ray.shutdown()


if __name__ == "__main__":
    main()
