"""Frame numbering conformance: for every kind of video in the matrix and every way the archive planner
may cut it, reading a segment gives at each index exactly the frame a plain sequential PyAV decode of the
whole file gives there (the oracle; see video_matrix.py), with no duplicates and no silent gaps."""

from __future__ import annotations

import numpy as np
import pytest

from posecluster.cluster.sharding import segment_bounds
from posecluster.data.video import DecodeReport, VideoInfo, VideoReader, probe, read_frames
from posecluster.errors import InputError
from tests.data import video_matrix

DAMAGED = {"truncated_mp4", "corrupt_mjpeg_mp4"}
NAMES = [spec.name for spec in video_matrix.MATRIX] + ["editlist_mp4", "nokey_start_mkv", *sorted(DAMAGED)]
SEGMENT_LENGTHS = (1, 5, 12, 10_000)  # 1 starts a segment at every keyframe the reader offers


def read_in_segments(info: VideoInfo, segment_frames: int) -> tuple[dict[int, np.ndarray], DecodeReport]:
    frames, report = {}, DecodeReport()
    for start, stop in segment_bounds(info.frame_count, info.keyframes, segment_frames):
        for index, rgb in read_frames(info, start, stop, report):
            assert start <= index < stop, f"frame {index} read for segment [{start}, {stop})"
            assert index not in frames, f"frame {index} read twice"
            frames[index] = rgb
    return frames, report


@pytest.mark.parametrize("name", NAMES)
def test_every_segment_cut_gives_the_sequential_decodes_frame_at_every_index(name, matrix, oracles):
    info = probe(matrix[name])
    oracle = oracles[name]
    assert info.keyframes[0] == 0
    if name not in DAMAGED:
        assert info.frame_count == len(oracle), "frame count differs from a plain sequential decode"
    for segment_frames in SEGMENT_LENGTHS:
        frames, report = read_in_segments(info, segment_frames)
        for index in range(info.frame_count):
            where = f"{name}, segments of {segment_frames}, frame {index}"
            if index not in frames:
                assert index in report.missing, f"{where}: silently absent"
                continue
            if name == "corrupt_mjpeg_mp4":
                # The decoder rejects one packet; later frames keep their container index (a NaN row
                # where the lost one was, never a shift), so compare with the drawn index itself.
                assert video_matrix.read_barcode(frames[index]) == index, where
            else:
                assert frames[index].shape == oracle[index].shape, where
                assert np.array_equal(frames[index], oracle[index]), (
                    f"{where}: holds frame {video_matrix.read_barcode(frames[index], info.rotation)}, the "
                    f"sequential decode has {video_matrix.read_barcode(oracle[index], info.rotation)}")
        if name not in DAMAGED:
            assert not report.missing, f"{name}: {report.missing}"


def test_the_matrix_offers_segment_starts_where_it_safely_can(matrix):
    """The planner can only cut where the reader offers keyframes: the suite must really cut mid-file."""
    cut = {name for name in NAMES if len(probe(matrix[name]).keyframes) > 2}
    assert {"h264_bf_mp4", "h264_nobf_mp4", "h264_bf_mov", "h264_bf_ts", "editlist_mp4", "vfr_mkv",
            "rotated_mp4", "highfps_mkv", "mjpeg_avi", "nokey_start_mkv"} <= cut
    # reordered frames behind invented timestamps: no index is known after a seek, decoded in one piece
    assert list(probe(matrix["h264_bf_avi"]).keyframes) == [0]
    assert list(probe(matrix["mpeg4_bf_avi"]).keyframes) == [0]


def test_rotation_is_applied_and_reported(matrix, oracles):
    info = probe(matrix["rotated_mp4"])
    assert info.rotation == 90
    assert (info.width, info.height) == (video_matrix.HEIGHT, video_matrix.WIDTH)
    assert oracles["rotated_mp4"][0].shape == (info.height, info.width, 3)


def test_an_edit_list_trim_starts_at_its_first_shown_frame(matrix, oracles):
    info = probe(matrix["editlist_mp4"])
    assert video_matrix.read_barcode(oracles["editlist_mp4"][0]) == 5  # the oracle agrees: 5 pre-roll frames
    assert info.frame_count == 43


def test_a_truncated_file_keeps_what_decodes_and_lists_the_rest_as_missing(matrix, oracles):
    info = probe(matrix["truncated_mp4"])
    assert info.frame_count == 48 and any("truncated" in w for w in info.warnings)
    report = DecodeReport()
    indices = [index for index, _ in read_frames(info, 0, info.frame_count, report)]
    assert indices == list(range(len(oracles["truncated_mp4"])))
    assert sorted(report.missing) == list(range(len(indices), 48))
    assert "truncated" in report.missing[47]


def test_a_corrupt_packet_costs_its_own_frame_only(matrix):
    report = DecodeReport()
    info = probe(matrix["corrupt_mjpeg_mp4"])
    indices = [index for index, _ in read_frames(info, 0, info.frame_count, report)]
    assert sorted(report.missing) == [20] and "Invalid data" in report.missing[20]
    assert indices == [i for i in range(48) if i != 20]


def test_probe_reads_from_a_source_callable_and_round_trips_through_bytes(matrix):
    path = matrix["h264_bf_mp4"]
    data = open(path, "rb").read()
    import io

    info = probe("memory://clip.mp4", source=lambda: io.BytesIO(data))
    restored = VideoInfo.from_bytes(info.to_bytes(), "memory://clip.mp4")
    assert restored.frame_count == info.frame_count == 48
    assert np.array_equal(restored.keyframes, info.keyframes) and restored.numbering == info.numbering
    reader = VideoReader("memory://clip.mp4", source=lambda: io.BytesIO(data), info=restored)
    assert [i for i, _ in reader.read(19, 30, DecodeReport())] == list(range(19, 30))


def test_a_file_that_is_not_a_video_fails_by_name(tmp_path):
    path = tmp_path / "notes.avi"
    path.write_bytes(b"RIFF....AVI not really" * 40)
    with pytest.raises(InputError, match="notes.avi"):
        probe(str(path))


def test_a_seek_that_misses_its_keyframe_falls_back_to_decoding_from_the_start(matrix, oracles):
    info = probe(matrix["h264_bf_mp4"])
    info.seek_pos = np.ones_like(info.seek_pos)  # no packet lies there: every seek looks wrong
    report = DecodeReport()
    frames = dict(read_frames(info, 19, 30, report))
    assert sorted(frames) == list(range(19, 30)) and not report.missing
    assert all(np.array_equal(frames[i], oracles["h264_bf_mp4"][i]) for i in frames)
