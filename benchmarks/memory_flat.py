"""Peak memory does not grow with video length: a video 10x longer than another, analyzed in fresh processes.

Each measurement runs in its own subprocess (so peak RSS belongs to that run alone), through the same
streaming path an archive worker uses: frames decoded into a bounded queue, poses written as they come.

  python benchmarks/memory_flat.py --frames 200 --factor 10 --size 320 240
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile

from _common import save


def measure(video: str, out: str, backbone: str, scale: float) -> dict:
    """Runs inside the subprocess."""
    from posecluster.config import PoseclusterConfig
    from posecluster.data.synthetic import BODYPARTS
    from posecluster.infer.analyze import analyze_video
    from posecluster.infer.predictor import Predictor
    from posecluster.model.pose_model import PoseModel
    from posecluster.train.checkpoint import TrainedModel

    config = PoseclusterConfig().with_overrides(
        {"model": {"backbone": {"name": backbone, "weights": "none"}, "global_scale": scale}, "infer": {"batch_size": 8}})
    state = PoseModel(config.model, len(BODYPARTS)).state_dict()
    predictor = Predictor(TrainedModel(config, BODYPARTS, state, identity="bench"))
    result = analyze_video(predictor, video, out, formats=("csv", "parquet"), progress=False)
    return {"frames": result.frames, "fps": result.fps,
            "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--factor", type=int, default=10)
    parser.add_argument("--backbone", default="resnet18")
    parser.add_argument("--global-scale", type=float, default=0.5)
    parser.add_argument("--size", type=int, nargs=2, default=[320, 240], metavar=("W", "H"))
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.child[0], args.child[1], args.backbone, args.global_scale)))
        return

    from posecluster.data import synthetic

    with tempfile.TemporaryDirectory() as tmp:
        runs = {}
        for label, frames in (("short", args.frames), ("long", args.frames * args.factor)):
            video = f"{tmp}/{label}.mp4"
            synthetic.render_video(video, synthetic.Scene(width=args.size[0], height=args.size[1], seed=1, noise_sigma=3), frames, gop=100)
            child = subprocess.run(
                [sys.executable, __file__, "--backbone", args.backbone, "--global-scale", str(args.global_scale),
                 "--child", video, f"{tmp}/out-{label}"],
                capture_output=True, text=True, check=True,
            )
            runs[label] = json.loads(child.stdout.strip().splitlines()[-1])
            print(f"{label:>6}: {runs[label]['frames']} frames, peak RSS {runs[label]['peak_rss_mib']:.0f} MiB, "
                  f"{runs[label]['fps']:.1f} frames/s")
    ratio = runs["long"]["peak_rss_mib"] / runs["short"]["peak_rss_mib"]
    print(f"peak RSS long/short: {ratio:.3f} for {args.factor}x the frames (goal <= 1.1)")
    save("memory_flat", {
        "videos": f"rendered {args.size[0]}x{args.size[1]} H.264, {args.frames} and {args.frames * args.factor} frames",
        "model": f"{args.backbone} (random init), global_scale {args.global_scale}, batch 8; h5+csv+parquet outputs",
        "short": runs["short"], "long": runs["long"], "peak_rss_long_over_short": ratio,
    })


if __name__ == "__main__":
    main()
