"""The calibrated int8 version a trained model carries: backbone int8, heads fp32, poses as fp32's, and
pinned by the model file's hash like the weights."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace

import av
import numpy as np
import onnx
import pytest

from posecluster import storage
from posecluster.cli.main import main
from posecluster.data.formats.poses import read_pose_table
from posecluster.data.video import DecodeReport, probe, read_frames
from posecluster.infer.analyze import analyze_video
from posecluster.infer.ensemble import pinned_predictor
from posecluster.infer.predictor import Predictor
from posecluster.model.artifact import ModelMismatchError, REDUCED_KEY, from_bytes, load_model, load_pinned, \
    model_from_bytes, pin_model, to_bytes
from posecluster.model.export import ExportOptions, export_model
from posecluster.model.precision import CpuCapability, probe_cpu

VNNI = CpuCapability(isa="AVX512", bf16=True, int8=True)


def _initializers(graph) -> dict:
    return {init.name: init for init in graph.initializer}


def test_training_leaves_a_calibrated_int8_version_with_its_checks(trained_run):
    reduced = load_model(trained_run[0]).reduced
    assert reduced is not None and reduced.int8_sha256 == hashlib.sha256(reduced.int8_onnx).hexdigest()
    assert set(reduced.checks) == {"bf16", "fp16", "int8"} and all(c.passed for c in reduced.checks.values())
    # Each check names the arithmetic it ran; without a GPU the autocast paths are emulated by CPU autocast.
    assert reduced.checks["fp16"].arithmetic.startswith("cuda autocast float16 emulated on cpu")
    assert reduced.checks["bf16"].arithmetic == "cpu autocast bfloat16, emulating cuda autocast"
    assert reduced.checks["int8"].arithmetic.startswith("int8 graph")
    # The CPU's paths were timed against fp32 on the same frames, rechecks included (auto skips one that
    # was not faster); fp16, a GPU's arithmetic emulated here, was not.
    here = f"cpu: {probe_cpu().describe()}"  # the CPU's instructions decide a path's speed
    assert reduced.checks["int8"].speedup > 0 and reduced.checks["int8"].timed_on == here
    assert reduced.checks["bf16"].speedup > 0 and reduced.checks["bf16"].timed_on == here
    assert reduced.checks["fp16"].speedup is None and reduced.checks["fp16"].timed_on == ""
    assert f"fp32's speed on {here}" in reduced.checks["int8"].describe()
    assert reduced.calibration["frames"] > 0 and reduced.calibration["method"] == "MinMax"


def test_the_checks_cover_held_out_labeled_images_and_the_projects_video_frames(trained_run, synthetic_project):
    # A less trained model sits between two peaks more often on video frames than on labeled ones; auto
    # decides on both (the synthetic project: 8 test images, one 64-frame video, 100 frames asked for).
    reduced = load_model(trained_run[0]).reduced
    split = json.loads(storage.read_bytes(storage.join(trained_run[0], "split.json")))
    with av.open(synthetic_project.videos[0].uri) as container:
        video_frames = sum(1 for _ in container.decode(video=0))
    assert video_frames < 100
    assert all(check.images == len(split["test_images"]) + video_frames for check in reduced.checks.values())


def test_the_int8_graph_quantises_the_backbone_and_keeps_the_heads_fp32(trained_run):
    graph = onnx.load_from_string(load_model(trained_run[0]).reduced.int8_onnx).graph
    initializers = _initializers(graph)
    produced_by = {out: node for node in graph.node for out in node.output}
    convolutions = [n for n in graph.node if n.op_type == "Conv"]
    heads = [n for n in graph.node if n.op_type == "ConvTranspose"]
    assert len(heads) == 2 and convolutions
    for conv in convolutions:  # every backbone weight arrives through DequantizeLinear from int8
        source = produced_by[conv.input[1]]
        assert source.op_type == "DequantizeLinear"
        assert initializers[source.input[0]].data_type == onnx.TensorProto.INT8
    for head in heads:  # the heads' weights are plain float32 initializers
        assert head.input[1] in initializers and initializers[head.input[1]].data_type == onnx.TensorProto.FLOAT
        assert produced_by[head.input[0]].op_type == "DequantizeLinear"  # fp32 features in
    assert all(o.type.tensor_type.elem_type == onnx.TensorProto.FLOAT for o in graph.output)


def test_int8_poses_on_video_frames_match_fp32(trained_run, synthetic_project):
    trained = load_model(trained_run[0])
    frames = np.stack([rgb for _, rgb in read_frames(probe(synthetic_project.videos[0].uri), 0, 16, DecodeReport())])
    fp32 = Predictor(trained, trained.config.infer.model_copy(update={"mixed_precision": "off"}), cpu=VNNI)
    int8 = Predictor(trained, cpu=VNNI)
    assert int8.precision == "int8" and int8.int8 is not None
    a, b = fp32.predict(frames), int8.predict(frames)
    assert b.dtype == np.float64 and np.isfinite(b).all()
    distance = np.linalg.norm(a[..., :2] - b[..., :2], axis=-1)
    assert distance.mean() < 1.0, distance  # a tiny network at 96x80: one cell is 8 px
    assert np.abs(a[..., 2] - b[..., 2]).max() < 0.1


def test_calibration_measures_a_recheck_margin_for_each_reduced_path_and_counts_its_rechecks(trained_run):
    reduced = load_model(trained_run[0]).reduced
    assert set(reduced.recheck_margins) == {"bf16", "fp16", "int8"}
    assert all(margin > 0 for margin in reduced.recheck_margins.values())
    assert reduced.recheck_margins["bf16"] < reduced.recheck_margins["int8"]  # bf16 rounds less than int8
    assert reduced.recheck_margins["fp16"] < reduced.recheck_margins["bf16"]  # 10 mantissa bits against 7
    assert all(0 <= check.rechecked_share <= 1 for check in reduced.checks.values())
    assert reduced.describe()["recheck_margins"] == reduced.recheck_margins


def _with_margins(trained, **margins: float):
    return replace(trained, reduced=replace(trained.reduced, recheck_margins=margins))


@pytest.fixture(scope="module")
def close_calls(trained_run, synthetic_project):
    """16 video frames, their poses by fp32, bf16 and raw int8 (no rechecks), and a margin that makes
    some but not all of them close calls under int8 (from a brute-force search of the raw maps)."""
    trained = load_model(trained_run[0])
    frames = np.stack([rgb for _, rgb in read_frames(probe(synthetic_project.videos[0].uri), 0, 16, DecodeReport())])
    unchecked = _with_margins(trained)

    def poses(setting):
        return Predictor(unchecked, trained.config.infer.model_copy(update={"mixed_precision": setting}), cpu=VNNI).predict(frames)

    raw = Predictor(unchecked, trained.config.infer.model_copy(update={"mixed_precision": "int8"}), cpu=VNNI)
    assert raw.precision == "int8" and raw.recheck_chain == []
    out = raw.int8(raw.prepare(frames)[0])
    maps, offsets = out["scoremap"].numpy(), out["locref"].numpy()
    stdev = trained.config.model.target.locref_stdev
    pcutoff = trained.config.project.pcutoff
    closest = np.array([min(min(_brute_force_margin(part), _brute_force_neighbour_margin(part, offsets[f, 2 * k:2 * k + 2], raw.model.stride, stdev),
                                abs(float(part.max()) - np.log(pcutoff / (1 - pcutoff))))  # the p-cutoff decision
                            for k, part in enumerate(frame)) for f, frame in enumerate(maps)])
    margin = float(np.median(closest[np.isfinite(closest)]))
    return trained, frames, {"fp32": poses("off"), "bf16": poses("on"), "int8": poses("int8")}, closest < margin, margin


def test_frames_with_a_close_rival_peak_are_predicted_again_in_fp32_and_the_others_are_not(close_calls):
    trained, frames, expected, close, margin = close_calls
    guarded = Predictor(_with_margins(trained, int8=margin), cpu=VNNI)  # no bf16 margin: straight to fp32
    assert guarded.recheck_chain == [(margin, "fp32")]
    poses = guarded.predict(frames)
    assert 0 < close.sum() < len(frames) and guarded.rechecked_frames == close.sum()
    np.testing.assert_allclose(poses[close], expected["fp32"][close], atol=1e-4)
    np.testing.assert_array_equal(poses[~close], expected["int8"][~close])


def test_int8_close_calls_go_through_bf16_and_only_bf16_close_calls_reach_fp32(close_calls):
    trained, frames, expected, close, margin = close_calls
    sure_in_bf16 = Predictor(_with_margins(trained, int8=margin, bf16=0.0), cpu=VNNI)
    assert sure_in_bf16.recheck_chain == [(margin, "bf16"), (0.0, "fp32")]
    poses = sure_in_bf16.predict(frames)
    np.testing.assert_allclose(poses[close], expected["bf16"][close], atol=0.05)  # bf16's own rounding
    np.testing.assert_array_equal(poses[~close], expected["int8"][~close])
    close_in_bf16 = Predictor(_with_margins(trained, int8=margin, bf16=1e9), cpu=VNNI).predict(frames)
    np.testing.assert_allclose(close_in_bf16[close], expected["fp32"][close], atol=1e-4)
    # A CPU without fast bf16 sends int8's close calls straight to fp32.
    no_bf16 = Predictor(_with_margins(trained, int8=margin, bf16=0.0), cpu=CpuCapability(isa="AVX512", int8=True))
    assert no_bf16.recheck_chain == [(margin, "fp32")]


def _brute_force_margin(logits: np.ndarray) -> float:
    """Top logit minus the best 3x3 local maximum more than one cell (Chebyshev) from the top cell."""
    height, width = logits.shape
    top = np.unravel_index(np.argmax(logits), logits.shape)
    padded = np.pad(logits, 1, constant_values=-np.inf)
    best = -np.inf
    for y in range(height):
        for x in range(width):
            if max(abs(y - top[0]), abs(x - top[1])) > 1 and logits[y, x] >= padded[y:y + 3, x:x + 3].max():
                best = max(best, logits[y, x])
    return float(logits[top] - best)


def _brute_force_neighbour_margin(logits: np.ndarray, offsets: np.ndarray, stride: float, stdev: float) -> float:
    """Top logit minus the best of the top cell's 8 neighbours whose decode (cell centre + offset) lies
    more than half a cell from the top's (issue 30: such a neighbour can take the argmax and move the keypoint)."""
    top = np.unravel_index(np.argmax(logits), logits.shape)

    def decoded(y, x):
        return np.array([x * stride + offsets[0, y, x] * stdev, y * stride + offsets[1, y, x] * stdev])

    best = -np.inf
    for y in range(top[0] - 1, top[0] + 2):
        for x in range(top[1] - 1, top[1] + 2):
            if (y, x) != top and 0 <= y < logits.shape[0] and 0 <= x < logits.shape[1] \
                    and np.linalg.norm(decoded(y, x) - decoded(*top)) > stride / 2:
                best = max(best, logits[y, x])
    return float(logits[top] - best)


