"""Through the CLI: where auto's reduced path leaves the tolerance on the video at hand, `analyze` and
`infer` predict the video in fp32 and their `_meta.json` says so (issue 30). The model is
tests/infer/test_verify.py's: the session's detector with a p-cutoff its int8 and fp32 likelihoods
straddle on a frame of the video, and recheck margins of zero (recorded, so auto takes int8, but never
close enough to predict a frame again). The oracle: fp32's poses of the same frames, one at a time."""

from __future__ import annotations

import json

import numpy as np
import pytest

from posecluster import storage
from posecluster.cli.main import main
from posecluster.data import synthetic
from posecluster.data.formats.poses import read_pose_table
from posecluster.data.video import DecodeReport, probe, read_frames
from posecluster.infer.naming import output_base
from posecluster.infer.predictor import Predictor
from posecluster.model.artifact import load_model, save_model
from posecluster.model.precision import probe_cpu
from tests.infer.test_verify import FRAMES, _flipping, _infer

# Every frame sampled, the probe two frames, ranges of any length checked (as test_verify's _infer).
CHECK_EVERY_FRAME = ["--set", "infer.batch_size=1", "--set", "infer.precision_probe_batches=2",
                     "--set", "infer.precision_sample_every=1", "--set", "infer.precision_sample_share=1000",
                     "--set", "infer.precision_min_speedup=0", "--set", "infer.precision_min_range_frames=0"]


@pytest.fixture(scope="module")
def flipping_model(trained_run, tmp_path_factory):
    """(model folder, a FRAMES-frame video of the project's scene, fp32's poses of its frames)."""
    cpu = probe_cpu()
    if not cpu.int8:
        pytest.skip(f"this CPU ({cpu.describe()}) has no int8 path for auto to take")
    root = tmp_path_factory.mktemp("flipping")
    # Short, so that the CLI's whole-video runs stay cheap: the project's scene (conftest), FRAMES frames.
    video = synthetic.render_video(str(root / "videos" / "short.mp4"),
                                   synthetic.Scene(width=96, height=80, seed=3, body_length=0.4), FRAMES).uri
    trained = load_model(trained_run[0])
    fp32 = Predictor(trained, _infer(trained, mixed_precision="off"), cpu=cpu)
    exact = np.concatenate([fp32.predict(rgb[None]) for _, rgb in read_frames(probe(video), 0, FRAMES, DecodeReport())])
    flipping, _ = _flipping(trained, video, exact)
    folder = str(root / "run")
    save_model(folder, flipping.config, flipping.bodyparts, flipping.state_dict, reduced=flipping.reduced)
    return folder, video, exact


def _meta(video: str, out: str, model: str) -> tuple[dict, str]:
    base = output_base(video, out, load_model(model).scorer)
    return json.loads(storage.read_bytes(f"{base}_meta.json")), base


def _fell_back(check: dict, frames: int) -> None:
    """A check record that sent the whole range to fp32 because its poses left the tolerance (at the
    probe, or in the sample after int8's poses were handed on: then they were predicted again)."""
    assert check["candidate"] == "int8" and check["final_path"] == "fp32" and check["fell_back"]
    assert not check["sample_within_tolerance"] and "left the tolerance" in check["why"]
    assert not check["slower_than_fp32"] and not check["range_too_short"]
    assert check["frames_by_path"] == {"fp32": frames}
    if "repredicted_frames" in check:  # left in the sample: int8's poses handed on were predicted again
        assert check["repredicted_frames"] >= 1


def test_analyze_records_a_video_check_that_fell_back_to_fp32_and_writes_fp32s_poses(flipping_model, tmp_path):
    model, video, exact = flipping_model
    out = str(tmp_path / "poses")
    assert main(["analyze", video, "--model", model, "--out", out, "--quiet", *CHECK_EVERY_FRAME]) == 0
    meta, base = _meta(video, out, model)
    precision = meta["precision"]
    assert precision["requested"] == "auto" and precision["path"] == "int8"  # the candidate auto chose
    assert precision["fell_back"] and precision["path_that_ran"] == "fp32"
    _fell_back(precision["video_check"], meta["frames"])
    table = read_pose_table(f"{base}.h5").to_numpy().reshape(meta["frames"], -1, 3)
    np.testing.assert_allclose(table, exact, atol=1e-4)  # none of int8's poses survived


@pytest.mark.slow  # Ray's workers start for it: 12 s (+6 s for a session's Ray) on the shared 2-core machine
def test_infer_records_each_videos_check_that_fell_back_to_fp32(flipping_model, ray_local, tmp_path):
    model, video, exact = flipping_model
    out = str(tmp_path / "archive")
    assert main(["infer", video, "--model", model, "--out", out, "--workers", "1", "--quiet", *CHECK_EVERY_FRAME]) == 0
    meta, base = _meta(video, out, model)
    precision = meta["precision"]
    assert precision["fell_back"] and precision["frames_by_path"] == {"fp32": meta["frames"]}
    (check,) = precision["video_checks"]  # one range: the video is one segment
    _fell_back(check, meta["frames"])
    table = read_pose_table(f"{base}.h5").to_numpy().reshape(meta["frames"], -1, 3)
    np.testing.assert_allclose(table, exact, atol=1e-4)
