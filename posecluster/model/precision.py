"""Which arithmetic a forward pass uses: what the hardware runs fast, and what keeps the poses.

Paths:
  fp32   plain float32.
  bf16   torch.autocast: convolutions in bfloat16 (CPU with AVX-512 BF16/AMX, or CUDA), the heads,
         the loss and decoding in fp32 (PoseModel.forward), so argmax and likelihood are fp32's.
  fp16   the same on CUDA devices without bf16 (training needs a GradScaler there).
  int8   the backbone quantised to int8 after training and calibrated on the project's labeled frames
         (model.quantize, ONNX Runtime), heads fp32; on CPUs with int8 dot products (VNNI, AMX).

A reduced path's own error is small (a tenth of a logit) but can decide between two near-equal peaks,
moving a keypoint by the distance between them, or move the argmax to a neighbouring cell whose offset
points elsewhere. So a reduced path (CPU or GPU) predicts again, more exactly, every frame where some body
part's map has a rival peak, or a neighbour of the top cell that decodes more than NEIGHBOUR_MOVE_CELLS of a cell away,
within the path's recheck margin of the top: twice its measured logit error near the peaks
(`recheck_margin`, model.decode.rival_margins and shifted_cell_margins). int8's close calls go to bf16
where the CPU runs it fast, and bf16's to fp32 (`recheck_chain`). Where the choice was close the poses
are fp32's.

`auto` picks the fastest path whose poses match fp32 on this model: a model carries the agreement its
reduced-precision versions showed with fp32 on its held-out labeled frames and on frames of its project's
videos (ReducedPrecision.checks, each naming the arithmetic it ran: autocast on CUDA, or emulated on CPU
by CPU autocast in the same dtype); a path whose check failed is never chosen by `auto`, on CPU or CUDA,
nor one that, timed on those frames with its rechecks, was not faster than fp32 on the CPU it will run on
(Agreement.speedup: a model whose rechecks redo most frames is fastest in fp32), nor one without a recorded
recheck margin (a model calibrated before margins existed: recalibrate it). That choice is a candidate: infer.verify then times it against fp32 on the video's first frames (rechecks
included) and checks it on a sample of the video's frames as the job runs, falling back to fp32.
The CPU's abilities come from `probe_cpu`, or from a CpuCapability handed in (the seam tests use to play
a CPU without bf16); CUDA's bf16 support likewise (`cuda_bf16`).
"""

from __future__ import annotations

import contextlib
import hashlib
from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from posecluster.errors import InputError
from posecluster.model.half_emulation import EmulatedCudaHalf

# What "the same poses" means (issue 22): mean |reduced - fp32| over every (frame, body part), and the
# share of (frame, body part) whose p-cutoff decision flips.
MAX_MEAN_PX = 0.5
MAX_FLIP_SHARE = 0.005
PATHS = ("fp32", "bf16", "fp16", "int8")
REDUCED_PATHS = PATHS[1:]  # the paths that carry recheck margins
# Where a reduced path's logit error is measured for its recheck margin: cells within this many logits of
# their map's peak (the cells that could win), at this percentile.
COMPETING_LOGITS = 3.0
ERROR_PERCENTILE = 99.0
# A neighbour of the top cell is a close call only where taking it would move the keypoint by more than
# this share of a cell (the stride): inside a trained peak neighbouring offsets point at nearly the same
# place, and a move under half a cell is the size of the refinement's own error. At 1 px, ResNet-50s
# trained 20-40 epochs on openfield had 75-90% of video frames "close" under int8 (every one predicted
# again, int8 0.7-0.95x fp32's speed); at half a cell 12-17% (40 frames of the openfield video).
NEIGHBOUR_MOVE_CELLS = 0.5


@dataclass(frozen=True)
class CpuCapability:
    """The CPU's vector instructions that matter for the precision paths."""

    isa: str = "DEFAULT"  # torch.backends.cpu.get_cpu_capability(): DEFAULT, AVX2, AVX512, ...
    bf16: bool = False  # native bf16 dot products (AVX-512 BF16, AMX-BF16)
    int8: bool = False  # int8 dot products (AVX-512 VNNI, AVX-VNNI, AMX-INT8)
    amx: bool = False

    def describe(self) -> str:
        found = [name for name, present in (("bf16", self.bf16), ("int8", self.int8), ("amx", self.amx)) if present]
        return f"{self.isa}" + (f" + {'/'.join(found)}" if found else " (no bf16/int8 instructions)")


