"""CUDA autocast float16, emulated on a CPU, for checking a model's fp16 poses where no GPU is present.

A GPU without bf16 (T4, V100) runs autocast in float16: each convolution takes its input and weights in
float16, sums the products in float32 (tensor cores, cuDNN) and stores its output in float16, and the
element-wise operations between convolutions (ReLU, max-pool, the residual additions) work on float16
tensors. CPU autocast's own float16 convolutions are no model of that, and on CPUs without AVX512-FP16
they run ~25x slower than float32 (1.0 s vs 38 ms for a ResNet-18 on a 96x80 image), which made a
model's fp16 check most of its calibration. So here float16 is storage: every tensor the backbone makes
is rounded to float16, and the arithmetic itself runs in float32 at float32's speed.

The heads stay float32 whatever autocast says (PoseModel.forward): transposed convolutions (the heads)
are left alone.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

_CONVOLUTIONS = {F.conv2d, torch.conv2d}
# Sums between convolutions (the residual additions) are rounded too. ReLU and max-pool keep a float16
# value float16, and what precedes the first convolution (normalising the image) is rounded as its input,
# so those are left as they are (rounding costs a copy of the activations).
_ADDITIONS = {torch.add, torch.Tensor.add, torch.Tensor.add_, torch.Tensor.__add__, torch.Tensor.__iadd__,
              torch.Tensor.__radd__}


def to_half(value):
    """A float32 tensor rounded to the nearest float16 (overflow to inf, as on the GPU); anything else as is."""
    if isinstance(value, torch.Tensor) and value.dtype == torch.float32:
        return value.to(torch.float16).to(torch.float32)
    return value


class EmulatedCudaHalf(TorchFunctionMode):
    """Inside it, a forward pass computes as CUDA autocast float16 does (float16 operands and results,
    float32 sums), in float32 tensors. The heads' transposed convolutions are not touched."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in _CONVOLUTIONS:  # operands rounded; the sum itself in float32
            args = tuple(to_half(arg) for arg in args)
            kwargs = {name: to_half(value) for name, value in kwargs.items()}
            return to_half(func(*args, **kwargs))
        if func in _ADDITIONS:
            return to_half(func(*args, **kwargs))
        return func(*args, **kwargs)
