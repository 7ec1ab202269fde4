"""Planning a long video: bytes read and time, the VideoReader's plan (the container's index, range reads)
against the reader of BASELINE_COMMIT (a demux of every packet), in one run.

Each container holds one long recording at a camera's bitrate in tiny frames (64x48 noise encoded
near-losslessly, about 4-5 kB per frame; tests/data/video_matrix.render_long): MP4 with `moov` first and
last, MOV, Matroska with and without cues, AVI (idx1, and the same file indexed the OpenDML way),
MPEG-TS. For each it measures
- plan: `VideoReader.plan()` (what the index proves: "frames", "spans" or "sequential"), bytes read
  through the file object the reader reads from (storage.retry.RetryingReader.bytes_read) and time;
- probe: `probe()` (every frame's facts: the plan where it has them, else a demux), bytes and time;
- old probe: BASELINE_COMMIT's `probe()` (demuxes every packet), bytes and time;
best of --repeat each, interleaved so that other processes' load falls on all alike. Ratios are measured
within one run; the machine is shared, so read the ratios, not the seconds.

    PYTHONPATH=$PWD .venv/bin/python benchmarks/video_probe.py [--frames 18000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import types

from _common import ROOT, save

sys.path.insert(0, str(ROOT))
from posecluster.data import video as new  # noqa: E402
from posecluster.storage.retry import open_retrying  # noqa: E402
from tests.data.video_matrix import opendml, render_long  # noqa: E402

BASELINE_COMMIT = "a9add49"  # the reader before plans from the container's index
CONTAINERS = {  # name -> (file name, render options)
    "mp4 moov first": ("first.mp4", {}),
    "mp4 moov last": ("last.mp4", {"faststart": False}),
    "mov": ("clip.mov", {}),
    "mkv cues": ("cues.mkv", {}),
    "mkv no cues": ("nocues.mkv", {"seekable": False}),
    "avi idx1": ("clip.avi", {"bframes": 0}),
    "avi opendml": ("odml.avi", {"bframes": 0}),  # the idx1 file re-indexed the OpenDML way
    "mpeg-ts": ("clip.ts", {"fmt": "mpegts"}),
}


def baseline_module() -> types.ModuleType:
    source = subprocess.run(["git", "show", f"{BASELINE_COMMIT}:posecluster/data/video.py"], cwd=ROOT,
                            capture_output=True, text=True, check=True).stdout
    module = types.ModuleType("video_baseline")
    sys.modules[module.__name__] = module  # dataclasses look their module up there
    exec(compile(source, "video_baseline.py", "exec"), module.__dict__)
    return module


def counted(call):
    """call(source) -> result, with the bytes the source handed over and the time it took."""
    opened = []

    def source():
        opened.append(open_retrying(path_of[0]))
        return opened[-1]

    began = time.perf_counter()
    result = call(source)
    return result, sum(h.bytes_read for h in opened), time.perf_counter() - began


path_of = [""]


def measure(path: str, old, repeat: int) -> dict:
    path_of[0] = path
    calls = {"plan": lambda s: new.VideoReader(path, s).plan(),
             "probe": lambda s: new.probe(path, source=s),
             "old probe": lambda s: old.probe(path, source=s)}
    best: dict = {}
    for _ in range(repeat):
        for name, call in calls.items():
            result, read, seconds = counted(call)
            if name not in best or seconds < best[name]["seconds"]:
                best[name] = {"seconds": seconds, "bytes": read, "kind": getattr(result, "plan", "frames"),
                              "frame_count": result.frame_count}
    size = os.path.getsize(path)
    for row in best.values():
        row["bytes_over_video"] = row["bytes"] / size
    return {"video_bytes": size, **best,
            "plan_time_over_old_probe": best["plan"]["seconds"] / best["old probe"]["seconds"],
            "probe_time_over_old_probe": best["probe"]["seconds"] / best["old probe"]["seconds"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=18000, help="frames per video (18000: 10 min at 30 fps)")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    old = baseline_module()
    rows = {}
    with tempfile.TemporaryDirectory() as folder:
        for name, (file, options) in CONTAINERS.items():
            if name == "avi opendml":
                path = opendml(f"{folder}/clip.avi", f"{folder}/{file}")
            else:
                path = render_long(f"{folder}/{file}", args.frames, **options)
            rows[name] = measure(path, old, args.repeat)
            r = rows[name]
            print(f"{name:>15} {r['video_bytes'] / 1e6:7.1f} MB  plan {r['plan']['kind']:>10} "
                  f"{r['plan']['bytes'] / 1e3:8.1f} kB ({100 * r['plan']['bytes_over_video']:5.2f}%) "
                  f"{r['plan']['seconds'] * 1e3:7.1f} ms | probe {r['probe']['bytes'] / 1e3:8.1f} kB "
                  f"{r['probe']['seconds'] * 1e3:7.1f} ms | old probe {r['old probe']['bytes'] / 1e3:8.1f} kB "
                  f"{r['old probe']['seconds'] * 1e3:7.1f} ms | plan/old time {r['plan_time_over_old_probe']:.3f}",
                  flush=True)
    load = os.getloadavg()[0]
    print(f"load average during the run: {load:.1f} on {os.cpu_count()} cores")
    save("video_probe", {"args": vars(args), "baseline_commit": BASELINE_COMMIT, "load_average": load,
                         "uptime": subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip(),
                         "note": "bytes counted through the reader's file object (RetryingReader.bytes_read); "
                                 "times are best of --repeat, ratios within one run",
                         "containers": rows})


if __name__ == "__main__":
    main()
