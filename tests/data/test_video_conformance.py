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

DAMAGED = {"truncated_mp4", "corrupt_mjpeg_mp4", "damaged_mp4"}
NAMES = ([spec.name for spec in video_matrix.MATRIX] + ["editlist_mp4", "nokey_start_mkv", *sorted(DAMAGED)]
         + [name for name in video_matrix.CAMERA_CASES if name not in DAMAGED])
SEGMENT_LENGTHS = (1, 5, 12, 10_000)  # 1 starts a segment at every keyframe the reader offers
BY_BARCODE = {"corrupt_mjpeg_mp4", "damaged_mp4"}  # rows keep the container's numbering, not the decoder's


def read_in_segments(info: VideoInfo, segment_frames: int) -> tuple[dict[int, np.ndarray], DecodeReport]:
    frames, report = {}, DecodeReport()
    for start, stop in segment_bounds(info.frame_count, info.keyframes, segment_frames):
        for index, rgb in read_frames(info, start, stop, report):
            assert start <= index < stop, f"frame {index} read for segment [{start}, {stop})"
            assert index not in frames, f"frame {index} read twice"
            frames[index] = rgb
    return frames, report


def check_frames(name: str, path: str, oracle: list, frames: dict, report: DecodeReport, count: int, where: str,
                 rotation: int = 0) -> None:
    """Every index read holds the sequential decode's frame there (damaged videos: the frame drawn with
    that index, outside the GOPs the damage hit); every index not read is listed missing."""
    uncertain = video_matrix.uncertain_frames(path) if name == "damaged_mp4" else set()
    by_barcode: dict[int, list] = {}  # a damaged decode may draw any barcode into a guessed frame
    for frame in oracle:
        by_barcode.setdefault(video_matrix.read_barcode(frame), []).append(frame)
    for index in range(count):
        at = f"{where}, frame {index}"
        if index not in frames:
            assert index in report.missing, f"{at}: silently absent"
            assert index in uncertain or name not in BY_BARCODE - {"corrupt_mjpeg_mp4"}, f"{at}: lost outside the damage"
            continue
        if index in uncertain:
            continue
        if name in BY_BARCODE:
            # The decoder rejects packets; later frames keep their container index (a NaN row where the lost
            # one was, never a shift), so compare with the frame drawn with that index.
            assert video_matrix.read_barcode(frames[index]) == index, at
            assert any(np.array_equal(frames[index], f) for f in by_barcode[index]), at
        else:
            assert frames[index].shape == oracle[index].shape, at
            assert np.array_equal(frames[index], oracle[index]), (
                f"{at}: holds frame {video_matrix.read_barcode(frames[index], rotation)}, the "
                f"sequential decode has {video_matrix.read_barcode(oracle[index], rotation)}")
    if name not in DAMAGED:
        assert not report.missing, f"{where}: {report.missing}"


@pytest.mark.parametrize("name", NAMES)
def test_every_segment_cut_gives_the_sequential_decodes_frame_at_every_index(name, matrix, oracles):
    info = probe(matrix[name])
    oracle = oracles[name]
    assert info.keyframes[0] == 0
    if name not in DAMAGED:
        assert info.frame_count == len(oracle), "frame count differs from a plain sequential decode"
    for segment_frames in SEGMENT_LENGTHS:
        frames, report = read_in_segments(info, segment_frames)
        check_frames(name, matrix[name], oracle, frames, report, info.frame_count,
                     f"{name}, segments of {segment_frames}", info.rotation)


@pytest.mark.parametrize("name", NAMES)
def test_the_plan_and_every_way_of_reading_number_frames_as_the_probe(name, matrix, oracles):
    """plan() (from the container's index), read_span over a spans plan joined by prefix sums, and
    read_all: each gives the sequential decode's frame at every index, as the full demux probe does."""
    path, oracle = matrix[name], oracles[name]
    reader = VideoReader(path)
    plan, probed = reader.plan(), reader._demux_probe()
    if plan.plan == "frames" and name not in DAMAGED:  # damaged: the index knows more than the packets say
        assert plan.frame_count == probed.frame_count and plan.present == probed.present
        assert np.array_equal(plan.keyframes, probed.keyframes), (plan.keyframes, probed.keyframes)
        assert np.array_equal(plan.pts, probed.pts) and plan.numbering == probed.numbering
    if plan.plan == "spans":
        frames, count = {}, 0
        for k in range(plan.span_count):
            report = DecodeReport()
            try:
                span = dict(VideoReader(path, info=plan).read_span(k, report))
            except Exception as exc:  # SpansUnsound: this video is read in one pass instead
                assert type(exc).__name__ == "SpansUnsound" and name == "h264_open_mkv", exc
                break
            frames.update({count + i: f for i, f in span.items()})
            assert not report.missing, f"{name}, span {k}: {report.missing}"
            count += report.frame_count
        else:
            assert count == len(oracle), f"{name}: spans add up to {count} frames"
            check_frames(name, path, oracle, frames, DecodeReport(), count, f"{name}, spans")
    if plan.plan != "frames" and name not in DAMAGED:  # a range of a video without an index: a pass from the top
        report = DecodeReport()
        ranged = dict(VideoReader(path, info=plan).read(5, 17, report))
        assert sorted(ranged) == list(range(5, 17)) and report.frame_count == 12 and not report.missing
        assert all(np.array_equal(frame, oracle[i]) for i, frame in ranged.items()), name
    report = DecodeReport()
    sequential = VideoReader(path, info=plan)
    frames = dict(sequential.read_all(report))
    facts = sequential.info
    assert facts.frame_count == report.frame_count
    if name not in DAMAGED:
        assert facts.frame_count == len(oracle)
        assert [list(j) for j in facts.jumps.tolist()] == [list(j) for j in probed.jumps.tolist()]
    check_frames(name, path, oracle, frames, report, report.frame_count, f"{name}, one pass", plan.rotation)


