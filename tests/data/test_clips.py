"""Frames drawn from unlabeled videos: each is the frame a plain sequential decode gives that number."""

from __future__ import annotations

import numpy as np

from posecluster.data.clips import spread_frames
from tests.data import video_matrix
from tests.data.video_matrix import Spec, encode, read_barcode


def test_spread_frames_are_evenly_spaced_across_videos_and_are_the_frames_they_claim(tmp_path):
    (tmp_path / "videos").mkdir()
    first = encode(Spec("a", "mp4", frames=48), str(tmp_path / "videos" / "a.mp4"))
    encode(Spec("b", "mkv", frames=30), str(tmp_path / "videos" / "b.mkv"))
    (tmp_path / "videos" / "notes.txt").write_text("not a video")
    frames = spread_frames([str(tmp_path / "videos")], 7)
    # 4 from the first video (7 // 2 + 1), 3 from the second, first and last frame of each included.
    assert [read_barcode(f) for f in frames] == [0, 16, 31, 47, 0, 14, 29]
    oracle = video_matrix.oracle(first)
    assert np.abs(frames[1].astype(int) - oracle[16].astype(int)).max() == 0


def test_spread_frames_passes_over_unreadable_videos_and_asks_no_more_than_a_video_has(tmp_path):
    encode(Spec("short", "mp4", frames=5), str(tmp_path / "short.mp4"))
    (tmp_path / "broken.mp4").write_bytes(b"\x00" * 1000)
    frames = spread_frames([str(tmp_path)], 20)
    assert [read_barcode(f) for f in frames] == [0, 1, 2, 3, 4]


def test_a_project_without_a_videos_folder_gives_no_check_frames_rather_than_an_error(tmp_path):
    # DeepLabCut's examples ship labeled-data without videos/: the precision check rests on the images alone.
    assert spread_frames([str(tmp_path / "project" / "videos")], 100) == []
