"""The trained detector as TorchScript and ONNX, each checked against the PyTorch model, and the
calibrated int8 ONNX graph a model carries (model.quantize), exactly the bytes analyze runs.

Exported graph: images (B, 3, H, W) float RGB in [0, 1] -> score maps (B, K, H/8, W/8) logits and, when
the model has them, location refinement (B, 2K, H/8, W/8). Normalisation is inside the graph; resizing by
global_scale and decoding are left to the caller, and export.json gives both as formulas that reproduce
`analyze` exactly.
"""

from __future__ import annotations

import io
import json
import warnings
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from torch import nn

from posecluster import storage
from posecluster.model.pose_model import PoseModel
from posecluster.model.artifact import TrainedModel, load_model, refuse_multianimal

FORMATS = ("torchscript", "onnx", "onnx-int8")
FILE_NAMES = {"torchscript": "model.torchscript.pt", "onnx": "model.onnx", "onnx-int8": "model.int8.onnx"}


class ExportedDetector(nn.Module):
    """Tuple outputs (tracing and ONNX want tensors, not dicts)."""

    def __init__(self, model: PoseModel):
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor):
        out = self.model(images)
        return (out["scoremap"], out["locref"]) if "locref" in out else (out["scoremap"],)


@dataclass(frozen=True)
class ExportOptions:
    # None: torchscript and onnx, plus onnx-int8 when the model carries a calibrated version.
    formats: tuple[str, ...] | None = None
    height: int = 256  # example input size; both exports accept other sizes and batch sizes
    width: int = 256
    opset: int = 18
    tolerance: float = 1e-3  # max |difference| allowed against PyTorch, relative to the output's range


@dataclass
class ExportReport:
    files: dict[str, str] = field(default_factory=dict)
    max_abs_difference: dict[str, float] = field(default_factory=dict)
    output_range: float = 0.0


def build_detector(trained: TrainedModel) -> tuple[ExportedDetector, dict]:
    model = PoseModel.for_inference(trained.config.model, len(trained.bodyparts), trained.state_dict)
    meta = {
        "model": trained.uri, "model_identity": trained.identity, "scorer": trained.scorer,
        "bodyparts": trained.bodyparts, "stride": model.stride, "input": "images (B,3,H,W) float RGB in [0,1]",
        "outputs": ["scoremap"] + (["locref"] if model.locref_head is not None else []),
        "locref_stdev": trained.config.model.target.locref_stdev, "global_scale": trained.config.model.global_scale,
        **decoding_recipe(),
    }
    return ExportedDetector(model), meta


def decoding_recipe() -> dict:
    """How `analyze` turns a frame into poses, as Python expressions over the names they mention, so any
    runtime can follow it to the same numbers (H, W: the frame's size; scale: global_scale; k: body part)."""
    return {
        "preprocess": {
            "resize_to": {"height": "max(1, round(H * scale))", "width": "max(1, round(W * scale))"},
            "resize_method": "bilinear, half-pixel centres (torch.nn.functional.interpolate(mode='bilinear', "
                             "align_corners=False, antialias=scale < 1)); no resize when the size is unchanged",
            "round": "Python's round: halves to even",
        },
        "decode": {
            "peak": "(iy, ix) = the first maximum of scoremap[b, k] in row-major order",
            "x": "((ix + 0.5) * stride + locref[b, 2 * k, iy, ix] * locref_stdev) * W / width - 0.5",
            "y": "((iy + 0.5) * stride + locref[b, 2 * k + 1, iy, ix] * locref_stdev) * H / height - 0.5",
            "likelihood": "1 / (1 + exp(-scoremap[b, k, iy, ix]))",
            "coordinates": "DeepLabCut's pixel coordinates of the original frame: the centre of the top-left "
                           "pixel is (0, 0)",
        },
    }


def _check_inputs(options: ExportOptions) -> list[torch.Tensor]:
    """Two batches unlike the example (other batch size and size), so the check covers dynamic axes."""
    generator = torch.Generator().manual_seed(0)
    return [torch.rand(1, 3, options.height, options.width, generator=generator),
            torch.rand(3, 3, options.height + 16, options.width - 16, generator=generator)]


def _to_torchscript(detector: ExportedDetector, example: torch.Tensor) -> tuple[bytes, callable]:
    with torch.no_grad(), warnings.catch_warnings():
        # TorchScript is deprecated upstream in favour of torch.export, but it is what C++/LibTorch and
        # many deployment tools still load; the warning is not actionable for our users.
        warnings.simplefilter("ignore", FutureWarning)
        traced = torch.jit.trace(detector, example, check_trace=False)
        buffer = io.BytesIO()
        torch.jit.save(traced, buffer)
        loaded = torch.jit.load(io.BytesIO(buffer.getvalue()))
    return buffer.getvalue(), lambda x: [t.detach().numpy() for t in loaded(x)]


