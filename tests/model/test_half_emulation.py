"""CUDA autocast float16 emulated on a CPU (the arithmetic a model's fp16 check runs where no GPU is
present): float16 operands and results, float32 sums. Oracles: a convolution worked in float64 from
operands rounded by numpy, and CPU autocast's own float16 kernels on a ResNet-18."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torchvision.models import resnet18

from posecluster.model.half_emulation import EmulatedCudaHalf
from posecluster.model.precision import Precision


def test_a_convolution_takes_float16_operands_sums_exactly_and_stores_float16():
    generator = torch.Generator().manual_seed(0)
    image, weight, bias = (torch.randn(shape, generator=generator) for shape in ((1, 3, 9, 9), (4, 3, 3, 3), (4,)))
    with EmulatedCudaHalf():
        emulated = F.conv2d(image, weight, bias, padding=1)
    half = [torch.from_numpy(t.numpy().astype(np.float16).astype(np.float64)) for t in (image, weight, bias)]
    exact = F.conv2d(*half, padding=1)  # float64 sums of the float16 operands
    expected = exact.numpy().astype(np.float16).astype(np.float32)
    # float32 sums vs float64 ones can round to the neighbouring float16 at most.
    np.testing.assert_allclose(emulated.numpy(), expected, rtol=2 ** -10, atol=1e-6)
    assert np.array_equal(emulated.numpy(), emulated.numpy().astype(np.float16).astype(np.float32))
    assert not np.array_equal(emulated.numpy(), F.conv2d(image, weight, bias, padding=1).numpy())


def test_a_resnet_under_the_emulation_lands_where_cpu_float16_kernels_do_and_transposed_convolutions_stay_fp32():
    torch.manual_seed(0)
    model = resnet18().eval()
    model.fc = torch.nn.Identity()
    images = torch.rand(1, 3, 64, 64)
    with torch.inference_mode():
        fp32 = model(images)
        with Precision("fp16", "check").autocast(torch.device("cpu")):
            emulated = model(images)
        with torch.autocast("cpu", dtype=torch.float16):
            kernels = model(images).float()
        head_weight = torch.randn(2, 4, 3, 3)
        features = torch.randn(1, 2, 5, 5)
        with EmulatedCudaHalf():
            head = F.conv_transpose2d(features, head_weight, stride=2)
    fp16_error = (kernels - fp32).abs().max().item()
    assert fp16_error > 0 and (emulated - fp32).abs().max().item() > 0
    assert (emulated - kernels).abs().max().item() <= 2 * fp16_error  # the same size of error as float16's own
    torch.testing.assert_close(head, F.conv_transpose2d(features, head_weight, stride=2), rtol=0, atol=0)
