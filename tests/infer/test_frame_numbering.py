"""Every pose row on the right frame: `analyze` and the archive path (real local Ray, 2 workers, several
segment lengths) give, for every row of every video in the conformance matrix, the prediction of the frame
a plain sequential decode gives at that index; and their tables are identical row for row."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from posecluster import api, storage
from posecluster.cluster.archive import ArchiveOptions
from posecluster.data.formats.poses import read_pose_table
from posecluster.config import PoseclusterConfig, ProjectConfig
from posecluster.infer.predictor import Predictor
from posecluster.model.pose_model import PoseModel
from posecluster.train.checkpoint import load_model, save_model
from tests.data import video_matrix
from tests.data.test_video_conformance import BY_BARCODE, NAMES

# The archive leg runs on the videos whose numbering is hardest; `analyze` runs on all of them.
ARCHIVE_NAMES = ["h264_bf_avi", "editlist_mp4", "hevc_mp4", "highfps_mkv", "rotated_mp4", "truncated_mp4",
                 "trimmed_bf_mp4", "reset_ts", "resized_ts", "damaged_mp4"]
DECLARED = {"corrupt_mjpeg_mp4": 48, "truncated_mp4": 48, "damaged_mp4": 120}  # frames the container lists


@pytest.fixture(scope="module")
def random_model(tmp_path_factory) -> str:
    """A randomly initialised ResNet-18 detector: untrained, but its output follows the frame's content."""
    torch.manual_seed(0)
    config = PoseclusterConfig(project=ProjectConfig(task="conformance", bodyparts=["a", "b"])).with_overrides(
        {"model": {"backbone": {"name": "resnet18", "weights": "none"}, "global_scale": 0.5},
         "infer": {"batch_size": 16}})
    run = str(tmp_path_factory.mktemp("random-model"))
    save_model(run, config, ["a", "b"], PoseModel(config.model, 2).state_dict())
    return run


@pytest.fixture(scope="module")
def predictor(random_model) -> Predictor:
    return Predictor(load_model(random_model))


@pytest.fixture(scope="module")
def expected(predictor, matrix, oracles) -> dict[str, np.ndarray]:
    """Per video: the predictor run on the oracle's frames, row i for the sequential decode's frame i
    (NaN where the file cannot give frame i)."""
    out = {}
    for name in NAMES:
        frames = oracles[name]
        if name in BY_BARCODE:  # rows keep the container's numbering: place frames by their index
            rows = {}
            for frame in frames:  # a guessed frame after damage may draw any index: the first one counts
                rows.setdefault(video_matrix.read_barcode(frame), frame)
        else:
            rows = dict(enumerate(frames))
        count = DECLARED.get(name, len(frames))
        table = np.full((count, len(predictor.bodyparts), 3), np.nan)
        for i in sorted(rows):  # one frame at a time: a video may change its frame size
            table[i] = predictor.predict(rows[i][None])[0]
        out[name] = table.reshape(count, -1)
    return out


def uncertain(name: str, matrix) -> np.ndarray:
    """Rows of the GOPs a damage hit (their content is the decoder's guess): not compared."""
    return np.asarray(sorted(video_matrix.uncertain_frames(matrix[name])) if name == "damaged_mp4" else [], dtype=int)


def assert_rows_match(name: str, got: np.ndarray, want: np.ndarray, skip: np.ndarray = np.zeros(0, int)) -> None:
    assert got.shape == want.shape, f"{name}: {got.shape[0]} rows, the sequential decode gives {want.shape[0]}"
    got, want = np.delete(got, skip, axis=0), np.delete(want, skip, axis=0)
    nan_got, nan_want = np.isnan(got).all(axis=1), np.isnan(want).all(axis=1)
    assert np.array_equal(nan_got, nan_want), f"{name}: NaN rows {np.flatnonzero(nan_got)} vs {np.flatnonzero(nan_want)}"
    close = np.isclose(got, want, rtol=1e-4, atol=1e-3).all(axis=1) | nan_want
    assert close.all(), f"{name}: rows {np.flatnonzero(~close)[:10]} hold another frame's pose"


@pytest.fixture(scope="module")
def analyzed(matrix, random_model, tmp_path_factory) -> dict[str, np.ndarray]:
    out = str(tmp_path_factory.mktemp("analyze-matrix"))
    results = api.analyze([matrix[n] for n in NAMES], random_model, out, progress=False)
    by_name = {storage.stem(r.video): r for r in results}
    assert set(by_name) == set(NAMES)
    return {name: read_pose_table(r.outputs["h5"]).to_numpy() for name, r in by_name.items()} | {"_results": by_name}


def test_the_oracle_can_tell_frames_apart(expected):
    """Otherwise every comparison below would pass whatever frame a row held."""
    rows = expected["h264_bf_mp4"]
    assert all(not np.allclose(rows[i], rows[i + 1], rtol=1e-4, atol=1e-3) for i in range(len(rows) - 1))


@pytest.mark.parametrize("name", NAMES)
def test_analyze_gives_every_row_the_pose_of_its_frame(name, analyzed, expected, matrix):
    assert_rows_match(name, analyzed[name], expected[name], uncertain(name, matrix))