def test_the_matrix_offers_segment_starts_where_it_safely_can(matrix):
    """The planner can only cut where the reader offers keyframes: the suite must really cut mid-file."""
    cut = {name for name in NAMES if len(probe(matrix[name]).keyframes) > 2}
    assert {"h264_bf_mp4", "h264_nobf_mp4", "h264_bf_mov", "h264_bf_ts", "editlist_mp4", "vfr_mkv",
            "rotated_mp4", "highfps_mkv", "mjpeg_avi", "nokey_start_mkv", "trimmed_bf_mp4", "reset_ts",
            "wrap_ts", "resized_ts", "nocues_mkv", "moov_last_mp4", "opendml_avi"} <= cut
    # reordered frames behind invented timestamps: no index is known after a seek, decoded in one piece
    assert list(probe(matrix["h264_bf_avi"]).keyframes) == [0]
    assert list(probe(matrix["mpeg4_bf_avi"]).keyframes) == [0]


def test_plans_come_from_each_containers_index(matrix):
    kinds = {name: VideoReader(matrix[name]).plan().plan for name in NAMES}
    assert {kinds[n] for n in ("h264_bf_mp4", "moov_last_mp4", "h264_bf_mov", "trimmed_bf_mp4", "h264_bf_avi",
                               "mjpeg_avi", "truncated_mp4", "opendml_avi")} == {"frames"}
    assert {kinds[n] for n in ("vfr_mkv", "highfps_mkv", "h264_open_mkv")} == {"spans"}
    assert {kinds[n] for n in ("nocues_mkv", "h264_bf_ts", "reset_ts", "mpeg2_bf_mpg")} == {"sequential"}


def test_rotation_is_applied_and_reported(matrix, oracles):
    info = probe(matrix["rotated_mp4"])
    assert info.rotation == 90
    assert (info.width, info.height) == (video_matrix.HEIGHT, video_matrix.WIDTH)
    assert oracles["rotated_mp4"][0].shape == (info.height, info.width, 3)


def test_an_edit_list_trim_starts_at_its_first_shown_frame(matrix, oracles):
    info = probe(matrix["editlist_mp4"])
    assert video_matrix.read_barcode(oracles["editlist_mp4"][0]) == 5  # the oracle agrees: 5 pre-roll frames
    assert info.frame_count == 43


def test_a_stream_copy_trim_with_b_frames_keeps_the_frame_at_its_cut(matrix, oracles):
    """`ffmpeg -ss T -c copy`: the frame at T is a B-frame decoded after a later P-frame; it is frame 0."""
    info = probe(matrix["trimmed_bf_mp4"])
    assert info.frame_count == len(oracles["trimmed_bf_mp4"]) == 47
    frames = dict(read_frames(info, 0, 3, DecodeReport()))
    assert [video_matrix.read_barcode(frames[i]) for i in range(3)] == [1, 2, 3]


def test_joined_recordings_keep_every_frame_and_list_where_the_clock_went_back(matrix, oracles):
    info = probe(matrix["reset_ts"])
    assert info.frame_count == len(oracles["reset_ts"]) == 120
    assert info.clock_jumps() == [{"frame": 60, "from_pts": 20 * 90000 + 7200 + 59 * 3600 - 3600 * 2,
                                   "to_pts": 0, "kind": "jump"}] or [j["frame"] for j in info.clock_jumps()] == [60]
    assert info.clock_jumps()[0]["to_pts"] < info.clock_jumps()[0]["from_pts"]


def test_the_33_bit_wrap_is_recorded_and_costs_no_frame(matrix, oracles):
    info = probe(matrix["wrap_ts"])
    assert info.frame_count == len(oracles["wrap_ts"]) == 60
    wraps = [j for j in info.clock_jumps() if j["kind"] == "wrap"]
    assert len(wraps) == 1 and wraps[0]["from_pts"] > (1 << 33) - 90000 and wraps[0]["to_pts"] < 90000


def test_a_resolution_change_is_read_at_each_frames_own_size_and_reported(matrix):
    info = probe(matrix["resized_ts"])
    report = DecodeReport()
    shapes = {index: frame.shape for index, frame in read_frames(info, 0, info.frame_count, report)}
    assert report.sizes == [(0, 160, 64), (30, 192, 80)]
    assert shapes[29] == (64, 160, 3) and shapes[30] == (80, 192, 3)


def test_damage_in_the_middle_keeps_what_decodes_in_order(matrix):
    """Random bytes over the middle fifth: the decoder hands frames back out of order and drops others;
    the reader hands every frame over once, ascending, and lists the rest as missing."""
    info = probe(matrix["damaged_mp4"])
    report = DecodeReport()
    indices = [index for index, _ in read_frames(info, 0, info.frame_count, report)]
    assert indices == sorted(set(indices)) and len(indices) + len(report.missing) == info.frame_count == 120
    uncertain = video_matrix.uncertain_frames(matrix["damaged_mp4"])
    assert set(report.missing) <= uncertain and len(indices) >= 120 - len(uncertain)


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
