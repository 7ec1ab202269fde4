"""Which arithmetic runs: `auto` takes the fastest path the CPU runs fast and whose poses matched fp32 on
the model's labeled frames; 'on'/'off'/'int8' force a path. CPUs are played through the CpuCapability
seam (no patching of torch's own probes)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from posecluster.infer.predictor import Predictor
from posecluster.model.artifact import load_model
from posecluster.model.precision import (
    Agreement,
    CpuCapability,
    ReducedPrecision,
    agreement,
    choose_inference,
    choose_training,
    probe_cpu,
    recheck_chain,
)

CPU = torch.device("cpu")
NO_BF16 = CpuCapability(isa="AVX2")  # e.g. a Zen 2 / Skylake node: neither bf16 nor VNNI
BF16_ONLY = CpuCapability(isa="AVX512", bf16=True)
BF16_INT8 = CpuCapability(isa="AVX512", bf16=True, int8=True)


def check(mean_px: float, flip_share: float = 0.0, speedup: float | None = None,
          timed_on: str = "cpu: AVX512 + bf16/int8") -> Agreement:
    return Agreement(images=20, mean_px=mean_px, max_px=2 * mean_px, flip_share=flip_share, pcutoff=0.6,
                     speedup=speedup, timed_on=timed_on if speedup is not None else "")


MARGINS = {"int8": 1.4, "bf16": 0.5, "fp16": 0.2}  # as calibration records them beside its checks


def reduced(int8: Agreement | None = None, bf16: Agreement | None = None, margins: bool = True) -> ReducedPrecision:
    checks = {path: c for path, c in (("int8", int8), ("bf16", bf16)) if c is not None}
    return ReducedPrecision(int8_onnx=b"graph", checks=checks,
                            recheck_margins={path: MARGINS[path] for path in checks} if margins else {})


def test_a_cpu_without_bf16_falls_back_to_fp32_for_training_and_inference(trained_run):
    assert choose_training("auto", CPU, NO_BF16).path == "fp32"
    assert choose_training("auto", CPU, BF16_ONLY).path == "bf16"
    trained = load_model(trained_run[0])
    predictor = Predictor(trained, cpu=NO_BF16)
    assert predictor.precision == "fp32" and not predictor.amp and predictor.int8 is None
    assert "AVX2" in predictor.choice.reason
    # The same model on a CPU with bf16 and VNNI: its calibrated int8 version passed its check.
    assert Predictor(trained, cpu=BF16_INT8).precision == "int8"
    assert Predictor(trained, cpu=BF16_ONLY).precision == "bf16"


def test_auto_takes_int8_only_where_its_poses_matched_fp32():
    assert choose_inference("auto", CPU, BF16_INT8, reduced(int8=check(0.2))).path == "int8"
    failed = choose_inference("auto", CPU, BF16_INT8, reduced(int8=check(0.9), bf16=check(0.1)))
    assert failed.path == "bf16"
    flips = choose_inference("auto", CPU, BF16_INT8, reduced(int8=check(0.1, flip_share=0.02), bf16=check(0.1)))
    assert flips.path == "bf16"
    unchecked_bf16 = choose_inference("auto", CPU, BF16_INT8, reduced(int8=check(0.1, flip_share=0.02)))
    assert unchecked_bf16.path == "fp32" and "changed this model's poses" in unchecked_bf16.reason
    # Never checked (a graph without its agreement) is not trusted either, nor is bf16 unchecked.
    unchecked = choose_inference("auto", CPU, BF16_INT8, ReducedPrecision(int8_onnx=b"graph"))
    assert unchecked.path == "fp32" and "posecluster calibrate" in unchecked.reason
    # bf16 whose check failed: fp32, and the reason says why.
    neither = choose_inference("auto", CPU, BF16_INT8, reduced(int8=check(0.9), bf16=check(0.7)))
    assert neither.path == "fp32" and "changed this model's poses" in neither.reason
    # A model never calibrated (trained before calibration existed): fp32, saying how to check bf16.
    never = choose_inference("auto", CPU, BF16_INT8, None)
    assert never.path == "fp32" and "no pose check" in never.reason and "posecluster calibrate" in never.reason
    assert choose_inference("auto", CPU, NO_BF16, None).path == "fp32"


def test_auto_skips_a_path_that_its_calibration_timed_slower_than_fp32_with_its_rechecks():
    fast, slow = check(0.1, speedup=2.5), check(0.1, speedup=0.6)  # e.g. an undertrained model: most frames rechecked
    assert choose_inference("auto", CPU, BF16_INT8, reduced(int8=fast, bf16=fast), min_speedup=1.05).path == "int8"
    next_best = choose_inference("auto", CPU, BF16_INT8, reduced(int8=slow, bf16=fast), min_speedup=1.05)
    assert next_best.path == "bf16"
    neither = choose_inference("auto", CPU, BF16_INT8, reduced(int8=slow, bf16=check(0.1, speedup=1.0)), min_speedup=1.05)
    assert neither.path == "fp32" and "not faster than fp32" in neither.reason and "0.60x fp32's speed" in neither.reason
    # Not judged: speed switched off, a check never timed (an older model), or timed on another kind of device.
    assert choose_inference("auto", CPU, BF16_INT8, reduced(int8=slow), min_speedup=0).path == "int8"
    assert choose_inference("auto", CPU, BF16_INT8, reduced(int8=check(0.1)), min_speedup=1.05).path == "int8"
    elsewhere = check(0.1, speedup=0.5, timed_on="cuda")
    assert choose_inference("auto", CPU, BF16_INT8, reduced(int8=elsewhere), min_speedup=1.05).path == "int8"
    # Timed on a CPU without int8 dot products (e.g. a GPU node's): says nothing of one that has them.
    plain_cpu = check(0.1, speedup=0.5, timed_on=f"cpu: {NO_BF16.describe()}")
    assert choose_inference("auto", CPU, BF16_INT8, reduced(int8=plain_cpu), min_speedup=1.05).path == "int8"
    # The same rule on CUDA for its autocast path.
    cuda = torch.device("cuda")
    slow_gpu = ReducedPrecision(checks={"bf16": check(0.1, speedup=0.9, timed_on="cuda")}, recheck_margins=MARGINS)
    assert choose_inference("auto", cuda, NO_BF16, slow_gpu, cuda_bf16=True, min_speedup=1.05).path == "fp32"
    assert choose_inference("auto", cuda, NO_BF16, slow_gpu, cuda_bf16=True, min_speedup=0).path == "bf16"


@pytest.mark.parametrize("speedup", [float("nan"), float("inf"), -2.0, 0.0, "fast"])
def test_a_crafted_speed_in_a_models_checks_is_refused(speedup):
    raw = ReducedPrecision(checks={"int8": check(0.1)}).to_payload()
    raw["checks"]["int8"]["speedup"] = speedup
    with pytest.raises(ValueError, match="speed .* is not a finite positive ratio"):
        ReducedPrecision.from_payload(raw, "s3://lab/run/model.pt")


def test_on_off_and_int8_force_their_path_whatever_auto_would_take():
    calibrated = reduced(int8=check(0.9), bf16=check(0.9))  # failed checks do not stop a forced path
    assert choose_inference("off", CPU, BF16_INT8, calibrated).path == "fp32"
    assert choose_inference("on", CPU, NO_BF16, calibrated).path == "bf16"
    assert choose_inference("int8", CPU, NO_BF16, calibrated).path == "int8"
    assert choose_training("off", CPU, BF16_INT8).path == "fp32"
    assert choose_training("on", CPU, NO_BF16).path == "bf16"
    with pytest.raises(ValueError, match="no calibrated int8 version.*posecluster calibrate"):
        choose_inference("int8", CPU, BF16_INT8, None, source="s3://lab/run/model.pt")


def test_agreement_counts_distance_and_p_cutoff_flips():
    reference = np.zeros((2, 2, 3))
    reference[..., 2] = [[0.9, 0.59], [0.2, 0.7]]
    other = reference.copy()
    other[0, 0, :2] = [3.0, 4.0]  # 5 px
    other[0, 1, 2] = 0.61  # crosses 0.6
    result = agreement(reference, other, pcutoff=0.6)
    assert result.mean_px == pytest.approx(5 / 4) and result.max_px == pytest.approx(5.0)
    assert result.flip_share == pytest.approx(1 / 4) and not result.passed


def test_the_probe_reports_what_torch_sees_on_this_machine():
    cpu = probe_cpu()
    assert cpu.isa == torch.backends.cpu.get_cpu_capability()
    assert isinstance(cpu.bf16, bool) and isinstance(cpu.int8, bool)


def test_on_cuda_auto_autocasts_only_where_the_models_check_of_that_arithmetic_passed():
    cuda = torch.device("cuda")  # the choice is pure: no GPU needed to ask it
    checked = ReducedPrecision(checks={"bf16": check(0.1), "fp16": check(0.9)}, recheck_margins=MARGINS)
    assert choose_inference("auto", cuda, NO_BF16, checked, cuda_bf16=True).path == "bf16"
    no_bf16_gpu = choose_inference("auto", cuda, NO_BF16, checked, cuda_bf16=False)  # e.g. a T4/V100: fp16
    assert no_bf16_gpu.path == "fp32" and "fp16 changed this model's poses" in no_bf16_gpu.reason
    never = choose_inference("auto", cuda, NO_BF16, None, cuda_bf16=True)
    assert never.path == "fp32" and "posecluster calibrate" in never.reason
    assert choose_inference("on", cuda, NO_BF16, None, cuda_bf16=False).path == "fp16"  # forced: as asked


def test_a_gpu_rechecks_its_close_calls_in_fp32_as_a_cpu_does():
    margins = {"bf16": 0.5, "fp16": 0.2, "int8": 1.4}
    cuda = torch.device("cuda")
    assert recheck_chain("bf16", cuda, NO_BF16, margins) == [(0.5, "fp32")]
    assert recheck_chain("fp16", cuda, NO_BF16, margins) == [(0.2, "fp32")]
    assert recheck_chain("int8", CPU, BF16_INT8, margins) == [(1.4, "bf16"), (0.5, "fp32")]
    assert recheck_chain("int8", CPU, CpuCapability(isa="AVX512", int8=True), margins) == [(1.4, "fp32")]
    assert recheck_chain("fp32", cuda, NO_BF16, margins) == [] and recheck_chain("bf16", cuda, NO_BF16, {}) == []


def test_auto_never_takes_a_path_without_a_recorded_recheck_margin_and_says_to_recalibrate():
    # A model calibrated before recheck margins existed: its checks passed, but they license the path with
    # the rechecks it now lacks (issue 30: bf16 without rechecks moved keypoints up to 72 px).
    old = reduced(int8=check(0.1), bf16=check(0.1), margins=False)
    for cpu in (BF16_INT8, BF16_ONLY):
        chosen = choose_inference("auto", CPU, cpu, old, source="s3://lab/run/model.pt")
        assert chosen.path == "fp32"
        assert "s3://lab/run/model.pt was calibrated before recheck margins existed" in chosen.reason
        assert "posecluster calibrate RUN" in chosen.reason
    # The same model with its margins recorded: the path runs (rechecked).
    assert choose_inference("auto", CPU, BF16_INT8, reduced(int8=check(0.1), bf16=check(0.1))).path == "int8"
    # One path's margin missing: the other, which has its rechecks, still runs.
    bf16_margin_only = replace(reduced(int8=check(0.1), bf16=check(0.1)), recheck_margins={"bf16": 0.5})
    assert choose_inference("auto", CPU, BF16_INT8, bf16_margin_only).path == "bf16"
    # On CUDA likewise.
    cuda = torch.device("cuda")
    gpu_old = ReducedPrecision(checks={"bf16": check(0.1)})
    on_gpu = choose_inference("auto", cuda, NO_BF16, gpu_old, cuda_bf16=True)
    assert on_gpu.path == "fp32" and "calibrated before recheck margins existed" in on_gpu.reason
    # Forced paths run as asked (the predictor warns that no rechecks run: test_quantize).
    assert choose_inference("int8", CPU, BF16_INT8, old).path == "int8"
    assert choose_inference("on", CPU, BF16_INT8, old).path == "bf16"
