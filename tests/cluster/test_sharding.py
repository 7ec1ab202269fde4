"""Planning is pure and deterministic: tested without Ray."""

from __future__ import annotations

import numpy as np

from posecluster.cluster.sharding import load_probe, save_probe, segment_bounds
from posecluster.data.video import VideoInfo

OPENFIELD_KEYFRAMES = [0, 182, 366, 548, 797, 985, 1173, 1383, 1588, 1794, 2016, 2219]


def test_segments_start_at_keyframes_and_cover_every_frame_once():
    bounds = segment_bounds(2330, OPENFIELD_KEYFRAMES, 500)
    assert bounds == [(0, 548), (548, 1173), (1173, 1794), (1794, 2330)]
    assert all(a in OPENFIELD_KEYFRAMES for a, _ in bounds)


def test_a_short_tail_joins_the_previous_segment():
    assert segment_bounds(1050, [0, 500, 1000], 500) == [(0, 500), (500, 1050)]
    assert segment_bounds(1200, [0, 500, 1000], 500) == [(0, 500), (500, 1000), (1000, 1200)]


def test_videos_without_inner_keyframes_are_one_segment():
    assert segment_bounds(300, [0], 100) == [(0, 300)]
    assert segment_bounds(0, [0], 100) == []


def test_plan_is_deterministic():
    keyframes = np.arange(0, 10_000, 250)
    assert segment_bounds(10_000, keyframes, 1000) == segment_bounds(10_000, list(keyframes), 1000)


def test_probe_cache_round_trips(tmp_path):
    info = VideoInfo(uri="v.mp4", frame_count=3, fps=30.0, width=64, height=48, codec="h264",
                     pts=np.array([0, 512, 1024]), keyframes=np.array([0]))
    save_probe(str(tmp_path / "p.npz"), info)
    again = load_probe(str(tmp_path / "p.npz"), "v.mp4")
    assert again.frame_count == 3 and again.pts.tolist() == [0, 512, 1024] and again.codec == "h264"


def test_a_probe_cached_by_an_older_reader_is_not_trusted(tmp_path):
    """Caches written before frame numbering was decided by VideoReader (no version, no numbering) carry
    keyframes that may not be safe segment starts: loading one must fail so the planner probes again."""
    import io
    import json

    import pytest

    from posecluster.data.video import StaleProbeError

    buffer = io.BytesIO()
    meta = {"frame_count": 10, "fps": 30.0, "width": 8, "height": 8, "codec": "h264"}
    np.savez_compressed(buffer, pts=np.arange(10), keyframes=np.array([0, 3]),
                        meta=np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8))
    old = tmp_path / "old.npz"
    old.write_bytes(buffer.getvalue())
    with pytest.raises(StaleProbeError, match="older reader"):
        load_probe(str(old), "v.mp4")
