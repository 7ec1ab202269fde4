"""Labeled videos decode with every frame, markers where the poses say, hidden below the p-cutoff."""

from __future__ import annotations

import glob

import av
import numpy as np

from posecluster.cli.main import main
from posecluster.data.formats.poses import read_track
from posecluster.data.video import DecodeReport, probe, read_frames
from posecluster.viz.colors import bodypart_colors
from posecluster.viz.labeled_video import LabelOptions, label_video

RADIUS = 4


def decode_all(uri: str) -> list[np.ndarray]:
    with av.open(uri) as container:
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]


def isolated_parts(points: np.ndarray, shown: np.ndarray, k: int, gap: float) -> bool:
    others = [j for j in range(len(points)) if j != k and shown[j]]
    return all(np.hypot(*(points[k, :2] - points[j, :2])) > gap for j in others)


def test_the_command_writes_a_labeled_video_with_every_frame(analysed_video, tmp_path, capsys):
    video, poses = analysed_video
    assert main(["label-video", poses, "--out", str(tmp_path / "labeled"), "--skeleton", "--trail", "3"]) == 0
    video_folder = video.uri.rsplit("/", 1)[0].lstrip("/")  # the video's own folder, mirrored under --out
    (labeled,) = glob.glob(str(tmp_path / "labeled" / video_folder / "*_labeled.mp4"))
    assert labeled.endswith("trial7" + labeled.split("trial7")[1]) and "DLC_resnet_18" in labeled
    frames = decode_all(labeled)
    assert len(frames) == 90 and frames[0].shape == (80, 96, 3)
    assert probe(labeled).fps == probe(video.uri).fps


def test_markers_sit_where_the_poses_say_and_hidden_parts_are_not_drawn(analysed_video, tmp_path):
    # The poses drawn are the rendered truth (not a trained model's output), so where each marker must sit
    # is known independently of any training run.
    from posecluster.data import synthetic
    from posecluster.data.tracks import PoseTrack

    video, _ = analysed_video
    truth = video.truth.astype(float)
    poses = np.concatenate([truth, np.full(truth.shape[:2] + (1,), 0.9)], axis=-1)
    poses[:, 1, 2] = 0.05  # part 1: below the p-cutoff everywhere
    track = PoseTrack("truth", list(synthetic.BODYPARTS), poses)
    out = str(tmp_path / "marked.mp4")
    result = label_video(video.uri, track, out, LabelOptions(pcutoff=0.5, radius=RADIUS))
    assert result.frames == 90 and not result.missing_frames
    labeled = decode_all(out)
    original = dict(read_frames(probe(video.uri), 0, 90, DecodeReport()))
    colors = bodypart_colors(4).astype(float)
    checked = {"drawn": 0, "hidden": 0}
    for f in range(90):
        points = track.poses[f]
        shown = points[:, 2] >= 0.5
        for k in range(4):
            x, y = np.round(points[k, :2]).astype(int)
            if not (RADIUS <= x < 96 - RADIUS and RADIUS <= y < 80 - RADIUS):
                continue
            drawn_shown = shown.copy()
            drawn_shown[k] = True
            if not isolated_parts(points, drawn_shown, k, RADIUS + 3):  # no other marker over our 3x3 patch
                continue
            got = labeled[f][y - 1 : y + 2, x - 1 : x + 2].reshape(-1, 3).mean(axis=0)
            before = original[f][y - 1 : y + 2, x - 1 : x + 2].reshape(-1, 3).mean(axis=0)
            to_marker, to_frame = np.abs(got - colors[k]).mean(), np.abs(got - before).mean()
            if shown[k]:
                # Where the scene already has about the marker's colour a marker cannot be told apart.
                if np.abs(before - colors[k]).mean() < 60:
                    continue
                assert to_marker < to_frame and to_marker < 40, (f, k, got, colors[k], before)
                checked["drawn"] += 1
            else:
                assert to_frame < 20, (f, k, got, before)  # the frame itself, no marker
                checked["hidden"] += 1
    assert checked["drawn"] >= 100 and checked["hidden"] >= 10, checked


def test_a_truncated_source_keeps_its_frame_count_in_the_labeled_video(matrix, oracles, tmp_path):
    """Rows and labeled frames stay aligned: frames the source cannot give are written, not dropped."""
    from tests.data import video_matrix
    from posecluster.data import synthetic
    from posecluster.data.tracks import PoseTrack

    info = probe(matrix["truncated_mp4"])
    track = PoseTrack("scorer", ["a"], np.full((info.frame_count, 1, 3), np.nan))
    result = label_video(matrix["truncated_mp4"], track, str(tmp_path / "labeled.mp4"), LabelOptions())
    frames = decode_all(str(tmp_path / "labeled.mp4"))
    assert result.frames == len(frames) == info.frame_count == 48
    assert result.missing_frames == list(range(19, 48))
    decoded = oracles["truncated_mp4"]
    assert [video_matrix.read_barcode(f) for f in frames[:19]] == [video_matrix.read_barcode(f) for f in decoded]


def test_a_source_without_a_frame_rate_is_written_at_the_fallback_rate_with_every_frame(analysed_video, tmp_path,
                                                                                        monkeypatch):
    """FFmpeg guesses a rate for nearly every file; where the probe still has none, the encoder must not
    break and the frames must all be there (the rate is the one thing the output cannot know)."""
    import dataclasses

    from posecluster.viz import labeled_video
    from posecluster.viz.labeled_video import FALLBACK_FPS

    video, poses = analysed_video
    real = labeled_video.probe
    monkeypatch.setattr(labeled_video, "probe", lambda uri: dataclasses.replace(real(uri), fps=0.0))
    [table] = glob.glob(f"{poses}/*.h5")
    result = label_video(video.uri, read_track(table), str(tmp_path / "labeled.mp4"), LabelOptions())
    assert result.fps == FALLBACK_FPS and "frame rate unknown" in result.notes[0]
    assert len(decode_all(str(tmp_path / "labeled.mp4"))) == result.frames == 90
    assert probe(str(tmp_path / "labeled.mp4")).fps == FALLBACK_FPS