def probe_cpu() -> CpuCapability:
    """What this process's CPU can do, as PyTorch's cpuinfo sees it (portable: no /proc parsing)."""

    def says(name: str) -> bool:
        probe = getattr(torch.cpu, name, None)
        try:
            return bool(probe()) if probe is not None else False
        except Exception:  # an old torch or an exotic platform: assume the instructions are absent
            return False

    return CpuCapability(isa=torch.backends.cpu.get_cpu_capability(), bf16=says("_is_avx512_bf16_supported"),
                         int8=says("_is_vnni_supported"), amx=says("_is_amx_tile_supported"))


@dataclass(frozen=True)
class Agreement:
    """How close a reduced-precision path's poses are to fp32's on the same images."""

    images: int
    mean_px: float  # mean Euclidean |reduced - fp32| over every (image, body part)
    max_px: float
    flip_share: float  # share of (image, body part) on the other side of the p-cutoff
    pcutoff: float
    rechecked_share: float = 0.0  # share of the images the path predicted again more exactly (its rechecks)
    # The arithmetic the check ran, e.g. "cpu autocast bfloat16" or "cpu autocast float16, emulating
    # cuda autocast" (a check made before this was recorded: "").
    arithmetic: str = ""
    # fp32's time per image over this path's (rechecks included), both timed at calibration where
    # `timed_on` says (timing_place: the CPU's abilities); None where not timed (a GPU path checked by
    # emulation on a CPU, an older model).
    speedup: float | None = None
    timed_on: str = ""

    @property
    def passed(self) -> bool:
        return self.mean_px <= MAX_MEAN_PX and self.flip_share <= MAX_FLIP_SHARE

    def slower_than(self, min_speedup: float, place: str) -> bool:
        """Whether this path, its rechecks included, was timed on a machine like `place` (timing_place)
        and was not faster than fp32 by `min_speedup` (0: speed not judged). Timed elsewhere (a CPU without
        the instructions this one has) or never: not known to be slower (infer.verify times it)."""
        return bool(min_speedup) and self.speedup is not None and self.timed_on == place \
            and self.speedup < min_speedup

    def timed_speedup(self, place: str) -> float | None:
        """The speed-up timed at calibration where it applies to `place` (timing_place), else None."""
        return self.speedup if self.timed_on == place else None

    def describe(self) -> str:
        verdict = "within" if self.passed else "outside"
        rechecked = f", {100 * self.rechecked_share:.1f}% predicted again" if self.rechecked_share else ""
        rechecked += f", by {self.arithmetic}" if self.arithmetic else ""
        rechecked += f", {self.speedup:.2f}x fp32's speed on {self.timed_on}" if self.speedup is not None else ""
        return (f"mean {self.mean_px:.3f} px, max {self.max_px:.2f} px, {100 * self.flip_share:.2f}% p-cutoff flips "
                f"on {self.images} images{rechecked}: {verdict} tolerance ({MAX_MEAN_PX} px, {100 * MAX_FLIP_SHARE}%)")


def recheck_margin(reference: list[np.ndarray], reduced: list[np.ndarray]) -> float:
    """(K,h,w) fp32 score logits of each image vs a reduced path's of the same images -> the margin
    (logits) below which a rival peak could overtake the top one under that path: twice its
    ERROR_PERCENTILE-th |error| at cells within COMPETING_LOGITS of their map's peak (a swap needs the two
    peaks' errors to differ by the fp32 margin between them)."""
    errors = []
    for exact, other in zip(reference, reduced):
        peak = exact.reshape(len(exact), -1).max(axis=-1)[:, None, None]
        errors.append(np.abs(other - exact)[exact >= peak - COMPETING_LOGITS])
    found = np.concatenate(errors) if errors else np.zeros(0)
    return 2.0 * float(np.percentile(found, ERROR_PERCENTILE)) if found.size else 0.0


