"""The `<video><scorer>_meta.pickle` that DeepLabCut writes beside each analysed video.

DeepLabCut's own tools need it next to a pose table: create_labeled_video reads the cropping from it
before drawing a single frame. It is written here as plain data only (dicts, lists, strings, numbers),
so the pickle calls no code when DeepLabCut loads it; posecluster never reads one back.
"""

from __future__ import annotations

import pickle

from posecluster import storage


def video_metadata(scorer: str, fps: float, width: int, height: int, frames: int, individuals: list[str],
                   bodyparts: list[str], unique_bodyparts: list[str], iteration: int = 0,
                   training_fraction: float = 0.95) -> dict:
    """The keys DeepLabCut 3.0's analyze_videos writes (no crop: the whole frame was analysed)."""
    return {"data": {
        "start": 0.0, "stop": 0.0, "run_duration": 0.0,
        "Scorer": scorer,
        "fps": float(fps),
        "frame_dimensions": (int(width), int(height)),
        "nframes": int(frames),
        "iteration (active-learning)": int(iteration),
        "training set fraction": float(training_fraction),
        "cropping": False,
        "cropping_parameters": [0, int(width), 0, int(height)],
        "individuals": list(individuals),
        "bodyparts": list(bodyparts),
        "unique_bodyparts": list(unique_bodyparts),
    }}


def write_video_metadata(uri: str, metadata: dict) -> None:
    """Write `metadata` (from video_metadata) as DeepLabCut's _meta.pickle, atomically."""
    storage.atomic_write_bytes(uri, pickle.dumps(metadata, protocol=4))


def metadata_uri(table_uri: str) -> str:
    """Where DeepLabCut looks for a pose table's metadata: `<video><scorer>_meta.pickle`, the table's name
    without its tracker suffix (_el, _bx, _tr) or _filtered."""
    base = table_uri.rsplit(".", 1)[0]
    for suffix in ("_filtered", "_el", "_bx", "_tr", "_sk"):
        base = base.removesuffix(suffix)
    return base + "_meta.pickle"
