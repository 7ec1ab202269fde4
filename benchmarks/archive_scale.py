"""Archive jobs at scale: N small videos in a moto S3 server behind a proxy that adds latency per request.

Measured in one run per N (all figures from the same process tree):
  - time until Ray is up; time to the first finished table after Ray is up; total time;
  - storage requests per video made by the driver (counted at the proxy: the driver talks to the proxy
    on a port of its own, the Ray workers and tasks on another);
  - video bytes read from storage / video bytes stored (what workers and planning tasks fetched);
  - manifest bytes written per video; the driver's peak RSS;
  - workers busy with segments (predicting + writing) as a fraction of workers x wall time after the
    first segment started.

The storage side (moto + the proxy) runs in a process of its own, so the driver's RSS is its own. The
model is a randomly initialised ResNet-18 at a small input scale (speed does not depend on weights).

  python benchmarks/archive_scale.py --videos 1000 --frames 8
  python benchmarks/archive_scale.py --videos 40 --frames 300 --name archive_scale_300

Long-video mode (benchmarks/_archive_long.py): 20 recordings of 10 minutes and 2 of 2 hours per container
(MP4 with moov first and last, MKV with and without cues, MPEG-TS, AVI), each job's storage bill counted at
the proxy:

  python benchmarks/archive_scale.py --long [--containers mp4-moov-first ts] [--render-dir /tmp/long]
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time

import _storage
from _archive_long import CONTAINERS, run_long
from _common import require_openfield, save

def requests(counts: dict, who: str) -> int:
    return sum(kind["requests"] for kind in counts[who].values())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--videos", type=int, default=1000)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--latency-ms", type=float, default=20)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--global-scale", type=float, default=0.5)
    parser.add_argument("--name", default=None)
    long = parser.add_argument_group("long-video mode (--long): recordings as facilities keep them, every container")
    long.add_argument("--long", action="store_true", help="run the long-video mode instead (benchmarks/_archive_long.py)")
    long.add_argument("--containers", nargs="*", choices=list(CONTAINERS), help="default: all")
    long.add_argument("--short", type=int, default=20, help="copies of the 10-minute recording")
    long.add_argument("--short-frames", type=int, default=18000)
    long.add_argument("--long-videos", dest="long_copies", type=int, default=2, help="copies of the 2-hour recording")
    long.add_argument("--long-frames", type=int, default=216000)
    long.add_argument("--segment-frames", type=int, default=1000)
    long.add_argument("--render-dir", default=None, help="keep rendered recordings here between runs")
    args = parser.parse_args()
    if args.long:
        run_long(args)
        return
    name = args.name or f"archive_scale_{args.videos}x{args.frames}"

    openfield = require_openfield()
    tmp = tempfile.mkdtemp(prefix="archive-scale-")
    counts_file = f"{tmp}/counts.json"
    storage_proc, ports = _storage.start(args.latency_ms / 1000, counts_file)
    creds = dict(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", AWS_DEFAULT_REGION="us-east-1")
    os.environ.update(creds, AWS_ENDPOINT_URL=f"http://127.0.0.1:{ports['moto']}")
    try:
        import boto3

        from posecluster.config import PoseclusterConfig
        from posecluster.data import synthetic
        from posecluster.data.formats.dlc import read_project_config
        from posecluster.model.artifact import to_bytes
        from posecluster.model.pose_model import PoseModel

        # Set up straight against moto (no latency, not counted).
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket="bench")
        project = read_project_config(f"{openfield}/config.yaml")
        config = PoseclusterConfig(project=project).with_overrides(
            {"model": {"backbone": {"name": "resnet18", "weights": "none"}, "global_scale": args.global_scale},
             "infer": {"batch_size": 8}})
        state = PoseModel(config.model, len(project.bodyparts)).state_dict()
        s3.put_object(Bucket="bench", Key="model/model.pt", Body=to_bytes(
            {"config": config.to_yaml(), "bodyparts": list(project.bodyparts), "model": state}))
        # A few distinct clips, uploaded under N names (each its own object: its own ETag-keyed work).
        clips = []
        for seed in range(8):
            path = f"{tmp}/clip{seed}.mp4"
            synthetic.render_video(path, synthetic.Scene(width=96, height=80, seed=seed), args.frames, gop=25)
            clips.append(open(path, "rb").read())
        stored = 0
        for i in range(args.videos):
            body = clips[i % len(clips)]
            s3.put_object(Bucket="bench", Key=f"videos/day{i % 10}/v{i:06d}.mp4", Body=body)
            stored += len(body)

        # Ray's processes reach storage through the workers' port of the proxy, the driver through its own.
        os.environ["AWS_ENDPOINT_URL"] = f"http://127.0.0.1:{ports['workers']}"
        import ray

        started = time.perf_counter()
        ray.init(num_cpus=args.workers, include_dashboard=False, logging_level="ERROR")
        ray_up = time.perf_counter() - started
        os.environ["AWS_ENDPOINT_URL"] = f"http://127.0.0.1:{ports['driver']}"
        from posecluster.cluster.archive import ArchiveOptions, run_archive

        before = _storage.read_counts(counts_file)
        job_started = time.perf_counter()
        report = run_archive(["s3://bench/videos/"], ArchiveOptions(
            model="s3://bench/model", out="s3://bench/poses", workers=args.workers, segment_frames=1000,
            progress=False))
        total = time.perf_counter() - job_started
        after = _storage.read_counts(counts_file)
        assert not report.failed, [(v.uri, v.error) for v in report.failed[:3]]
        driver_requests = requests(after, "driver") - requests(before, "driver")
        window = report.seconds - (report.first_segment_started or 0.0)
        figures = {
            "videos": args.videos,
            "frames_per_video": args.frames,
            "video_bytes": len(clips[0]),
            "latency_ms_per_request": args.latency_ms,
            "workers": report.workers,
            "ray_up_s": ray_up,
            "first_table_after_ray_up_s": report.first_table_s,
            "job_total_s": total,
            "driver_requests": driver_requests,
            "driver_requests_per_video": driver_requests / args.videos,
            "worker_side_requests_per_video": (requests(after, "workers") - requests(before, "workers")) / args.videos,
            "video_bytes_read_over_stored": report.bytes_read / stored,
            "manifest_bytes": report.manifest_bytes,
            "manifest_bytes_per_video": report.manifest_bytes / args.videos,
            "driver_peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "workers_busy_after_first_segment": report.busy_seconds / (report.workers * window) if window else 0.0,
            "frames_per_second": report.fps,
            "note": "2-core machine shared with other engineers' test runs; figures are from one run",
        }
        for key, value in figures.items():
            print(f"{key:>36}: {value:.3f}" if isinstance(value, float) else f"{key:>36}: {value}")
        save(name, figures)
        ray.shutdown()
    finally:
        storage_proc.terminate()


if __name__ == "__main__":
    main()