def agreement(reference: np.ndarray, other: np.ndarray, pcutoff: float, rechecked: int = 0,
              arithmetic: str = "") -> Agreement:
    """(N,K,3) fp32 poses vs (N,K,3) reduced-precision poses of the same images (`rechecked` of them
    predicted again more exactly)."""
    distance = np.linalg.norm(other[..., :2] - reference[..., :2], axis=-1)
    flips = (other[..., 2] >= pcutoff) != (reference[..., 2] >= pcutoff)
    return Agreement(images=int(len(reference)), mean_px=float(distance.mean()), max_px=float(distance.max()),
                     flip_share=float(flips.mean()), pcutoff=float(pcutoff),
                     rechecked_share=rechecked / len(reference) if len(reference) else 0.0, arithmetic=arithmetic)


@dataclass(frozen=True)
class ReducedPrecision:
    """What model.pt carries beyond the fp32 weights: the calibrated int8 graph (ONNX, heads fp32) with
    its hash and how it was made, each reduced path's recheck margin (logits; frames with a rival peak that
    close are predicted again more exactly) and its agreement with fp32 (labeled and video frames), rechecks included."""

    int8_onnx: bytes = b""
    calibration: dict = field(default_factory=dict)
    checks: dict[str, Agreement] = field(default_factory=dict)
    recheck_margins: dict[str, float] = field(default_factory=dict)

    @property
    def int8_sha256(self) -> str:
        return hashlib.sha256(self.int8_onnx).hexdigest() if self.int8_onnx else ""

    def to_payload(self) -> dict:
        return {"int8_onnx": self.int8_onnx, "int8_sha256": self.int8_sha256, "calibration": dict(self.calibration),
                "checks": {path: asdict(check) for path, check in self.checks.items()},
                "recheck_margins": dict(self.recheck_margins)}

    @classmethod
    def from_payload(cls, raw: dict, source: str) -> "ReducedPrecision":
        try:
            reduced = cls(int8_onnx=bytes(raw.get("int8_onnx") or b""), calibration=dict(raw.get("calibration") or {}),
                          checks={path: Agreement(**check) for path, check in (raw.get("checks") or {}).items()},
                          recheck_margins={path: float(margin) for path, margin in (raw.get("recheck_margins") or {}).items()})
        except (TypeError, ValueError, AttributeError) as exc:
            raise ValueError(f"{source}: unreadable reduced-precision section ({exc})") from None
        for path, check in reduced.checks.items():  # nor a crafted speed steer `auto`
            if check.speedup is not None and not (isinstance(check.speedup, (int, float)) and 0.0 < check.speedup < float("inf")):
                raise ValueError(f"{source}: speed {check.speedup!r} of the {path!r} check is not a finite positive ratio")
            if not isinstance(check.timed_on, str):
                raise ValueError(f"{source}: where the {path!r} check was timed ({check.timed_on!r}) is not a text")
        for path, margin in reduced.recheck_margins.items():  # a damaged or crafted file must not steer rechecks
            if path not in REDUCED_PATHS or not 0.0 <= margin < float("inf"):
                raise ValueError(f"{source}: recheck margin {margin!r} for {path!r} is not a finite margin of a reduced path")
        if raw.get("int8_sha256", "") != reduced.int8_sha256:
            raise ValueError(f"{source}: the int8 graph does not match its recorded sha256 (damaged file)")
        return reduced

    def describe(self) -> dict:
        """For _meta.json and logs: no bytes."""
        return {"int8_sha256": self.int8_sha256, "calibration": self.calibration, "recheck_margins": self.recheck_margins,
                "checks": {path: {**asdict(check), "passed": check.passed} for path, check in self.checks.items()}}


@dataclass(frozen=True)
class Precision:
    """The path a forward pass takes, and why (for the log and _meta.json). `speedup`: fp32's time per
    image over this path's, rechecks included, as calibration timed it on a machine like this one (None:
    not timed here); infer.verify weighs a probe's cost against it."""

    path: str
    reason: str
    speedup: float | None = None

    def autocast(self, device: torch.device):
        if self.path not in ("bf16", "fp16"):
            return contextlib.nullcontext()
        if self.path == "fp16" and device.type == "cpu":  # only ever a check of what a GPU will run
            return EmulatedCudaHalf()
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16 if self.path == "bf16" else torch.float16)

    @property
    def needs_grad_scaler(self) -> bool:
        return self.path == "fp16"

    def arithmetic(self, device: torch.device) -> str:
        """What a check of this path on `device` ran (Agreement.arithmetic)."""
        if self.path == "int8":
            return "int8 graph on ONNX Runtime (cpu)"
        if self.path == "fp32":
            return f"{device.type} float32"
        if self.path == "fp16" and device.type == "cpu":
            return "cuda autocast float16 emulated on cpu (float16 operands and results, float32 sums)"
        dtype = "bfloat16" if self.path == "bf16" else "float16"
        return f"{device.type} autocast {dtype}" + (", emulating cuda autocast" if device.type != "cuda" else "")