def onnx_graph(detector: ExportedDetector, example: torch.Tensor, outputs: list[str], opset: int = 18) -> bytes:
    """The detector as an ONNX graph with dynamic batch and image size (input "images")."""
    buffer = io.BytesIO()
    axes = {"images": {0: "batch", 2: "height", 3: "width"}}
    axes.update({name: {0: "batch", 2: "map_height", 3: "map_width"} for name in outputs})
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", (FutureWarning, DeprecationWarning))
        torch.onnx.export(detector, (example,), buffer, input_names=["images"], output_names=outputs,
                          dynamic_axes=axes, opset_version=opset, dynamo=False)
    return buffer.getvalue()


def _onnx_runner(blob: bytes) -> callable:
    import onnxruntime

    session = onnxruntime.InferenceSession(blob, providers=["CPUExecutionProvider"])
    return lambda x: session.run(None, {"images": x.numpy()})


def _to_onnx(detector: ExportedDetector, example: torch.Tensor, outputs: list[str], opset: int) -> tuple[bytes, callable]:
    blob = onnx_graph(detector, example, outputs, opset)
    return blob, _onnx_runner(blob)


def _int8_graph(trained: TrainedModel) -> bytes:
    """The calibrated graph, refused when the model has none or its poses strayed from fp32's."""
    reduced = trained.reduced
    if reduced is None or not reduced.int8_onnx:
        raise ValueError(f"{trained.uri}: no calibrated int8 version to export; run `posecluster calibrate` first")
    check = reduced.checks.get("int8")
    if check is not None and not check.passed:
        raise RuntimeError(f"{trained.uri}: the int8 version's poses differ from fp32's ({check.describe()}); "
                           f"not written")
    return reduced.int8_onnx


def export_model(run_uri: str, out_folder: str, options: ExportOptions = ExportOptions()) -> ExportReport:
    trained = load_model(run_uri)
    refuse_multianimal(trained, "export (TorchScript/ONNX/int8)")
    has_int8 = trained.reduced is not None and bool(trained.reduced.int8_onnx)
    formats = options.formats or ("torchscript", "onnx", *(("onnx-int8",) if has_int8 else ()))
    unknown = set(formats) - set(FORMATS)
    if unknown:
        raise ValueError(f"unknown export format(s) {sorted(unknown)}; choose from {FORMATS}")
    detector, meta = build_detector(trained)
    example = torch.rand(2, 3, options.height, options.width, generator=torch.Generator().manual_seed(1))
    report = ExportReport()
    checks = _check_inputs(options)
    with torch.no_grad():
        expected = [[t.numpy() for t in detector(x)] for x in checks]
    report.output_range = float(max(np.ptp(o) for outs in expected for o in outs))
    for fmt in formats:
        if fmt == "torchscript":
            blob, run = _to_torchscript(detector, example)
        elif fmt == "onnx":
            blob, run = _to_onnx(detector, example, meta["outputs"], options.opset)
        else:
            blob = _int8_graph(trained)
            run = _onnx_runner(blob)
        difference = max(float(np.max(np.abs(got - want)))
                         for x, outs in zip(checks, expected) for got, want in zip(run(x), outs))
        report.max_abs_difference[fmt] = difference
        # int8 differs from fp32 by design: its check is the pose agreement on labeled frames, recorded
        # when it was calibrated (meta["int8"]), not a float tolerance on random inputs.
        if fmt != "onnx-int8" and difference > options.tolerance * max(report.output_range, 1.0):
            raise RuntimeError(f"{fmt} export disagrees with PyTorch: max |difference| {difference:.3g} "
                               f"(output range {report.output_range:.3g}); not written")
        uri = storage.join(out_folder, FILE_NAMES[fmt])
        storage.atomic_write_bytes(uri, blob)
        report.files[fmt] = uri
    if "onnx-int8" in formats:
        # Its checks were made with posecluster's rechecks, which a runtime running the graph alone lacks.
        meta["int8"] = {**trained.reduced.describe(), "rechecks": (
            "the checks include posecluster's rechecks: a frame whose score map for some body part has a rival "
            "peak (a 3x3 local maximum more than one cell from the top) within recheck_margins['int8'] logits "
            "of the top one is predicted again in bf16 or fp32; model.int8.onnx alone does not do this")}
    meta["check"] = asdict(report)
    storage.atomic_write_bytes(storage.join(out_folder, "export.json"), json.dumps(meta, indent=1).encode())
    report.files["metadata"] = storage.join(out_folder, "export.json")
    return report
