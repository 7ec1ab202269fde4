"""posecluster analyze on a multi-animal model: its stored tracklets are reused only while they pass their
checks, and the tools of the refine loop take the tracked tables it writes."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest

from posecluster import storage
from posecluster.cli.main import main
from posecluster.data.formats import dlc
from posecluster.data.synthetic_multianimal import MultiAnimalScene, project_config, render_video
from posecluster.infer.multianimal_store import read_pieces
from posecluster.infer.naming import output_base, tracked_base, tracklets_file
from tests.cluster.test_archive_multianimal import untrained_model

SCENE = MultiAnimalScene(width=80, height=64)


@pytest.fixture(scope="module")
def analysed(tmp_path_factory):
    """Two 5-frame videos analysed by an untrained multi-animal model: (model, videos, poses folder, bases)."""
    root = tmp_path_factory.mktemp("ma-analyze")
    model, scorer = untrained_model(str(root), SCENE)
    videos = [render_video(f"{root}/videos/arena{i}.mp4", SCENE, 5).uri for i in range(2)]
    out = f"{root}/poses"
    assert main(["analyze", *videos, "--model", model, "--out", out, "--quiet"]) == 0
    return model, videos, out, [tracked_base(output_base(video, out, scorer)) for video in videos]


def test_damaged_stored_tracklets_are_predicted_again_and_the_other_videos_reuse_theirs(analysed, tmp_path):
    model, videos, first, first_bases = analysed
    out = str(tmp_path / "poses")
    shutil.copytree(first, out)
    bases = [base.replace(first, out, 1) for base in first_bases]
    tables = [pd.read_hdf(f"{base}.h5", "df_with_missing") for base in bases]
    # The first video's stored tracklets damaged on disk, the key that says what they were made from intact:
    # a frame's detection count no longer matches the detections stored.
    stored = tracklets_file(bases[0])
    with np.load(stored, allow_pickle=False) as data:
        arrays = {name: data[name] for name in data.files}
    arrays["piece00000/counts"][3] += 2
    with open(stored, "wb") as handle:
        np.savez(handle, **arrays)

    assert main(["analyze", *videos, "--model", model, "--out", out, "--quiet"]) == 0
    reused = [json.loads(storage.read_bytes(f"{base}_meta.json"))["tracklets_file"]["reused"] for base in bases]
    assert reused == [False, True]
    for base, table in zip(bases, tables):
        pd.testing.assert_frame_equal(pd.read_hdf(f"{base}.h5", "df_with_missing"), table)
    assert len(list(read_pieces([stored]))) == 1  # written whole again


def test_the_refine_tools_take_the_tracked_table_analyze_wrote(analysed, tmp_path, capsys):
    _, videos, first, bases = analysed
    poses = str(tmp_path / "poses")
    shutil.copytree(first, poses)
    table = f"{bases[0].replace(first, poses, 1)}.h5"
    project = str(tmp_path / "project")
    dlc.write_project_config(f"{project}/config.yaml", project_config(SCENE))
    assert main(["filter", table, "--format", "csv"]) == 0
    assert main(["label-video", table, "--out", str(tmp_path / "labeled"), "--skeleton", "--filtered"]) == 0
    assert main(["outliers", table, "--project", project, "--filtered", "--algorithm", "uncertain",
                 "--p-bound", "1.01"]) == 0  # every detected part is "unsure": here the landmark in each frame
    printed = capsys.readouterr().out
    assert "5 frames ->" in printed and "_el_filtered_labeled.mp4" in printed
    assert "5 candidate frames, 5 written for labeling: [0, 1, 2, 3, 4]" in printed
    collected = pd.read_hdf(f"{project}/labeled-data/arena0/CollectedData_synthetic.h5")
    assert list(collected.columns.names) == ["scorer", "individuals", "bodyparts", "coords"] and len(collected) == 5


def test_a_rerun_with_other_tracking_settings_links_again_and_records_them(analysed, tmp_path):
    model, videos, first, first_bases = analysed
    out = str(tmp_path / "poses")
    shutil.copytree(first, out)
    base = first_bases[0].replace(first, out, 1)
    before = json.loads(storage.read_bytes(f"{base}_meta.json"))["animals"]
    # A link gate wider than the frame: every detection links to one of the next frame's (the untrained
    # model's detections jump further than the default 15 px), so tracking finds fewer tracklets.
    assert main(["analyze", videos[0], "--model", model, "--out", out, "--quiet",
                 "--set", "infer.tracking.max_link_px=1000"]) == 0
    meta = json.loads(storage.read_bytes(f"{base}_meta.json"))
    assert meta["tracklets_file"]["reused"] is False  # linked with other settings: not the stored tracklets
    assert meta["animals"]["tracking_config"]["max_link_px"] == 1000.0
    assert meta["animals"]["tracking_config"]["enter_px"] == before["tracking_config"]["enter_px"]  # the rest kept
    assert meta["animals"]["tracking"]["tracklets"] < before["tracking"]["tracklets"]
    # Stitching settings alone: the stored tracklets are stitched again, no frame through the network.
    assert main(["analyze", videos[0], "--model", model, "--out", out, "--quiet", "--set", "infer.tracking.max_link_px=1000",
                 "--set", "infer.tracking.enter_px=5", "--set", "infer.tracking.stitch_window_frames=2"]) == 0
    again = json.loads(storage.read_bytes(f"{base}_meta.json"))
    assert again["tracklets_file"]["reused"] is True and again["frames_predicted"] == 0
    assert (again["animals"]["tracking_config"]["enter_px"], again["animals"]["tracking_config"]["stitch_window_frames"]) == (5.0, 2)


PIECED_FRAMES = 27  # keyframes every 4: pieces of at most 10 frames end at 8, 16, 24 (analyze cuts at keyframes)
PIECES = [(0, 8), (8, 16), (16, 24), (24, 27)]


@pytest.fixture(scope="module")
def pieced(tmp_path_factory):
    """A 27-frame video analysed in pieces of at most 10 frames and in one piece, by an untrained model whose
    links reach across the frame (its tracklets run through the cuts): (model, video, {piece frames: (poses
    folder, base, frames handed to link_frames per call)})."""
    from posecluster.infer import multianimal_segments
    from posecluster.tracking import TrackingConfig

    root = tmp_path_factory.mktemp("ma-pieces")
    model, scorer = untrained_model(str(root), SCENE, TrackingConfig(max_link_px=1000.0))
    video = render_video(f"{root}/videos/arena.mp4", SCENE, PIECED_FRAMES, gop=4).uri
    linked = []  # what one piece holds in memory: the frames linked at once
    real = multianimal_segments.link_frames

    def counting(predictor, frames, *args, **kwargs):
        linked.append(len(frames))
        return real(predictor, frames, *args, **kwargs)

    runs = {}
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(multianimal_segments, "link_frames", counting)
        for piece_frames in (10, 1000):
            out = f"{root}/poses{piece_frames}"
            assert main(["analyze", video, "--model", model, "--out", out, "--quiet",
                         "--set", f"infer.multianimal_piece_frames={piece_frames}"]) == 0
            runs[piece_frames] = (out, tracked_base(output_base(video, out, scorer)), list(linked))
            linked.clear()
    return model, video, runs


def test_a_video_analysed_in_pieces_gives_the_table_and_tracking_of_one_piece(pieced):
    _, _, runs = pieced
    (_, in_pieces, linked), (_, whole, linked_whole) = runs[10], runs[1000]
    assert linked == [stop - start for start, stop in PIECES] and linked_whole == [PIECED_FRAMES]
    pd.testing.assert_frame_equal(pd.read_hdf(f"{in_pieces}.h5", "df_with_missing"),
                                  pd.read_hdf(f"{whole}.h5", "df_with_missing"), check_exact=True)
    tracking = [json.loads(storage.read_bytes(f"{base}_meta.json"))["animals"]["tracking"]
                for base in (in_pieces, whole)]
    assert tracking[0] == tracking[1] and tracking[0]["detections"] > 0
    # Not a trivial equality: tracklets the pieces cut at their edges were joined into longer ones.
    with np.load(tracklets_file(in_pieces)) as stored:
        per_piece = sum(len(stored[f"piece{k:05d}/tracklets.first_frame"]) for k in range(len(PIECES)))
    assert per_piece > tracking[0]["tracklets"]


def test_the_tracklets_file_holds_a_piece_per_cut_and_a_rerun_with_any_piece_length_reuses_it(pieced, tmp_path):
    model, video, runs = pieced
    first, base, _ = runs[10]
    with np.load(tracklets_file(base)) as stored:  # numpy's npz: the members as the file lays them out
        assert int(stored["pieces"]) == len(PIECES)
        assert sorted({name.split("/")[0] for name in stored.files if "/" in name}) == [
            f"piece{k:05d}" for k in range(len(PIECES))]
        assert [(int(stored[f"piece{k:05d}/start"]), int(stored[f"piece{k:05d}/end"]))
                for k in range(len(PIECES))] == PIECES
    table = pd.read_hdf(f"{base}.h5", "df_with_missing")
    out = str(tmp_path / "poses")
    shutil.copytree(first, out)
    moved = base.replace(first, out, 1)
    for piece_frames in (10, 12):  # the piece length is not part of what the tracklets were made from
        assert main(["analyze", video, "--model", model, "--out", out, "--quiet",
                     "--set", f"infer.multianimal_piece_frames={piece_frames}"]) == 0
        meta = json.loads(storage.read_bytes(f"{moved}_meta.json"))
        assert meta["tracklets_file"]["reused"] is True and meta["frames_predicted"] == 0
        pd.testing.assert_frame_equal(pd.read_hdf(f"{moved}.h5", "df_with_missing"), table, check_exact=True)


def test_tracklets_stored_as_one_segment_by_an_earlier_analyze_are_reused(pieced, tmp_path):
    from posecluster.data.video import probe
    from posecluster.infer.ensemble import load_predictor
    from posecluster.infer.multianimal_analyze import detections_key
    from posecluster.infer.multianimal_segments import predict_animal_segment
    from posecluster.infer.multianimal_store import write_animal_segment

    model, video, runs = pieced
    first, base, _ = runs[10]
    out = str(tmp_path / "poses")
    shutil.copytree(first, out)
    moved = base.replace(first, out, 1)
    # What analyze stored before it worked in pieces: the whole video as one segment, members at top level.
    predictor = load_predictor(model)
    segment, result = predict_animal_segment(predictor, probe(video), 0, PIECED_FRAMES)
    write_animal_segment(tracklets_file(moved), segment, result, detections_key(storage.identity(video), predictor))
    with np.load(tracklets_file(moved)) as stored:
        assert "pieces" not in stored.files and int(stored["end"]) == PIECED_FRAMES

    assert main(["analyze", video, "--model", model, "--out", out, "--quiet"]) == 0
    meta = json.loads(storage.read_bytes(f"{moved}_meta.json"))
    assert meta["tracklets_file"]["reused"] is True
    pd.testing.assert_frame_equal(pd.read_hdf(f"{moved}.h5", "df_with_missing"),
                                  pd.read_hdf(f"{base}.h5", "df_with_missing"), check_exact=True)


@pytest.mark.parametrize("frames, keyframes, piece_frames, pieces", [
    (27, range(0, 27, 4), 10, PIECES),
    (26, range(0, 26, 4), 10, [(0, 8), (8, 16), (16, 26)]),  # the last 10 frames in one piece
    (25, [0], 10, [(0, 25)]),  # one group of pictures: one piece (never decoded again from frame 0)
    (40, [0, 5, 23, 24], 10, [(0, 5), (5, 23), (23, 24), (24, 40)]),  # long groups held whole
    (30, [0, 10, 15, 20], 10, [(0, 10), (10, 20), (20, 30)]),  # a keyframe exactly at the limit
    (5, [0], 1000, [(0, 5)]),
])
def test_pieces_end_at_the_last_keyframe_within_the_piece_length_or_the_first_after(frames, keyframes,
                                                                                   piece_frames, pieces):
    from posecluster.infer.multianimal_analyze import piece_bounds

    assert piece_bounds(frames, list(keyframes), piece_frames) == pieces