def timing_place(device: torch.device, cpu: CpuCapability) -> str:
    """Where a path's speed was measured, as far as it decides the speed: a CPU's instructions (int8 and
    bf16 run 2-4x faster with VNNI/AMX than without), or a GPU."""
    return "cuda" if device.type == "cuda" else f"cpu: {cpu.describe()}"


def _autocast_path(device: torch.device, cuda_bf16: bool | None = None) -> str:
    if device.type == "cuda" and not (torch.cuda.is_bf16_supported() if cuda_bf16 is None else cuda_bf16):
        return "fp16"
    return "bf16"


def recheck_chain(path: str, device: torch.device, cpu: CpuCapability, margins: dict[str, float]) -> list[tuple[float, str]]:
    """[(margin, path)]: frames whose maps leave a close call within `margin` logits of the top are
    predicted again by `path`, whose maps face the next step; fp32 decides last. int8 goes through bf16
    first where the CPU runs it fast (a close call is rarely close in bf16 too). The same on a GPU: its
    autocast path's close calls go to fp32 (empty for fp32, and for a model calibrated before margins)."""
    if path not in margins:
        return []
    chain = []
    if path == "int8" and device.type == "cpu" and cpu.bf16 and "bf16" in margins:
        chain.append((margins["int8"], "bf16"))
        path = "bf16"
    return chain + [(margins[path], "fp32")]


def choose_training(setting: str, device: torch.device, cpu: CpuCapability) -> Precision:
    """train.mixed_precision: 'on'/'off' force autocast/fp32; 'auto' autocasts where it is fast."""
    if setting == "off":
        return Precision("fp32", "train.mixed_precision=off")
    if setting == "on":
        return Precision(_autocast_path(device), "train.mixed_precision=on")
    if device.type == "cuda":
        return Precision(_autocast_path(device), "auto: CUDA")
    if device.type == "cpu" and cpu.bf16:
        return Precision("bf16", f"auto: the CPU has bf16 instructions ({cpu.describe()})")
    return Precision("fp32", f"auto: {device.type} without fast reduced precision ({cpu.describe()})")


