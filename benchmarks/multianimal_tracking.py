"""A trained multi-animal model tracking a rendered 2,000-frame video, in one process and sharded (issue 31).

The model is the demo's (posecluster.demo_multianimal: ResNet-18 from scratch on a rendered 3-animal maDLC
project, trained on CPU; its held-out RMSE and mAP are reported). The video is rendered from the same
kind of scene for `--frames` frames (animals crossing, touching, one leaving the frame) with its ground
truth. It is tracked twice through the CLI as a user runs it:

  posecluster analyze VIDEO --model RUN --out single                      (one process)
  posecluster infer VIDEO --model RUN --out sharded --workers 2 --segment-frames 100 --small-video-mb 0

and both tables are scored against the truth (tracking.metrics: identity switches per 1,000 frames, IDF1,
MOTA, frames with every animal present); the sharded table must equal the single-process one (same
identities, same rows, bit for bit).

  cd benchmarks && python multianimal_tracking.py --frames 2000 --epochs 30
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import asdict

import numpy as np

from _common import save
from posecluster.cli.main import main as cli
from posecluster.data.formats.madlc import read_tracks
from posecluster.data.synthetic_multianimal import MultiAnimalScene, render_video
from posecluster.demo_multianimal import run_multianimal_demo
from posecluster.model.multianimal_artifact import load_any
from posecluster.tracking.metrics import tracking_scores


def tracked(command: list[str]) -> float:
    began = time.perf_counter()
    if cli(command) != 0:
        raise SystemExit(f"failed: posecluster {' '.join(command)}")
    return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=2000)
    parser.add_argument("--segment-frames", type=int, default=100)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--labeled-frames", type=int, default=60)
    parser.add_argument("--width", type=int, default=128)
    parser.add_argument("--height", type=int, default=96)
    parser.add_argument("--name", default="multianimal_tracking")
    args = parser.parse_args()
    scene = MultiAnimalScene(width=args.width, height=args.height, animals=3, seed=0)
    body_length = scene.body_length * min(scene.width, scene.height)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        report = run_multianimal_demo(tmp, labeled_frames=args.labeled_frames, epochs=args.epochs, video_frames=2,
                                      progress=False, scene=scene)
        video = render_video(f"{tmp}/videos/arena.mp4", scene, args.frames, gop=args.segment_frames // 2)
        run = report.run_uri
        scorer = load_any(run).scorer
        seconds = {
            "single": tracked(["analyze", video.uri, "--model", run, "--out", f"{tmp}/single", "--quiet"]),
            "sharded": tracked(["infer", video.uri, "--model", run, "--out", f"{tmp}/sharded", "--workers",
                                str(args.workers), "--segment-frames", str(args.segment_frames),
                                "--small-video-mb", "0", "--quiet"]),
        }
        name = f"{tmp.lstrip('/')}/videos/arena{scorer}_el.h5"
        tables = {how: read_tracks(f"{tmp}/{how}/{name}") for how in ("single", "sharded")}
        figures = {}
        for how, tracks in tables.items():
            scores = tracking_scores(tracks.poses, video.truth.poses, threshold_px=0.5 * body_length)
            figures[how] = {**asdict(scores), "seconds": seconds[how], "frames_per_second": args.frames / seconds[how]}
            print(f"{how}: {scores.id_switches_per_1000_frames:.2f} identity switches per 1,000 frames, "
                  f"IDF1 {scores.idf1:.3f}, MOTA {scores.mota:.3f}, every animal present in "
                  f"{100 * scores.complete_frames_fraction:.1f}% of frames; {seconds[how]:.0f} s", flush=True)
        single, sharded = tables["single"], tables["sharded"]
        identical = bool(np.array_equal(single.poses, sharded.poses, equal_nan=True)
                         and np.array_equal(single.unique_poses, sharded.unique_poses, equal_nan=True)
                         and single.individuals == sharded.individuals)
        print(f"sharded table identical to the single-process one: {identical}")
    save(args.name, {
        "command": f"cd benchmarks && python multianimal_tracking.py --frames {args.frames} --epochs {args.epochs}",
        "model": report.lines()[:6], "test_error_px": report.test_error_px, "test_map": report.test_map,
        "video": f"rendered {args.width}x{args.height}, 3 animals, {args.frames} frames, keyframes every "
                 f"{args.segment_frames // 2}",
        "sharding": f"{args.workers} Ray workers, segments of {args.segment_frames} frames",
        "tracking": figures, "sharded_equals_single": identical, "seconds": time.perf_counter() - started,
    })
    if not identical:
        raise SystemExit("the sharded tracks differ from the single-process ones")


if __name__ == "__main__":
    main()
