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

With `--animals N`, the same job runs a second time in the same Ray, over rendered videos of N look-alike
animals (data.synthetic_multianimal: same size, length and keyframe interval) with a random multi-animal
model (_common.random_multianimal_model), and the figures of both jobs are saved side by side: above all
video bytes read / stored, multi-animal over single-animal. Small videos are fetched whole by default
(one GET each: both ratios 1.0 by construction); `--small-video-mb 0` streams every video by range in
segments, where a multi-animal segment reads only its own frames, as a single-animal one does (the join
links tracklets across the cuts from the detections at each segment's edges; tracking/linking.py), so
the two ratios should agree. `--noise-sigma` makes the clips' frames larger (more bytes per
frame at the same inference cost), so that a segment's byte range is far above the 64 kB a worker fetches
at least:

  python benchmarks/archive_scale.py --videos 20 --frames 300 --animals 3
  python benchmarks/archive_scale.py --videos 20 --frames 300 --animals 3 --small-video-mb 0 --segment-frames 100 \
      --noise-sigma 20 --name archive_scale_multianimal_20x300_streamed
  python benchmarks/archive_scale.py --videos 20 --frames 600 --animals 3 --small-video-mb 0 --segment-frames 300 \
      --noise-sigma 20 --name archive_scale_multianimal_20x600_streamed

(Below planning's 1 MiB tail read a video is planned from all its bytes: in the 300-frame streamed run
planning alone reads every stored byte; `segment_bytes_read_over_stored` leaves planning out.)

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
from _common import random_multianimal_model, require_openfield, save

def requests(counts: dict, who: str) -> int:
    return sum(kind["requests"] for kind in counts[who].values())


def upload_clips(s3, tmp: str, family: str, render, videos: int) -> tuple[int, int]:
    """`videos` objects under videos/<family>/ from 8 distinct clips (`render(path, seed)`), each object its
    own ETag-keyed work; returns (video bytes stored, one clip's size)."""
    clips = []
    for seed in range(8):
        path = f"{tmp}/{family}-clip{seed}.mp4"
        render(path, seed)
        clips.append(open(path, "rb").read())
    stored = 0
    for i in range(videos):
        body = clips[i % len(clips)]
        s3.put_object(Bucket="bench", Key=f"videos/{family}/day{i % 10}/v{i:06d}.mp4", Body=body)
        stored += len(body)
    return stored, len(clips[0])


def archive_job(family: str, stored: int, args, counts_file: str) -> dict:
    """One archive job over videos/<family>/ with the model at s3://bench/<family>-model, through the driver's
    port of the proxy; its figures."""
    from posecluster.cluster.archive import ArchiveOptions, run_archive

    before = _storage.read_counts(counts_file)
    job_started = time.perf_counter()
    small = {} if args.small_video_mb is None else {"small_video_bytes": int(args.small_video_mb * (1 << 20))}
    report = run_archive([f"s3://bench/videos/{family}/"], ArchiveOptions(
        model=f"s3://bench/{family}-model", out=f"s3://bench/poses/{family}", workers=args.workers,
        segment_frames=args.segment_frames, progress=False, **small))
    total = time.perf_counter() - job_started
    counts = _storage.difference(_storage.read_counts(counts_file), before)
    assert not report.failed, [(v.uri, v.error) for v in report.failed[:3]]
    window = report.seconds - (report.first_segment_started or 0.0)
    segments = [max(v.segments_total, len(v.segments)) for v in report.videos]
    return {
        "first_table_after_ray_up_s": report.first_table_s,
        "job_total_s": total,
        "segments_per_video": sum(segments) / len(segments),
        "driver_requests": requests(counts, "driver"),
        "driver_requests_per_video": requests(counts, "driver") / args.videos,
        "worker_side_requests_per_video": requests(counts, "workers") / args.videos,
        "video_bytes_stored": stored,
        "video_bytes_read_over_stored": report.bytes_read / stored,
        # what the segments' reads alone fetched (planning reads at least a 1 MiB tail: a whole small video)
        "segment_bytes_read_over_stored": (report.bytes_read - report.planning_bytes) / stored,
        "video_bytes_sent_over_stored": sum(counts[who]["video"]["bytes_down"] for who in counts) / stored,
        "planning_bytes": report.planning_bytes,
        "manifest_bytes": report.manifest_bytes,
        "manifest_bytes_per_video": report.manifest_bytes / args.videos,
        "driver_peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "workers_busy_after_first_segment": report.busy_seconds / (report.workers * window) if window else 0.0,
        "frames_per_second": report.fps,
        "workers": report.workers,
    }