def test_analyze_records_rotation_and_marks_damaged_videos(analyzed):
    results = analyzed["_results"]
    assert results["h264_bf_mp4"].status == "done" and not results["h264_bf_mp4"].missing_frames
    assert results["h264_bf_avi"].status == "done"  # read in one piece is how, not a warning
    truncated = results["truncated_mp4"]
    assert truncated.status == "done-with-warnings"
    assert set(truncated.missing_frames) == set(range(19, 48)) and "truncated" in truncated.missing_frames[47]
    assert results["corrupt_mjpeg_mp4"].status == "done-with-warnings"
    assert list(results["corrupt_mjpeg_mp4"].missing_frames) == [20]
    meta = json.loads(storage.read_bytes(results["rotated_mp4"].outputs["h5"][: -len(".h5")] + "_meta.json"))
    assert meta["rotation"] == 90 and meta["frame_numbering"] == "pts"
    assert results["damaged_mp4"].status == "done-with-warnings" and results["damaged_mp4"].missing_frames


def test_analyze_lists_clock_jumps_and_frame_sizes_in_meta(analyzed):
    def meta(name):
        return json.loads(storage.read_bytes(analyzed["_results"][name].outputs["h5"][: -len(".h5")] + "_meta.json"))

    assert [jump["frame"] for jump in meta("reset_ts")["clock_jumps"]] == [60]
    assert [jump["kind"] for jump in meta("wrap_ts")["clock_jumps"]] == ["wrap"]
    assert meta("resized_ts")["frame_sizes"] == [{"frame": 0, "width": 160, "height": 64},
                                                 {"frame": 30, "width": 192, "height": 80}]
    assert meta("h264_bf_mp4")["clock_jumps"] == []


# Every video planned by a task from its container's index instead of fetched whole by a worker: frame
# ranges (MP4, AVI), spans between cues (Matroska), one pass (MPEG-TS, a Matroska without cues).
# h264_open_mkv's spans cannot be read on their own (an open GOP at a cue): the job reads it in one pass.
PLANNED = ["nocues_mkv", "wrap_ts", "h264_open_mkv", "vfr_mkv"]


@pytest.mark.parametrize("segment_frames,small_video_bytes", [
    (5, 64 << 20), pytest.param(12, 64 << 20, marks=pytest.mark.slow), (12, 0), pytest.param(24, 64 << 20, marks=pytest.mark.slow)],
    ids=["5-whole", "12-whole", "12-planned", "24-whole"])
def test_the_archive_gives_the_same_rows_as_analyze_for_any_segment_length(
        segment_frames, small_video_bytes, ray_local, random_model, matrix, analyzed, expected, tmp_path):
    options = ArchiveOptions(model=random_model, out=str(tmp_path / "poses"), workers=2,
                             segment_frames=segment_frames, progress=False, small_video_bytes=small_video_bytes)
    names = ARCHIVE_NAMES + (PLANNED if small_video_bytes == 0 else [])
    report = api.infer_archive([matrix[n] for n in names], options)
    by_name = {storage.stem(v.uri): v for v in report.videos}
    for name in names:
        video = by_name[name]
        assert video.status in ("done", "done-with-warnings"), (name, video.error)
        table = read_pose_table(video.outputs["h5"]).to_numpy()
        skip = uncertain(name, matrix)
        assert_rows_match(name, table, expected[name], skip)
        # equal up to float noise from different batch compositions (the same frame in every row)
        table, analyzed_table = np.delete(table, skip, axis=0), np.delete(analyzed[name], skip, axis=0)
        assert np.array_equal(np.isnan(table), np.isnan(analyzed_table)), f"{name}: NaN rows differ"
        np.testing.assert_allclose(table, analyzed_table, rtol=1e-5, atol=1e-4,
                                   err_msg=f"{name}: infer and analyze tables differ")
    def meta(name):
        return json.loads(storage.read_bytes(by_name[name].outputs["h5"][: -len(".h5")] + "_meta.json"))

    # What analyze's _meta.json says, the archive's says too, however the video was read.
    assert meta("resized_ts")["frame_sizes"] == [{"frame": 0, "width": 160, "height": 64},
                                                 {"frame": 30, "width": 192, "height": 80}]
    assert [jump["frame"] for jump in meta("reset_ts")["clock_jumps"]] == [60]
    for name in names:  # which arithmetic predicted the rows: the path analyze took, for every predicted frame
        analyze_meta = json.loads(storage.read_bytes(analyzed["_results"][name].outputs["h5"][: -len(".h5")] + "_meta.json"))
        predicted = int((~np.isnan(read_pose_table(by_name[name].outputs["h5"]).to_numpy()).all(axis=1)).sum())
        assert meta(name)["precision"]["frames_by_path"] == {analyze_meta["precision"]["path"]: predicted}, name
        assert 0 <= meta(name)["precision"]["rechecked_frames"] <= predicted, name
    assert len(by_name["editlist_mp4"].segments) >= 2, "the planner must really cut videos mid-file"
    assert by_name["h264_bf_avi"].status == "done" and len(by_name["h264_bf_avi"].segments) == 1
    truncated = by_name["truncated_mp4"]
    assert truncated.status == "done-with-warnings" and truncated.missing_count == 48 - 19
    assert truncated.missing == "19-47"