def choose_inference(setting: str, device: torch.device, cpu: CpuCapability,
                     reduced: ReducedPrecision | None, source: str = "the model",
                     cuda_bf16: bool | None = None, min_speedup: float = 0.0) -> Precision:
    """infer.mixed_precision: 'off' fp32, 'on' autocast, 'int8' the calibrated graph; 'auto' the fastest
    path the hardware runs fast whose poses matched fp32 on this model's checks and which, rechecks
    included, was not timed slower than fp32 x `min_speedup` at calibration (a candidate: infer.verify
    times it and checks it on the video). `cuda_bf16`: whether the GPU runs bf16 (None: ask torch)."""
    checks = reduced.checks if reduced is not None else {}
    margins = reduced.recheck_margins if reduced is not None else {}
    has_int8 = reduced is not None and bool(reduced.int8_onnx)
    if setting == "off":
        return Precision("fp32", "infer.mixed_precision=off")
    if setting == "on":
        return Precision(_autocast_path(device, cuda_bf16), "infer.mixed_precision=on")
    if setting == "int8":
        if device.type != "cpu":
            raise ValueError(f"infer.mixed_precision=int8 runs on CPU (ONNX Runtime); device is {device}")
        if not has_int8:
            raise ValueError(f"{source}: infer.mixed_precision=int8, but the model carries no calibrated int8 "
                             f"version; run `posecluster calibrate` on its run folder first")
        return Precision("int8", "infer.mixed_precision=int8")
    if device.type == "cuda":  # autocast only where this model's check of that arithmetic passed
        path = _autocast_path(device, cuda_bf16)
        found = checks.get(path)
        if found is not None and found.passed and not found.slower_than(min_speedup, "cuda") and path in margins:
            return Precision(path, f"auto: CUDA autocast {path}; poses vs fp32: {found.describe()}",
                             found.timed_speedup("cuda"))
        why = (f"no {path} pose check recorded in {source}; fp32 until `posecluster calibrate` checks it" if found is None
               else f"{path} changed this model's poses ({found.describe()})" if not found.passed
               else f"{path} was not faster than fp32 ({found.describe()})" if found.slower_than(min_speedup, "cuda")
               else _unrechecked([path], source))
        return Precision("fp32", f"auto: CUDA, {why}")
    if device.type != "cpu":
        return Precision("fp32", f"auto: {device.type}")
    int8_check, bf16_check = checks.get("int8"), checks.get("bf16")

    place = timing_place(device, cpu)

    def checked(check: Agreement | None) -> bool:
        return check is not None and check.passed and not check.slower_than(min_speedup, place)

    # A check that passed licenses its path with the rechecks it was measured with: a model calibrated
    # before recheck margins existed has none, and its path alone moved keypoints by cells (issue 30).
    int8_runs, bf16_runs = has_int8 and cpu.int8 and checked(int8_check), cpu.bf16 and checked(bf16_check)
    if int8_runs and "int8" in margins:
        return Precision("int8", f"auto: calibrated int8 version on a CPU with int8 instructions ({cpu.describe()}); "
                                 f"poses vs fp32: {int8_check.describe()}", int8_check.timed_speedup(place))
    if bf16_runs and "bf16" in margins:
        return Precision("bf16", f"auto: the CPU has bf16 instructions ({cpu.describe()}); "
                                 f"poses vs fp32: {bf16_check.describe()}", bf16_check.timed_speedup(place))
    if int8_runs or bf16_runs:
        return Precision("fp32", "auto: " + _unrechecked(["int8"] * int8_runs + ["bf16"] * bf16_runs, source))
    failed = [f"{path}: {check.describe()}" for path, check in checks.items() if not check.passed]
    slow = [f"{path}: {check.describe()}" for path, check in checks.items()
            if check.passed and check.slower_than(min_speedup, place)]
    if failed or slow:
        why = "; ".join(([f"reduced precision changed this model's poses ({'; '.join(failed)})"] if failed else []) +
                        ([f"not faster than fp32 x {min_speedup} with its rechecks ({'; '.join(slow)})"] if slow else []))
    elif cpu.bf16:  # a reduced path nobody checked on this model is not taken: it can move keypoints by cells
        why = (f"no pose check of reduced precision recorded in {source}; fp32 until `posecluster calibrate` "
               f"checks it ({cpu.describe()})")
    else:
        why = cpu.describe()
    return Precision("fp32", f"auto: {why}")


def _unrechecked(paths: list[str], source: str) -> str:
    """Why `auto` runs fp32 where `paths` passed their checks but have no recheck margin recorded."""
    return (f"{source} was calibrated before recheck margins existed: {' and '.join(paths)} would run without "
            f"rechecks (a close call between two peaks could move a keypoint by cells); fp32 until the model is "
            f"recalibrated: `posecluster calibrate RUN` on its run folder")


def choose_multianimal_inference(setting: str, source: str = "the model") -> Precision:
    """infer.mixed_precision for a multi-animal model: 'auto' and 'off' run fp32; 'on' and 'int8' are
    refused (their pose checks exist for single-animal models only)."""
    if setting in ("auto", "off"):
        return Precision("fp32", f"{setting}: multi-animal models run in fp32 for now")
    raise InputError(source, f"multi-animal models run in fp32 for now: infer.mixed_precision={setting} is "
                             f"available for single-animal models only (use auto or off)")


def default_batch_size(device: torch.device, path: str = "fp32") -> int:
    """infer.batch_size=auto. GPUs want batches to fill the device. On CPU it depends on the path
    (benchmarks/inference_speed.py, end to end on the openfield video, ResNet-50, 2 threads): fp32 is
    fastest one frame at a time (larger batches only add kernel time and lengthen the decode thread's
    queue); bf16 gains 4-6% at batch 2 and int8 13-21% at batch 4 (its u8s8 kernels fill their tiles better)."""
    if device.type == "cuda":
        return 8
    return {"bf16": 2, "int8": 4}.get(path, 1)
