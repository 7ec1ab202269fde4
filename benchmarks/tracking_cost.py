"""Multi-animal tracking: its cost per frame at 3 animals, its accuracy on a rendered scene, sharded vs
single-process, and peak memory vs video length.

The scene (posecluster/tracking/scenes.py): 3 animals, two pacing past each other touching, one running
a figure of eight out of the frame and back; detections with 1.5 px noise, 5% parts missing, 3% animals
missed, 3% of frames with a false positive, in shuffled order. No network: this is the cost of linking,
joining and stitching alone, to set against the network's time per frame.

  python benchmarks/tracking_cost.py --frames 2000 --segment 100 --workers 2 --factor 10
"""

from __future__ import annotations

import argparse
import gc
import json
import multiprocessing
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from _common import RESULTS, save


def timed_single(detections, config, repeats: int) -> dict:
    from posecluster.tracking import segment_poses, stitch_segments, track_segment

    link, stitch_time, tracks = [], [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        segment = track_segment(detections, 0, len(detections), config)
        t1 = time.perf_counter()
        (individuals,) = stitch_segments([segment], 3, config)
        tracks = segment_poses(segment, individuals, 3)
        t2 = time.perf_counter()
        link.append(t1 - t0)
        stitch_time.append(t2 - t1)
    frames = len(detections)
    return {"tracks": tracks, "tracklets": len(segment.tracklets),
            "link_ms_per_frame": 1e3 * float(np.median(link)) / frames,
            "join_stitch_render_ms_per_frame": 1e3 * float(np.median(stitch_time)) / frames,
            "total_ms_per_frame": 1e3 * float(np.median(np.add(link, stitch_time))) / frames}


def scores(tracks, truth) -> dict:
    from posecluster.tracking.metrics import tracking_scores

    s = tracking_scores(tracks, truth, threshold_px=10).to_dict()
    return {k: s[k] for k in ("id_switches", "id_switches_per_1000_frames", "mota", "idf1", "misses",
                              "false_positives", "complete_frames_fraction", "all_individuals_fraction")}


def memory_child(frames: int, segment_frames: int, out_dir: str) -> dict:
    """A cluster's path in one process: each segment's detections made, tracked and stored as bytes on
    disk; the summaries joined and stitched; each segment's rows rendered and dropped (a writer would
    append them to the table). Never the whole video's detections or tracks at once."""
    from posecluster.tracking import SegmentTracklets, scenes, segment_poses, stitch_segments, track_segment

    scene = scenes.SceneConfig(frames=frames, seed=0)
    truth = scenes.ground_truth(scene)  # 240 bytes a frame: the renderer's, not the tracker's memory
    tracemalloc.start()
    bounds = list(range(0, frames, segment_frames)) + [frames]
    paths = []
    for a, b in zip(bounds, bounds[1:]):
        segment = track_segment(scenes.detections(truth[a:b], scene, first_frame=a), a, b)
        path = Path(out_dir) / f"segment-{a:08d}.npz"
        path.write_bytes(segment.to_bytes())
        paths.append(path)
    del segment
    _, segments_peak = tracemalloc.get_traced_memory()
    tracemalloc.reset_peak()
    summaries = []
    for path in paths:  # the join reads only the summaries
        segment = SegmentTracklets.from_bytes(path.read_bytes())
        segment.counts = segment.labels = segment.poses = None
        summaries.append(segment)
    individuals = stitch_segments(summaries, 3)
    del summaries
    gc.collect()  # the flow graph's cycles
    current, stitch_peak = tracemalloc.get_traced_memory()
    tracemalloc.reset_peak()
    rows = 0
    for path, individual in zip(paths, individuals):
        rows += len(segment_poses(SegmentTracklets.from_bytes(path.read_bytes()), individual, 3))
    _, render_peak = tracemalloc.get_traced_memory()
    return {"frames": rows, "held_after_stitch_mib": current / 2**20, "segments_python_peak_mib": segments_peak / 2**20,
            "join_stitch_python_peak_mib": stitch_peak / 2**20, "render_python_peak_mib": render_peak / 2**20,
            "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=2000)
    parser.add_argument("--segment", type=int, default=100)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--factor", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(memory_child(int(args.child[0]), int(args.child[1]), args.child[2])))
        return

    from posecluster.tracking import TrackingConfig, scenes, track_in_segments

    config = TrackingConfig()
    result = {"command": "python benchmarks/tracking_cost.py " + " ".join(sys.argv[1:]),
              "scene": f"rendered 3 animals, {args.frames} frames (posecluster.tracking.scenes, seed 0)",
              "config": config.model_dump()}
    for label, identity in (("motion", False), ("identity_head", True)):
        scene = scenes.SceneConfig(frames=args.frames, seed=0, identity=identity)
        truth = scenes.ground_truth(scene)
        detections = scenes.detections(truth, scene)
        single = timed_single(detections, config, args.repeats)
        cuts = list(range(args.segment, args.frames, args.segment))
        t0 = time.perf_counter()
        with ProcessPoolExecutor(args.workers, mp_context=multiprocessing.get_context("forkserver")) as pool:
            sharded = track_in_segments(detections, cuts, 3, config, map_fn=pool.map)
        sharded_s = time.perf_counter() - t0
        tracks = single.pop("tracks")
        result[label] = {
            **single, **scores(tracks, truth),
            "sharded_identical": bool(np.array_equal(tracks, sharded, equal_nan=True)),
            "sharded": f"{len(cuts) + 1} segments of {args.segment} frames on {args.workers} worker processes",
            "sharded_wall_s_incl_process_start": sharded_s,
        }
        r = result[label]
        print(f"{label:>13}: link {r['link_ms_per_frame']:.3f} + join/stitch/render "
              f"{r['join_stitch_render_ms_per_frame']:.3f} = {r['total_ms_per_frame']:.3f} ms/frame "
              f"({r['tracklets']} tracklets); switches {r['id_switches']} "
              f"({r['id_switches_per_1000_frames']:.2f}/1000 frames), MOTA {r['mota']:.3f}, IDF1 {r['idf1']:.3f}, "
              f"complete frames {r['complete_frames_fraction']:.3f}; sharded identical: {r['sharded_identical']}")
    network = json.loads((RESULTS / "inference_speed_resnet50_b1_cpu.json").read_text())
    network_ms = 1e3 / network["end_to_end_fps"]
    result["network_ms_per_frame_single_animal_resnet50_cpu"] = network_ms
    result["tracking_over_network"] = result["motion"]["total_ms_per_frame"] / network_ms
    print(f"tracking / network time per frame: {result['tracking_over_network']:.5f} "
          f"(network: ResNet-50 end to end on CPU, {network_ms:.0f} ms/frame, results/inference_speed_resnet50_b1_cpu.json)")

    runs = {}
    with tempfile.TemporaryDirectory() as tmp:
        for label, frames in (("short", args.frames), ("long", args.frames * args.factor)):
            Path(tmp, label).mkdir()
            child = subprocess.run([sys.executable, __file__, "--child", str(frames), str(args.segment), f"{tmp}/{label}"],
                                   capture_output=True, text=True, check=True)
            runs[label] = json.loads(child.stdout.strip().splitlines()[-1])
            r = runs[label]
            print(f"{label:>6}: {r['frames']} frames in {args.segment}-frame segments: python peak while tracking "
                  f"segments {r['segments_python_peak_mib']:.2f} MiB, joining+stitching {r['join_stitch_python_peak_mib']:.2f} MiB, "
                  f"rendering rows {r['render_python_peak_mib']:.2f} MiB; peak RSS {r['peak_rss_mib']:.0f} MiB")
    ratios = {f"{stage}_long_over_short": runs["long"][f"{stage}_python_peak_mib"] / runs["short"][f"{stage}_python_peak_mib"]
              for stage in ("segments", "join_stitch", "render")}
    result["memory"] = {**runs, **ratios, "peak_rss_long_over_short": runs["long"]["peak_rss_mib"] / runs["short"]["peak_rss_mib"]}
    print(f"long/short for {args.factor}x the frames: " + ", ".join(f"{k} {v:.3f}" for k, v in ratios.items())
          + f", peak RSS {result['memory']['peak_rss_long_over_short']:.3f}")
    save("tracking_cost", result)


if __name__ == "__main__":
    main()