def test_a_model_calibrated_before_recheck_margins_runs_fp32_under_auto_and_says_to_recalibrate(
        trained_run, synthetic_project, tmp_path):
    trained = load_model(trained_run[0])
    old = _with_margins(trained)  # its checks passed, but were made with rechecks it no longer has
    predictor = Predictor(old, cpu=VNNI)
    assert predictor.precision == "fp32" and predictor.int8 is None and predictor.recheck_chain == []
    record = predictor.precision_record()
    assert record["path"] == "fp32" and "calibrated before recheck margins existed" in record["reason"]
    assert "posecluster calibrate RUN" in record["reason"] and "warning" not in record
    # Through analyze: the poses are fp32's (predicted independently), and _meta.json says why.
    frames = np.stack([rgb for _, rgb in read_frames(probe(synthetic_project.videos[0].uri), 0, 8, DecodeReport())])
    fp32 = Predictor(trained, trained.config.infer.model_copy(update={"mixed_precision": "off"}), cpu=VNNI).predict(frames)
    analysis = analyze_video(predictor, synthetic_project.videos[0].uri, str(tmp_path), progress=False, stop=8)
    meta = json.loads(storage.read_bytes(analysis.outputs["h5"].removesuffix(".h5") + "_meta.json"))["precision"]
    assert meta["path"] == "fp32" and "calibrated before recheck margins existed" in meta["reason"]
    assert "video_check" not in meta  # nothing reduced ran to be checked
    np.testing.assert_allclose(read_pose_table(analysis.outputs["h5"]).to_numpy().reshape(fp32.shape), fp32, atol=1e-4)


