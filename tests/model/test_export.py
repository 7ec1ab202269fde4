"""Exported detectors (TorchScript, ONNX) agree with the PyTorch model on real frames."""

from __future__ import annotations

import json

import numpy as np
import onnxruntime
import pytest
import torch

from posecluster.cli.main import main
from posecluster.data.video import DecodeReport, probe, read_frames
from posecluster.infer.predictor import Predictor
from posecluster.model.decode import decode
from posecluster.model.export import ExportOptions, export_model
from posecluster.train.checkpoint import load_model


def test_the_command_exports_every_format_the_model_has_with_its_check(trained_run, tmp_path, capsys):
    out = str(tmp_path / "export")
    assert main(["export", trained_run[0], "--out", out, "--height", "80", "--width", "96"]) == 0
    printed = capsys.readouterr().out
    assert "torchscript" in printed and "onnx" in printed and "model.int8.onnx" in printed
    meta = json.loads((tmp_path / "export" / "export.json").read_text())
    assert meta["outputs"] == ["scoremap", "locref"] and meta["stride"] == 8
    # The trained run carries a calibrated int8 version (training makes one), so it is exported too.
    assert set(meta["check"]["max_abs_difference"]) == {"torchscript", "onnx", "onnx-int8"}


def test_exported_models_predict_the_same_poses_as_pytorch_on_video_frames(trained_run, synthetic_project, tmp_path):
    report = export_model(trained_run[0], str(tmp_path), ExportOptions(height=80, width=96))
    trained = load_model(trained_run[0])
    predictor = Predictor(trained, trained.config.infer.model_copy(update={"mixed_precision": "off"}))
    info = probe(synthetic_project.videos[0].uri)
    frames = np.stack([rgb for _, rgb in read_frames(info, 0, 6, DecodeReport())])
    images = torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 255.0  # global_scale 1.0 in this model
    expected = predictor.predict(frames)

    scripted = torch.jit.load(report.files["torchscript"])
    session = onnxruntime.InferenceSession(report.files["onnx"], providers=["CPUExecutionProvider"])
    stdev = predictor.config.model.target.locref_stdev
    with torch.no_grad():
        outputs = {"torchscript": [t.detach() for t in scripted(images)],
                   "onnx": [torch.from_numpy(a) for a in session.run(None, {"images": images.numpy()})]}
        reference = predictor.model(images)
    for name, (scoremap, locref) in outputs.items():
        np.testing.assert_allclose(scoremap.numpy(), reference["scoremap"].numpy(), atol=1e-3, rtol=1e-4, err_msg=name)
        poses = decode(scoremap, locref, predictor.model.stride, stdev).numpy()
        poses[..., :2] -= 0.5  # edge -> pixel-index coordinates, as the predictor does
        np.testing.assert_allclose(poses, expected, atol=1e-2, err_msg=name)


def test_unknown_formats_are_refused(trained_run, tmp_path):
    with pytest.raises(ValueError, match="unknown export format"):
        export_model(trained_run[0], str(tmp_path), ExportOptions(formats=("tflite",)))


def test_following_export_json_literally_reproduces_analyze(trained_run, synthetic_project, tmp_path):
    """An ONNX runtime user with only export.json: resize, run, decode by its formulas -> analyze's poses."""
    import math

    import torch.nn.functional as F

    from posecluster.data.formats.poses import read_track
    from posecluster.infer.analyze import analyze_video
    from posecluster.train.checkpoint import save_model

    trained = load_model(trained_run[0])
    # A global_scale whose rounded sizes differ from the exact scale per axis (96x80 -> 67x56).
    rescaled = trained.config.with_overrides({"model": {"global_scale": 0.7}})
    run = str(tmp_path / "run")
    save_model(run, rescaled, trained.bodyparts, trained.state_dict)
    video = synthetic_project.videos[0].uri
    fp32 = rescaled.infer.model_copy(update={"mixed_precision": "off"})
    analysis = analyze_video(Predictor(load_model(run), fp32), video, str(tmp_path / "poses"), progress=False, stop=4)
    expected = read_track(analysis.outputs["h5"]).poses[:4]

    report = export_model(run, str(tmp_path / "export"), ExportOptions(formats=("onnx",), height=64, width=64))
    meta = json.loads((tmp_path / "export" / "export.json").read_text())
    session = onnxruntime.InferenceSession(report.files["onnx"], providers=["CPUExecutionProvider"])
    frames = np.stack([rgb for _, rgb in read_frames(probe(video), 0, 4, DecodeReport())])
    H, W = frames.shape[1:3]
    names = {"H": H, "W": W, "scale": meta["global_scale"], "max": max, "round": round}
    height = eval(meta["preprocess"]["resize_to"]["height"], {}, names)
    width = eval(meta["preprocess"]["resize_to"]["width"], {}, names)
    images = torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 255.0
    if (height, width) != (H, W):
        images = F.interpolate(images, size=(height, width), mode="bilinear", align_corners=False,
                               antialias=meta["global_scale"] < 1)
    scoremap, locref = session.run(None, {"images": images.numpy()})
    got = np.zeros_like(expected)
    for b in range(len(frames)):
        for k in range(len(meta["bodyparts"])):
            iy, ix = np.unravel_index(np.argmax(scoremap[b, k]), scoremap[b, k].shape)
            scope = {**names, "b": b, "k": k, "iy": iy, "ix": ix, "height": height, "width": width,
                     "stride": meta["stride"], "locref_stdev": meta["locref_stdev"], "scoremap": scoremap,
                     "locref": locref, "exp": math.exp}
            got[b, k] = [eval(meta["decode"][key], {}, scope) for key in ("x", "y", "likelihood")]
    np.testing.assert_allclose(got[..., :2], expected[..., :2], atol=0.01)
    np.testing.assert_allclose(got[..., 2], expected[..., 2], atol=1e-3)
