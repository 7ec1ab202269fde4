"""Peak memory does not grow with video length: a video 10x longer than another, analyzed in fresh processes.

Each measurement runs in its own subprocess (so peak RSS belongs to that run alone), through the same
streaming path an archive worker uses: frames decoded into a bounded queue, poses written as they come.

  python benchmarks/memory_flat.py --frames 200 --factor 10 --size 320 240

With `--animals N`, a multi-animal model (random ResNet-18, the rendered maDLC project's 4 parts, skeleton
graph and a unique part) on rendered videos of N look-alike animals, analyzed as `posecluster analyze` does
(infer.multianimal_analyze: detections predicted and linked into tracklets in pieces of
infer.multianimal_piece_frames frames, each added to `<base>_tracklets.npz` as it is done, stitched
into the individuals, the tracked `_el.h5` + `_el.csv` and `_meta.json` written;
results/memory_flat_multianimal.json). A random network's part-affinity fields are near 0, so links are
accepted at any affinity (min_affinity -1): assembly then finds 1-3 animals per frame from noise peaks,
which jump from frame to frame (many short tracklets: a harder case for stitching than real animals; at
320x240 they jump too far to be linked at all, so 160x120 is used). The detections, tracklets and
individuals found are in the output, and the Python peak of stitching (tracking.stitch: a min-cost flow
solved in windows of infer.tracking.stitch_window_frames, 1000), measured again after the run's peak was
taken. The video is predicted in pieces of infer.multianimal_piece_frames (1000): a long video must be
several windows and pieces long to show that neither grows (--frames 3000 --factor 10).
OMP_NUM_THREADS=1: on a 2-core machine shared with other jobs, two torch threads ran the batch-1 network
10x slower.

  OMP_NUM_THREADS=1 python benchmarks/memory_flat.py --animals 3 --frames 300 --factor 10 --size 160 120
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import tracemalloc

from _common import random_multianimal_model, save


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


def measure_animals(video: str, out: str, model: str) -> dict:
    """Runs inside the subprocess: the model loaded as analyze loads it, the video analyzed as it does.
    Then, its peak taken, the stitching of the stored tracklets again under tracemalloc (the joined
    summaries it reads are held before it starts: ~1 kB a tracklet)."""
    from posecluster import storage
    from posecluster.infer.ensemble import load_predictor
    from posecluster.infer.multianimal_analyze import analyze_animals_video
    from posecluster.infer.multianimal_store import read_pieces
    from posecluster.tracking import join_segments, stitch

    predictor = load_predictor(model)
    result = analyze_animals_video(predictor, video, out, formats=("csv",), progress=False)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    base = result.outputs["h5"][: -len(".h5")]
    meta = json.loads(storage.read_bytes(f"{base}_meta.json"))
    written = [result.outputs["h5"], result.outputs["csv"], meta["tracklets_file"]["uri"], f"{base}_meta.json"]
    pieces = [piece.segment.tracklets for piece in read_pieces([meta["tracklets_file"]["uri"]], summary_only=True)]
    tracklets = join_segments(pieces, predictor.tracking).tracklets
    tracemalloc.start()
    stitch(tracklets, len(predictor.individuals), predictor.tracking)
    stitch_peak = tracemalloc.get_traced_memory()[1] / 2**20
    return {"frames": result.frames, "fps": result.fps, "peak_rss_mib": peak,
            "tracking": meta["animals"]["tracking"], "stitch_python_peak_mib": stitch_peak,
            "bytes_written": {storage.basename(uri): storage.identity(uri).size for uri in written}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--factor", type=int, default=10)
    parser.add_argument("--backbone", default="resnet18")
    parser.add_argument("--global-scale", type=float, default=0.5)
    parser.add_argument("--size", type=int, nargs=2, default=[320, 240], metavar=("W", "H"))
    parser.add_argument("--animals", type=int, default=0, help="a multi-animal model on videos of this many animals")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        measured = (measure_animals(*args.child, args.model) if args.model else
                    measure(args.child[0], args.child[1], args.backbone, args.global_scale))
        print(json.dumps(measured))
        return

    from posecluster.data import synthetic, synthetic_multianimal

    with tempfile.TemporaryDirectory() as tmp:
        child_args, described = ["--backbone", args.backbone, "--global-scale", str(args.global_scale)], {}
        if args.animals:
            scene = synthetic_multianimal.MultiAnimalScene(width=args.size[0], height=args.size[1],
                                                           animals=args.animals, seed=1, noise_sigma=3)
            described = random_multianimal_model(f"{tmp}/model", scene, args.global_scale)
            child_args = ["--model", f"{tmp}/model"]
        runs = {}
        for label, frames in (("short", args.frames), ("long", args.frames * args.factor)):
            video = f"{tmp}/{label}.mp4"
            if args.animals:
                synthetic_multianimal.render_video(video, scene, frames, gop=100)
            else:
                synthetic.render_video(video, synthetic.Scene(width=args.size[0], height=args.size[1], seed=1,
                                                              noise_sigma=3), frames, gop=100)
            child = subprocess.run([sys.executable, __file__, *child_args, "--child", video, f"{tmp}/out-{label}"],
                                   capture_output=True, text=True, check=True)
            runs[label] = json.loads(child.stdout.strip().splitlines()[-1])
            print(f"{label:>6}: {runs[label]['frames']} frames, peak RSS {runs[label]['peak_rss_mib']:.0f} MiB, "
                  f"{runs[label]['fps']:.1f} frames/s" + (f"; stitching's Python peak {runs[label]['stitch_python_peak_mib']:.1f} "
                                                       f"MiB; tracking {runs[label]['tracking']}" if args.animals else ""))
    ratio = runs["long"]["peak_rss_mib"] / runs["short"]["peak_rss_mib"]
    print(f"peak RSS long/short: {ratio:.3f} for {args.factor}x the frames (goal <= 1.1)")
    videos = f"rendered {args.size[0]}x{args.size[1]} H.264, {args.frames} and {args.frames * args.factor} frames"
    if args.animals:
        save("memory_flat_multianimal", {
            "videos": f"{videos}, {args.animals} look-alike animals crossing (data.synthetic_multianimal)",
            "model": {**described, "batch": 1}, "outputs": "tracklets .npz, tracked _el.h5 + _el.csv, _meta.json",
            "detections": "random network: noise peaks, links accepted at any affinity; see each run's tracking",
            "short": runs["short"], "long": runs["long"], "peak_rss_long_over_short": ratio,
            "stitch_python_peak_long_over_short": (runs["long"]["stitch_python_peak_mib"]
                                                   / runs["short"]["stitch_python_peak_mib"]),
        })
        return
    save("memory_flat", {
        "videos": videos,
        "model": f"{args.backbone} (random init), global_scale {args.global_scale}, batch 8; h5+csv+parquet outputs",
        "short": runs["short"], "long": runs["long"], "peak_rss_long_over_short": ratio,
    })


if __name__ == "__main__":
    main()