@pytest.mark.parametrize("setting, path", [("int8", "int8"), ("on", "bf16")])
def test_a_forced_reduced_path_on_a_model_without_recheck_margins_runs_and_warns_that_nothing_is_rechecked(
        trained_run, caplog, setting, path):
    trained = load_model(trained_run[0])
    with caplog.at_level("WARNING", logger="posecluster.infer.predictor"):
        forced = Predictor(_with_margins(trained), trained.config.infer.model_copy(update={"mixed_precision": setting}),
                           cpu=VNNI)
    assert forced.precision == path and forced.recheck_chain == []
    assert any("without rechecks" in r.getMessage() and "posecluster calibrate" in r.getMessage()
               for r in caplog.records if r.levelname == "WARNING")
    assert "without rechecks" in forced.precision_record()["warning"]
    # With its margins, the same request is rechecked and warns of nothing.
    caplog.clear()
    with caplog.at_level("WARNING", logger="posecluster.infer.predictor"):
        rechecked = Predictor(trained, trained.config.infer.model_copy(update={"mixed_precision": setting}), cpu=VNNI)
    assert rechecked.recheck_chain and "warning" not in rechecked.precision_record()
    assert not [r for r in caplog.records if r.levelname == "WARNING"]


def test_a_recalibrated_model_is_refused_by_a_worker_pinned_to_the_old_bytes(trained_run, tmp_path, capsys):
    run = str(tmp_path / "run")
    for name in ("model.pt", "split.json"):
        storage.atomic_write_bytes(f"{run}/{name}", storage.read_bytes(f"{trained_run[0]}/{name}"))
    pinned, trained = pin_model(run)
    assert pinned_predictor(pinned).trained.reduced.int8_sha256 == trained.reduced.int8_sha256
    assert main(["calibrate", run, "--images", "6"]) == 0  # another calibration: other int8 bytes
    printed = capsys.readouterr().out
    assert "int8 vs fp32" in printed and "bf16 vs fp32" in printed
    recalibrated = load_model(run)
    assert recalibrated.reduced.calibration["frames"] == 6
    assert recalibrated.reduced.int8_sha256 != trained.reduced.int8_sha256
    assert recalibrated.state_dict.keys() == trained.state_dict.keys()  # the weights are untouched
    with pytest.raises(ModelMismatchError, match="changed since the job started"):
        pinned_predictor(pinned)  # what an archive worker calls when it starts
    with pytest.raises(ModelMismatchError):
        load_pinned(pinned)