def upload_models(s3, args, openfield: str, tmp: str) -> dict:
    """The single-animal model at s3://bench/single-model (the openfield project's parts) and, with
    --animals, a multi-animal one at s3://bench/animals-model; both random ResNet-18s at the same scale."""
    from posecluster.config import PoseclusterConfig
    from posecluster.data.formats.dlc import read_project_config
    from posecluster.data.synthetic_multianimal import MultiAnimalScene
    from posecluster.model.artifact import to_bytes
    from posecluster.model.pose_model import PoseModel

    project = read_project_config(f"{openfield}/config.yaml")
    config = PoseclusterConfig(project=project).with_overrides(
        {"model": {"backbone": {"name": "resnet18", "weights": "none"}, "global_scale": args.global_scale},
         "infer": {"batch_size": 8}})
    state = PoseModel(config.model, len(project.bodyparts)).state_dict()
    s3.put_object(Bucket="bench", Key="single-model/model.pt", Body=to_bytes(
        {"config": config.to_yaml(), "bodyparts": list(project.bodyparts), "model": state}))
    models = {"single": f"resnet18 (random init), global_scale {args.global_scale}, batch 8, "
                        f"{len(project.bodyparts)} openfield parts"}
    if args.animals:
        # Written locally and put with boto3 as the other setup: the job's own storage clients stay unmade.
        models["animals"] = random_multianimal_model(f"{tmp}/animals-model", MultiAnimalScene(animals=args.animals),
                                                     args.global_scale)
        s3.upload_file(f"{tmp}/animals-model/model.pt", "bench", "animals-model/model.pt")
    return models


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--videos", type=int, default=1000)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--latency-ms", type=float, default=20)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--global-scale", type=float, default=0.5)
    parser.add_argument("--segment-frames", type=int, default=1000)
    parser.add_argument("--name", default=None)
    parser.add_argument("--animals", type=int, default=0,
                        help="also a multi-animal job (videos of this many animals) in the same run")
    parser.add_argument("--small-video-mb", type=float, default=None,
                        help="videos below this are fetched whole (default: the job's, 64); 0 streams every "
                             "video by range in segments")
    parser.add_argument("--noise-sigma", type=float, default=None,
                        help="pixel noise of the rendered clips (default: the scenes' own, 2); more noise, more "
                             "bytes a frame at the same inference cost")
    long = parser.add_argument_group("long-video mode (--long): recordings as facilities keep them, every container")
    long.add_argument("--long", action="store_true", help="run the long-video mode instead (benchmarks/_archive_long.py)")
    long.add_argument("--containers", nargs="*", choices=list(CONTAINERS), help="default: all")
    long.add_argument("--short", type=int, default=20, help="copies of the 10-minute recording")
    long.add_argument("--short-frames", type=int, default=18000)
    long.add_argument("--long-videos", dest="long_copies", type=int, default=2, help="copies of the 2-hour recording")
    long.add_argument("--long-frames", type=int, default=216000)
    long.add_argument("--render-dir", default=None, help="keep rendered recordings here between runs")
    args = parser.parse_args()
    if args.long:
        run_long(args)
        return
    name = args.name or (f"archive_scale_multianimal_{args.videos}x{args.frames}" if args.animals
                         else f"archive_scale_{args.videos}x{args.frames}")

    openfield = require_openfield()
    tmp = tempfile.mkdtemp(prefix="archive-scale-")
    counts_file = f"{tmp}/counts.json"
    storage_proc, ports = _storage.start(args.latency_ms / 1000, counts_file)
    creds = dict(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", AWS_DEFAULT_REGION="us-east-1")
    os.environ.update(creds, AWS_ENDPOINT_URL=f"http://127.0.0.1:{ports['moto']}")
    try:
        import boto3

        from posecluster.data import synthetic, synthetic_multianimal

        # Set up straight against moto (no latency, not counted).
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket="bench")
        models = upload_models(s3, args, openfield, tmp)
        stored, clip_bytes = {}, {}
        noise = {} if args.noise_sigma is None else {"noise_sigma": args.noise_sigma}
        stored["single"], clip_bytes["single"] = upload_clips(s3, tmp, "single", lambda path, seed: synthetic.render_video(
            path, synthetic.Scene(width=96, height=80, seed=seed, **noise), args.frames, gop=25), args.videos)
        if args.animals:  # the same size, length and keyframe interval
            stored["animals"], clip_bytes["animals"] = upload_clips(
                s3, tmp, "animals", lambda path, seed: synthetic_multianimal.render_video(path, (
                    synthetic_multianimal.MultiAnimalScene(width=96, height=80, animals=args.animals, seed=seed, **noise)),
                    args.frames, gop=25), args.videos)

        # Ray's processes reach storage through the workers' port of the proxy, the driver through its own.
        os.environ["AWS_ENDPOINT_URL"] = f"http://127.0.0.1:{ports['workers']}"
        import ray

        started = time.perf_counter()
        ray.init(num_cpus=args.workers, include_dashboard=False, logging_level="ERROR")
        ray_up = time.perf_counter() - started
        os.environ["AWS_ENDPOINT_URL"] = f"http://127.0.0.1:{ports['driver']}"
        jobs = {}
        for family in stored:  # one Ray for both: the second job finds it up
            jobs[family] = {**archive_job(family, stored[family], args, counts_file), "video_bytes": clip_bytes[family]}
            for key, value in jobs[family].items():
                print(f"{family:>8} {key:>36}: {value:.3f}" if isinstance(value, float) else
                      f"{family:>8} {key:>36}: {value}")
        setup = {"ray_up_s": ray_up, "videos": args.videos, "frames_per_video": args.frames, "latency_ms_per_request": args.latency_ms,
                 "segment_frames": args.segment_frames, "gop": 25, "small_video_mb": args.small_video_mb,
                 "noise_sigma": args.noise_sigma,
                 "note": "2-core machine shared with other engineers' test runs; figures are from one run; "
                         "driver_peak_rss_mb is the driver's peak up to the end of that job"}
        if not args.animals:
            figures = {**setup, **jobs["single"], "model": models["single"]}
        else:
            ratios = {key: jobs["animals"][key] / jobs["single"][key]
                      for key in ("video_bytes_read_over_stored", "segment_bytes_read_over_stored")}
            print(f"multi-animal over single-animal: {ratios}")
            figures = {**setup, "animals": args.animals, "models": models, "single_animal": jobs["single"],
                       "multi_animal": jobs["animals"], "multi_over_single": ratios}
        save(name, figures)
        ray.shutdown()
    finally:
        storage_proc.terminate()


if __name__ == "__main__":
    main()
