"""archive_scale.py's long-video mode: recordings as facilities keep them, in every container.

For each container, two jobs against moto behind the counting proxy (_storage.py), each in a driver process
of its own (so that its peak RSS is its own): `--short` copies of a 10-minute recording and `--long` copies
of a 2-hour one, 64x48 noise encoded near-losslessly (about 4-5 kB per frame: index sizes and media bytes in
a real proportion; tests/data/video_matrix.render_long). Every video is above --small-video-mb, so each is
planned from its container's index (or read in one pass where there is none) and streamed by range.
Measured per job: video bytes the storage sent back / video bytes stored (as a storage bill counts them,
at the proxy); planning bytes / video bytes; requests to the videos per video against 2 + segments; the
driver's peak RSS; the first table after Ray is up; workers busy once started.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import ROOT, save

import _storage

CONTAINERS = {  # name -> (suffix, render_long options)
    "mp4-moov-first": ("mp4", {}),
    "mp4-moov-last": ("mp4", {"faststart": False}),
    "mkv-cues": ("mkv", {}),
    "mkv-no-cues": ("mkv", {"seekable": False}),
    "ts": ("ts", {"fmt": "mpegts"}),
    "avi": ("avi", {"bframes": 0}),
}
GOALS = {"bytes_read_over_stored": 1.05, "planning_bytes_over_video": 0.01, "first_table_after_ray_up_s": 30.0,
         "workers_busy_after_first_segment": 0.80, "driver_rss_long_over_short": 1.10}


def render(folder: Path, container: str, frames: int) -> Path:
    sys.path.insert(0, str(ROOT))
    from tests.data.video_matrix import render_long

    suffix, options = CONTAINERS[container]
    path = folder / f"{container}-{frames}.{suffix}"
    if not path.exists():
        began = time.perf_counter()
        render_long(str(path), frames, **options)
        print(f"rendered {path.name}: {path.stat().st_size / 1e6:.1f} MB in {time.perf_counter() - began:.0f} s", flush=True)
    return path


def child(spec: dict) -> None:
    """One job in this process (the driver): prints its figures as one JSON line."""
    import ray

    from posecluster.cluster.archive import ArchiveOptions, run_archive  # before Ray starts, as the CLI does

    os.environ["AWS_ENDPOINT_URL"] = f"http://127.0.0.1:{spec['ports']['workers']}"  # Ray's processes
    began = time.perf_counter()
    ray.init(num_cpus=spec["workers"], include_dashboard=False, logging_level="ERROR")
    ray_up, ray_up_at = time.perf_counter() - began, time.time()
    os.environ["AWS_ENDPOINT_URL"] = f"http://127.0.0.1:{spec['ports']['driver']}"

    before = _storage.read_counts(spec["counts"])
    report = run_archive([spec["input"]], ArchiveOptions(
        model="s3://bench/model", out=f"s3://bench/{spec['out']}", workers=spec["workers"],
        segment_frames=spec["segment_frames"], progress=False, small_video_bytes=0,
        infer_overrides={"batch_size": 64}))
    counts = _storage.difference(_storage.read_counts(spec["counts"]), before)
    failed = [(v.uri, v.error) for v in report.failed]
    window = report.seconds - (report.first_segment_started or 0.0)
    video_requests = sum(counts[who]["video"]["requests"] for who in counts)
    segments = sum(max(v.segments_total, len(v.segments)) for v in report.videos)
    print("RESULT " + json.dumps({
        "videos": len(report.videos), "failed": failed, "status": report.status,
        "frames": sum(v.frames for v in report.videos), "segments": segments,
        "ray_up_s": ray_up, "job_s": report.seconds,
        # from the moment Ray is up: listing, pinning the model and planning count too
        "first_table_after_ray_up_s": (report.started + report.first_table_s - ray_up_at
                                       if report.first_table_s is not None else None),
        "workers_busy_after_first_segment": report.busy_seconds / (report.workers * window) if window else 0.0,
        "video_bytes_sent": sum(counts[who]["video"]["bytes_down"] for who in counts),
        "other_bytes_sent": sum(counts[who]["other"]["bytes_down"] for who in counts),
        "video_requests": video_requests, "driver_requests": sum(c["requests"] for c in counts["driver"].values()),
        "planning_bytes": report.planning_bytes, "bytes_read_by_workers": report.bytes_read,
        "driver_peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "frames_per_second": report.fps,
        "first_segment_started_s": report.first_segment_started,
        "job_started_after_ray_up_s": report.started - ray_up_at,
        "timeline": [{name: round(at - report.started, 1) if at else None for name, at in
                      (("planned", v.planned_at), ("first_segment", v.first_segment_at), ("finished", v.finished_at))}
                     for v in report.videos],
    }), flush=True)
    ray.shutdown()


def run_job(spec: dict) -> dict:
    done = subprocess.run([sys.executable, __file__, json.dumps(spec)], capture_output=True, text=True,
                          cwd=ROOT / "benchmarks", env={**os.environ, "PYTHONPATH": str(ROOT)})
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode or not lines:
        raise RuntimeError(f"job failed:\n{done.stdout[-3000:]}\n{done.stderr[-5000:]}")
    return json.loads(lines[-1][len("RESULT "):])


def upload_model(s3) -> None:
    import torch

    from posecluster.config import PoseclusterConfig, ProjectConfig
    from posecluster.model.artifact import to_bytes
    from posecluster.model.pose_model import PoseModel

    torch.manual_seed(0)
    config = PoseclusterConfig(project=ProjectConfig(task="bench", bodyparts=["a", "b", "c", "d"])).with_overrides(
        {"model": {"backbone": {"name": "resnet18", "weights": "none"}, "global_scale": 0.5}})
    state = PoseModel(config.model, 4).state_dict()
    s3.put_object(Bucket="bench", Key="model/model.pt",
                  Body=to_bytes({"config": config.to_yaml(), "bodyparts": ["a", "b", "c", "d"], "model": state}))


def measure_container(container: str, args, folder: Path) -> dict:
    import boto3

    sets = {"short": (args.short, args.short_frames), "long": (args.long_copies, args.long_frames)}
    files = {name: render(folder, container, frames) for name, (_, frames) in sets.items()}
    counts_file = str(folder / f"counts-{container}.json")
    process, ports = _storage.start(args.latency_ms / 1000, counts_file)
    creds = dict(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", AWS_DEFAULT_REGION="us-east-1")
    os.environ.update(creds)
    try:
        s3 = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{ports['moto']}")
        s3.create_bucket(Bucket="bench")
        upload_model(s3)
        result = {"container": container}
        for name, (copies, frames) in sets.items():
            stored = 0
            for i in range(copies):
                s3.upload_file(str(files[name]), "bench", f"videos/{name}/v{i:03d}.{files[name].suffix[1:]}")
                stored += files[name].stat().st_size
            figures = run_job({"ports": ports, "counts": counts_file, "workers": args.workers,
                               "segment_frames": args.segment_frames, "input": f"s3://bench/videos/{name}/",
                               "out": f"poses-{name}"})
            figures.update(copies=copies, frames_per_video=frames, video_bytes_stored=stored,
                           bytes_read_over_stored=figures["video_bytes_sent"] / stored,
                           planning_bytes_over_video=figures["planning_bytes"] / stored,
                           video_requests_per_video=figures["video_requests"] / copies,
                           segments_per_video=figures["segments"] / copies)
            print(f"{container} {name}: " + ", ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}"
                                                       for k, v in figures.items()), flush=True)
            result[name] = figures
            s3.delete_objects(Bucket="bench", Delete={"Objects": [{"Key": f"videos/{name}/v{i:03d}.{files[name].suffix[1:]}"}
                                                                  for i in range(copies)]})
        result["goals"] = goals(result)
        return result
    finally:
        process.terminate()


def goals(result: dict) -> dict:
    out = {}
    for name in ("short", "long"):
        figures = result[name]
        out[f"{name}: bytes read / stored <= {GOALS['bytes_read_over_stored']}"] = figures["bytes_read_over_stored"] <= GOALS["bytes_read_over_stored"]
        out[f"{name}: planning bytes <= 1% of the video"] = figures["planning_bytes_over_video"] <= GOALS["planning_bytes_over_video"]
        out[f"{name}: video requests per video <= 2 + segments"] = (
            figures["video_requests_per_video"] <= 2 + figures["segments_per_video"])
        out[f"{name}: first table <= 30 s after Ray is up"] = (figures["first_table_after_ray_up_s"] or 1e9) <= GOALS["first_table_after_ray_up_s"]
        out[f"{name}: workers busy >= 80% once started"] = figures["workers_busy_after_first_segment"] >= GOALS["workers_busy_after_first_segment"]
        out[f"{name}: no video failed"] = not figures["failed"]
    ratio = result["long"]["driver_peak_rss_mb"] / result["short"]["driver_peak_rss_mb"]
    result["driver_rss_long_over_short"] = ratio
    out["driver peak RSS, 2-hour / 10-minute videos <= 1.1"] = ratio <= GOALS["driver_rss_long_over_short"]
    return {goal: "met" if ok else "missed" for goal, ok in out.items()}


def run_long(args) -> None:
    folder = Path(args.render_dir or tempfile.mkdtemp(prefix="archive-long-"))
    folder.mkdir(parents=True, exist_ok=True)
    containers = args.containers or list(CONTAINERS)
    results = []
    for container in containers:
        results.append(measure_container(container, args, folder))
        save(args.name or "archive_scale_long", {
            "latency_ms_per_request": args.latency_ms, "workers": args.workers, "segment_frames": args.segment_frames,
            "load_average": os.getloadavg(), "containers": results,
            "command": "python benchmarks/archive_scale.py --long " + " ".join(sys.argv[2:]),
        })


if __name__ == "__main__":
    child(json.loads(sys.argv[1]))
