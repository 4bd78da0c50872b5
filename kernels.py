"""The model's two CPU fast paths, which step aside on a GPU: the depthwise conv over time on
oneDNN's fast (channels-last) path with a hand-written weight gradient, and dropout with cheaper
random masks. Same results as torch's own ops (tests/test_model.py); bench/train_speed.py measures
the gain."""

import torch
import torch.nn as nn
import torch.nn.functional as F


def depthwise_conv(x: torch.Tensor, weight: torch.Tensor, stride: int = 1, dilation: int = 1) -> torch.Tensor:
    """x (B, T, C), weight (C, 1, K) -> (B, ceil(T / stride), C): 'same'-padded depthwise conv over time.

    On CPU, oneDNN's depthwise kernel is fast only for channels-last input, no dilation, and in the
    forward direction; this function keeps to that path (bench/train_speed.py measures the gain).
    On a GPU it runs on (B, C, T) in contiguous memory, for which torch picks its own depthwise kernel:
    for channels-last input it picks cuDNN, whose v8 API builds an execution plan for every new input
    shape, and batches of utterances are nearly all new shapes (on an H200, train.py's loop ran at 22
    audio-seconds per second there, where a step of one repeated shape did 7,800: bench/gpu.py)."""
    if x.is_cuda:
        y = F.conv1d(
            x.transpose(1, 2).contiguous(),
            weight,
            None,
            stride,
            dilation * (weight.shape[2] // 2),
            dilation,
            x.shape[2],
        )
        return y.transpose(1, 2)
    if dilation > 1:  # a dilated conv is a plain one over each of the `dilation` interleaved phases
        assert stride == 1, "strided dilated convs are not used"
        (B, T, C), d = x.shape, dilation
        x = F.pad(x, (0, 0, 0, -T % d))  # zeros past the end, as 'same' padding reads anyway
        phases = x.view(B, -1, d, C).transpose(1, 2).reshape(B * d, -1, C)  # (B * d, T / d, C)
        y = depthwise_conv(phases, weight)
        return y.view(B, d, -1, C).transpose(1, 2).reshape(B, -1, C)[:, :T]
    if not torch.is_grad_enabled():
        return _depthwise(x, weight, stride)
    return _DepthwiseWeightGrad.apply(x, weight, stride)


def _depthwise(x: torch.Tensor, weight: torch.Tensor, stride: int) -> torch.Tensor:
    """x (B, T, C), weight (C, 1, K) -> (B, T', C), as a 2-D conv on a channels-last view."""
    x4 = x.transpose(1, 2).unsqueeze(2)  # (B, C, 1, T), channels-last in memory
    y = F.conv2d(x4, weight.unsqueeze(2), None, (1, stride), (0, weight.shape[2] // 2), 1, x.shape[2])
    return y.squeeze(2).transpose(1, 2)


class _DepthwiseWeightGrad(torch.autograd.Function):
    """The depthwise conv with its weight gradient computed as a grouped conv of the input with the
    output gradient: oneDNN's own weight gradient for depthwise convs is ~15x slower than its forward
    on CPU, while this costs a few forwards."""

    @staticmethod
    def forward(ctx, x, weight, stride: int):
        ctx.save_for_backward(x, weight)
        ctx.stride = stride
        return _depthwise(x, weight, stride)

    @staticmethod
    def backward(ctx, grad):  # grad (B, T', C)
        x, weight = ctx.saved_tensors
        (B, T, C), K, s = x.shape, weight.shape[2], ctx.stride
        grad_x = None
        if ctx.needs_input_grad[0]:
            grad_x = torch.ops.aten.convolution_backward(
                grad.transpose(1, 2).unsqueeze(2),
                x.transpose(1, 2).unsqueeze(2),
                weight.unsqueeze(2),
                None,
                (1, s),
                (0, K // 2),
                (1, 1),
                False,
                (0, 0),
                C,
                (True, False, False),
            )[0]
            grad_x = grad_x.squeeze(2).transpose(1, 2)
        # grad_w[c, k] = sum over b, t of x_padded[b, s * t + k, c] * grad[b, t, c]: a conv of each
        # (b, c) row of the padded input with its gradient row as the kernel (dilated by the stride)
        rows = x.new_zeros(T + K - 1, B, C)
        rows[K // 2 : K // 2 + T] = x.transpose(0, 1)
        rows = rows.view(1, 1, T + K - 1, B * C).permute(0, 3, 1, 2)  # (1, B*C, 1, T+K-1) channels-last
        kernels = grad.transpose(1, 2).reshape(B * C, 1, 1, -1)  # (B*C, 1, 1, T')
        lags = F.conv2d(rows, kernels, dilation=(1, s), groups=B * C)  # (1, B*C, 1, >= K)
        grad_w = lags[0, :, 0, :K].reshape(B, C, K).sum(0).unsqueeze(1)  # (C, 1, K)
        return grad_x, grad_w, None


class Dropout(nn.Dropout):
    """nn.Dropout with its CPU masks drawn from the 15 low bits of each 16-bit quarter of random 64-bit
    integers: the same drop rate (to 1/32768) at a third of the cost of torch's per-element
    Bernoulli draws, which took a quarter of a CPU training step."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.is_cuda or not self.training or self.p == 0:
            return super().forward(x)
        bits = torch.empty((x.numel() + 3) // 4, dtype=torch.int64, device=x.device).random_()
        bits = bits.view(torch.int16)[: x.numel()].view(x.shape)
        keep = (bits & 0x7FFF) >= round(self.p * 32768)
        return x * keep.to(x.dtype).mul_(1 / (1 - self.p))