def test_an_int8_graph_that_no_longer_matches_its_recorded_hash_is_refused(trained_run, tmp_path):
    payload = from_bytes(storage.read_bytes(f"{trained_run[0]}/model.pt"), "model.pt")
    graph = bytearray(payload[REDUCED_KEY]["int8_onnx"])
    graph[-1] ^= 0xFF
    payload[REDUCED_KEY]["int8_onnx"] = bytes(graph)
    with pytest.raises(ValueError, match="does not match its recorded sha256"):
        model_from_bytes(to_bytes(payload), f"{tmp_path}/model.pt")


@pytest.mark.parametrize("margins", [{"int8": float("nan")}, {"int8": -1.0}, {"bf16": float("inf")}, {"fp32": 0.5}])
def test_a_model_file_with_a_crafted_recheck_margin_is_refused(trained_run, tmp_path, margins):
    payload = from_bytes(storage.read_bytes(f"{trained_run[0]}/model.pt"), "model.pt")
    payload[REDUCED_KEY]["recheck_margins"] = margins
    with pytest.raises(ValueError, match="recheck margin"):
        model_from_bytes(to_bytes(payload), f"{tmp_path}/model.pt")


def test_export_offers_the_calibrated_graph_byte_for_byte(trained_run, tmp_path):
    trained = load_model(trained_run[0])
    report = export_model(trained_run[0], str(tmp_path), ExportOptions(height=80, width=96))
    assert set(report.files) == {"torchscript", "onnx", "onnx-int8", "metadata"}
    assert storage.read_bytes(report.files["onnx-int8"]) == trained.reduced.int8_onnx
    meta = json.loads(storage.read_bytes(report.files["metadata"]))
    assert meta["int8"]["int8_sha256"] == trained.reduced.int8_sha256
    assert meta["int8"]["checks"]["int8"]["passed"]
    assert meta["int8"]["recheck_margins"] == trained.reduced.recheck_margins and "rechecks" in meta["int8"]
