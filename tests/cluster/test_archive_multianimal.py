"""A multi-animal model through `posecluster analyze` (one process) and `posecluster infer` (segments on
two Ray actors): the same tracked table, and reruns that reuse what was computed."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from posecluster import storage
from posecluster.cli.main import main
from posecluster.config import BackboneConfig, InferConfig, ModelConfig, PoseclusterConfig, TrackingConfig
from posecluster.data.formats.madlc import read_tracks
from posecluster.data.synthetic_multianimal import MultiAnimalScene, project_config, render_video
from posecluster.model.artifact import dlc_scorer
from posecluster.model.multianimal_artifact import save_multianimal_model, spec_of
from posecluster.model.multianimal_model import MultiAnimalPoseModel

GRAPH = ((0, 1), (1, 2), (2, 3))


def untrained_model(root: str, scene: MultiAnimalScene, tracking: TrackingConfig | None = None) -> tuple[str, str]:
    """An untrained ResNet-18 multi-animal model (fixed seed): its detections are not the animals, but
    they are a deterministic function of each frame, several per frame, linked into dozens of tracklets
    (seed 0 at 80x64 gives three individuals), which is what equality across shards needs. `tracking`: the
    model's own tracking settings (its config's infer.tracking)."""
    config = PoseclusterConfig(project=project_config(scene),
                               infer=InferConfig(batch_size=8, tracking=tracking or TrackingConfig()),
                               model=ModelConfig(backbone=BackboneConfig(name="resnet18", weights="none"),
                                                 global_scale=1.0))
    torch.manual_seed(0)
    model = MultiAnimalPoseModel(config.model, spec_of(config, GRAPH))
    return save_multianimal_model(f"{root}/run", config, GRAPH, model.state_dict()), dlc_scorer(config)


def run(scene: MultiAnimalScene, frames: int, segment_frames: int, root: str, *settings: str,
        tracking: TrackingConfig | None = None):
    """(model, scorer, video, the analyze table, the infer table, the infer output folder) for a video
    with keyframes every segment_frames / 2; `settings` (--set ...) given to both commands, `tracking` the
    model's own."""
    model, scorer = untrained_model(root, scene, tracking)
    video = render_video(f"{root}/videos/arena.mp4", scene, frames, gop=segment_frames // 2).uri
    assert main(["analyze", video, "--model", model, "--out", f"{root}/single", "--format", "csv", "--quiet",
                 *settings]) == 0
    assert main(["infer", video, "--model", model, "--out", f"{root}/sharded", "--workers", "2", "--segment-frames",
                 str(segment_frames), "--small-video-mb", "0", "--format", "csv", "--quiet", *settings]) == 0
    folder = root.lstrip("/") + "/videos"
    name = f"arena{scorer}_el"  # DeepLabCut's name for the table its (ellipse) tracker stitched
    return (model, scorer, video, f"{root}/single/{folder}/{name}.h5", f"{root}/sharded/{folder}/{name}.h5",
            f"{root}/sharded")


def check_same_tracks(single: str, sharded: str, scorer: str, scene: MultiAnimalScene, csv: bool = True) -> None:
    one, many = read_tracks(single), read_tracks(sharded)
    assert (one.scorer, one.individuals, one.unique_bodyparts) == (scorer, scene.individuals, ["landmark"])
    present = one.animals_present()
    assert (present.sum(axis=0) > 0).sum() >= 2, "a test of identities needs tracked individuals"
    # Same identities in the same rows (exactly); coordinates as the network's arithmetic gives them
    # (batches are cut differently in a shard, which moves the last float bits of a convolution).
    np.testing.assert_array_equal(many.animals_present(), present)
    np.testing.assert_array_equal(np.isnan(many.poses), np.isnan(one.poses))
    np.testing.assert_array_equal(many.poses, one.poses)  # bit for bit: frames go through the network one at a time
    np.testing.assert_array_equal(many.unique_poses, one.unique_poses)
    for table in (single, sharded):  # DeepLabCut's tracked layout: 4 header levels, unique parts under "single"
        frame = pd.read_hdf(table, "df_with_missing")
        assert list(frame.columns.names) == ["scorer", "individuals", "bodyparts", "coords"]
        assert ("single" in frame.columns.get_level_values("individuals")) and len(frame) == len(present)
        assert storage.exists(table[: -len(".h5")] + ".csv") == (csv or table == sharded)  # infer asked csv twice


def test_a_video_sharded_over_two_actors_gets_the_tracks_of_one_process_and_reruns_reuse_them(ray_local, tmp_path):
    scene = MultiAnimalScene(width=80, height=64)
    # Tracking settings from the model (enter_px) and from the command line (max_gap_frames): the workers
    # that link and the driver that stitches and names the job's request must both take them. Stitching
    # in 10-frame windows and analyze's 20-frame pieces: neither may change the tracks.
    tracking = ("--set", "infer.tracking.max_gap_frames=12", "--set", "infer.tracking.stitch_window_frames=10",
                "--set", "infer.multianimal_piece_frames=20")
    model, scorer, video, single, sharded, out = run(scene, 48, 16, str(tmp_path), *tracking,
                                                     tracking=TrackingConfig(enter_px=40.0))
    check_same_tracks(single, sharded, scorer, scene)
    meta = json.loads(storage.read_bytes(single[: -len(".h5")] + "_meta.json"))
    for table in (single, sharded):
        settings = json.loads(storage.read_bytes(table[: -len(".h5")] + "_meta.json"))["animals"]["tracking_config"]
        assert settings == TrackingConfig(enter_px=40.0, max_gap_frames=12, stitch_window_frames=10).model_dump(mode="json")
    figures = meta["animals"]["tracking"]
    assert figures["tracklets"] > figures["individuals_found"] >= 2 and meta["tracklets_file"]["reused"] is False
    manifest = [json.loads(line) for uri in storage.list_files(f"{out}/.posecluster/jobs", suffixes=(".jsonl",))
                for line in storage.read_bytes(uri).decode().splitlines()]
    assert manifest[0]["cuts"] == [0, 16, 32, 48]
    counted = ("tracklets", "individuals_found", "identity_joins", "detections")
    assert {k: manifest[0]["tracking"][k] for k in counted} == {k: figures[k] for k in counted}
    assert figures["identity_joins"] >= 1  # dozens of tracklets stitched into at most three tracks
    # analyze again: the stored tracklets are reused (no frame through the network), the table the same.
    before = read_tracks(single).poses
    assert main(["analyze", video, "--model", model, "--out", f"{tmp_path}/single", "--quiet", *tracking]) == 0
    assert json.loads(storage.read_bytes(single[: -len(".h5")] + "_meta.json"))["tracklets_file"]["reused"]
    np.testing.assert_array_equal(read_tracks(single).poses, before)
    assert not storage.exists(single[: -len(".h5")] + ".csv")  # this run did not ask for it
    # infer again after the table was deleted: joined again from the stored segments, nothing computed.
    storage.remove(sharded)
    assert main(["infer", video, "--model", model, "--out", out, "--workers", "2", "--segment-frames", "16",
                 "--small-video-mb", "0", "--format", "csv", "--quiet", *tracking]) == 0
    summary = json.loads(storage.read_bytes(f"{out}/posecluster-manifest.json"))
    assert summary["frames_computed"] == 0 and summary["segments_cached"] == 3
    check_same_tracks(single, sharded, scorer, scene, csv=False)


@pytest.mark.slow
def test_three_hundred_frames_in_segments_of_a_hundred_give_the_single_process_tracks(ray_local, tmp_path):
    scene = MultiAnimalScene(width=128, height=96)
    _, scorer, _, single, sharded, _ = run(scene, 300, 100, str(tmp_path))
    check_same_tracks(single, sharded, scorer, scene)


@pytest.mark.slow
def test_a_damaged_stored_segment_is_computed_again_and_the_others_of_the_job_are_joined(ray_local, tmp_path):
    scene = MultiAnimalScene(width=80, height=64)
    model, scorer = untrained_model(str(tmp_path), scene)
    videos = [render_video(f"{tmp_path}/videos/arena{i}.mp4", scene, 32, gop=8).uri for i in range(2)]
    out = f"{tmp_path}/sharded"
    argv = ["infer", *videos, "--model", model, "--out", out, "--workers", "2", "--segment-frames", "16",
            "--small-video-mb", "0", "--quiet"]
    assert main(argv) == 0
    folder = f"{tmp_path.as_posix().lstrip('/')}/videos"
    tables = [f"{out}/{folder}/arena{i}{scorer}_el.h5" for i in range(2)]
    before = [read_tracks(table).poses for table in tables]
    # arena0's second stored segment (frames 16-32): a frame's detection count no longer adds up.
    (damaged,) = [uri for uri in storage.list_files(f"{out}/.posecluster", suffixes=(".npz",))
                  if uri.endswith("000000016-000000032.npz") and json.loads(np.load(uri)["meta"].tobytes())[
                      "video_uri"].endswith("arena0.mp4")]
    with np.load(damaged, allow_pickle=False) as data:
        arrays = {name: data[name] for name in data.files}
    arrays["counts"][2] += 1
    with open(damaged, "wb") as handle:
        np.savez(handle, **arrays)
    for table in tables:  # both joined again from their stored segments
        storage.remove(table)
    # The damaged piece's key is intact: reused, it would fail every rerun. The join drops the video's
    # pieces and the job computes them again, once; the other video is joined from its own.
    assert main(argv) == 0
    summary = json.loads(storage.read_bytes(f"{out}/posecluster-manifest.json"))
    assert summary["frames_computed"] == 32 and summary["segments_cached"] == 2
    for table, poses in zip(tables, before):
        np.testing.assert_array_equal(read_tracks(table).poses, poses)
    with np.load(damaged, allow_pickle=False) as data:  # written anew, whole
        assert data["counts"][2] == arrays["counts"][2] - 1


# The containers whose numbering is hardest, and those an archive job plans from their index (frame
# ranges, spans between cues, one pass): tests/infer/test_frame_numbering.py's archive leg.
CONFORMANCE = ["h264_bf_avi", "editlist_mp4", "hevc_mp4", "rotated_mp4", "truncated_mp4", "trimmed_bf_mp4",
               "reset_ts", "mpeg2_bf_mpg", "nocues_mkv", "wrap_ts", "h264_open_mkv", "vfr_mkv"]


# No frame index: read in one pass (h264_open_mkv's spans cannot be read on their own: an open GOP at a cue).
ONE_PASS = ("reset_ts", "mpeg2_bf_mpg", "nocues_mkv", "wrap_ts", "h264_open_mkv")


@pytest.mark.slow
def test_on_every_container_of_the_conformance_matrix_the_sharded_tracks_are_the_single_process_ones(
        ray_local, matrix, tmp_path):
    from posecluster.data.video import probe

    scene = MultiAnimalScene(width=80, height=64)
    model, scorer = untrained_model(str(tmp_path), scene)
    videos = [matrix[name] for name in CONFORMANCE]
    # analyze exits 1 where frames are missing (truncated_mp4 lists 48 frames and holds 19): by design
    assert main(["analyze", *videos, "--model", model, "--out", f"{tmp_path}/single", "--quiet"]) == 1
    assert main(["infer", *videos, "--model", model, "--out", f"{tmp_path}/sharded", "--workers", "2",
                 "--segment-frames", "12", "--small-video-mb", "0", "--quiet"]) == 0
    for name, video in zip(CONFORMANCE, videos):
        relative = f"{storage.parent(video).lstrip('/')}/{name}{scorer}_el.h5"
        one, many = read_tracks(f"{tmp_path}/single/{relative}"), read_tracks(f"{tmp_path}/sharded/{relative}")
        assert len(one.poses) == probe(video).frame_count, name  # a row for every frame the container lists
        assert one.animals_present().any(), f"{name}: nothing tracked, nothing compared"
        np.testing.assert_array_equal(many.poses, one.poses, err_msg=name)  # same identities, same rows
        np.testing.assert_array_equal(many.unique_poses, one.unique_poses, err_msg=name)
        pieces = json.loads(storage.read_bytes(f"{tmp_path}/sharded/{relative[: -len('.h5')]}_meta.json"))["segments"]
        if name == "vfr_mkv":  # spans between cues, each piece linked from the span before it
            assert len(pieces) > 1 and all(piece.startswith("s") for piece in pieces), pieces
        elif name in ONE_PASS:  # windows of one pass, each linked from the last frames of the one before
            assert len(pieces) == -(-len(one.poses) // 12), (name, pieces)
