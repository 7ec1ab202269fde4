"""Probe + read cost per container: the VideoReader against the reader it replaced, in one run.

openfield's m3v1mp4.mp4 (2,330 frames, 640x480 H.264) is remuxed with PyAV (no re-encoding) into mp4, mov,
mkv, avi and ts in a temporary folder. For each container and each implementation this measures
- probe: the best of --repeat probes (demux, no decoding; the new one reads MP4/MOV rotation from the
  track header and decodes the first keyframe of an MKV, whose display matrix only a frame shows),
- read: the best of --repeat/3 reads of --frames frames starting at the keyframe nearest the middle that
  the implementation offers as a segment start (seek + decode + RGB conversion),
and prints new/old ratios. The baseline is posecluster/data/video.py at BASELINE_COMMIT, loaded from git.
Other engineers load the same CPU: compare the ratios, which are measured within one run.

    .venv/bin/python benchmarks/video_probe.py [--repeat 9] [--frames 120]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import types

import av
import numpy as np

from _common import ROOT, machine, require_openfield, save
from posecluster.data import video as new

BASELINE_COMMIT = "14f700c"  # the last commit before VideoReader
CONTAINERS = {"mp4": None, "mov": None, "mkv": None, "avi": "avi", "ts": "mpegts"}


def baseline_module() -> types.ModuleType:
    source = subprocess.run(["git", "show", f"{BASELINE_COMMIT}:posecluster/data/video.py"], cwd=ROOT,
                            capture_output=True, text=True, check=True).stdout
    module = types.ModuleType("video_baseline")
    sys.modules[module.__name__] = module  # dataclasses look their module up there
    exec(compile(source, "video_baseline.py", "exec"), module.__dict__)
    return module


def remux(source: str, path: str, fmt: str | None) -> str:
    with av.open(source) as src, av.open(path, mode="w", format=fmt) as dst:
        in_stream = src.streams.video[0]
        stream = dst.add_stream_from_template(in_stream)
        if fmt == "avi":
            stream.time_base = 1 / in_stream.average_rate  # one tick per frame, no placeholder chunks
        # AVI and TS carry H.264 as an Annex B byte stream, MP4 as length-prefixed NAL units.
        annexb = av.bitstream.BitStreamFilterContext("h264_mp4toannexb", in_stream) if fmt else None
        for packet in src.demux(in_stream):
            if packet.size:
                key = packet.is_keyframe
                for out in annexb.filter(packet) if annexb else [packet]:
                    out.is_keyframe = key  # the filter does not carry the flag over
                    out.stream = stream
                    dst.mux(out)
    return path


def interleaved(repeat: int, calls: dict) -> dict:
    """Best time of each call over `repeat` rounds, the calls alternating within a round so that the
    load other processes put on the CPU falls on both alike."""
    best, values = {name: float("inf") for name in calls}, {}
    for _ in range(repeat):
        for name, call in calls.items():
            began = time.perf_counter()
            values[name] = call()
            best[name] = min(best[name], time.perf_counter() - began)
    return {name: (best[name], values[name]) for name in calls}


def reader(module, info, frames: int):
    keyframes = np.asarray(info.keyframes)
    start = int(keyframes[np.argmin(np.abs(keyframes - info.frame_count // 2))])
    stop = min(start + frames, info.frame_count)

    def read():
        report = module.DecodeReport()
        return start, [index for index, _ in module.read_frames(info, start, stop, report)], report

    return read


def measure(modules: dict, path: str, repeat: int, frames: int) -> dict:
    probes = interleaved(repeat, {name: (lambda m=m: m.probe(path)) for name, m in modules.items()})
    reads = interleaved(max(1, repeat // 3), {name: reader(m, probes[name][1], frames) for name, m in modules.items()})
    out = {}
    for name in modules:
        info = probes[name][1]
        start, indices, report = reads[name][1]
        out[name] = {"probe_s": probes[name][0], "read_s": reads[name][0], "frames": info.frame_count,
                     "keyframes": len(info.keyframes), "read_start": start, "read_frames": len(indices),
                     "missing": len(report.missing)}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=9)
    parser.add_argument("--frames", type=int, default=120)
    args = parser.parse_args()
    video = f"{require_openfield()}/videos/m3v1mp4.mp4"
    old = baseline_module()
    rows = {}
    with tempfile.TemporaryDirectory() as folder:
        for suffix, fmt in CONTAINERS.items():
            path = remux(video, f"{folder}/m3v1.{suffix}", fmt)
            rows[suffix] = measure({"new": new, "old": old}, path, args.repeat, args.frames)
    print(f"{'container':>9} {'probe new':>10} {'probe old':>10} {'ratio':>6} {'read new':>9} {'read old':>9} "
          f"{'ratio':>6} {'probe+read':>10}  frames new/old  keyframes new/old  read frames new/old")
    for suffix, row in rows.items():
        n, o = row["new"], row["old"]
        row["probe_ratio"] = n["probe_s"] / o["probe_s"]
        row["read_ratio"] = n["read_s"] / o["read_s"]
        # What a segment costs a worker: probe the video, then read its frames.
        row["probe_plus_read_ratio"] = (n["probe_s"] + n["read_s"]) / (o["probe_s"] + o["read_s"])
        print(f"{suffix:>9} {n['probe_s'] * 1e3:9.1f}ms {o['probe_s'] * 1e3:9.1f}ms {row['probe_ratio']:6.2f} "
              f"{n['read_s'] * 1e3:8.1f}ms {o['read_s'] * 1e3:8.1f}ms {row['read_ratio']:6.2f} {row['probe_plus_read_ratio']:10.2f}  "
              f"{n['frames']}/{o['frames']}  {n['keyframes']}/{o['keyframes']}  {n['read_frames']}/{o['read_frames']}")
    print(f"load average during the run: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; avi reads decode from "
          "frame 0 (one piece: B-frames behind invented timestamps); the old ts read returned 0 frames")
    save("video_probe", {"machine": machine(), "args": vars(args), "baseline_commit": BASELINE_COMMIT,
                         "load_average": os.getloadavg()[0],
                         "note": "ratios are new/old measured in the same run",
                         "containers": rows})


if __name__ == "__main__":
    main()
