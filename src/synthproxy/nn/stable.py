"""Layers and ops whose results are bit-identical whatever the CPU thread count (normalisation, init, L1 loss).

PyTorch's CPU kernels for batch and layer normalisation reduce their statistics (BatchNorm: the batch mean and
variance; LayerNorm backward: the weight and bias gradients) in per-thread partial sums, so the last bits of the
result, and from there a whole training run, depend on ``torch.set_num_threads``. These drop-in subclasses (same
parameters, buffers and ``state_dict`` keys) compute the same quantities from elementary tensor ops whose CPU
reductions are split over their *outputs* (a column or row reduction), never over the summed elements, so every
sum is taken in the same order with 1 or 16 threads. Autograd differentiates those ops, so the backward pass is
thread-independent too. On CUDA, and in evaluation mode (running statistics: element-wise), they defer to the
native kernels.

:class:`StableConv1d` / :class:`StableConv2d` compute the weight and bias gradients (oneDNN splits their sum
over the batch between threads) on one thread, the forward pass and input gradient with the native kernels, and a
pointwise (1x1) convolution as a matrix product; :class:`StableLinear` computes its weight gradient on one thread
(MKL splits long, thin products). :func:`orthogonal_init` is :func:`torch.nn.init.orthogonal_` with its QR
decomposition (LAPACK) on one thread. :func:`stable_l1` is the mean absolute error as a mean of row means: a full
reduction of more than 32768 elements (PyTorch's grain size) is split over threads, a row reduction never is.

Matrix products themselves are made thread-count independent by MKL's conditional numerical reproducibility
(``MKL_CBWR``, set in :mod:`synthproxy`). What is left: torch's GRU backward below ~256 hidden units.

Shapes: :class:`StableBatchNorm1d` ``(B, C)`` or ``(B, C, L)``; :class:`StableBatchNorm2d` ``(B, C, H, W)``;
:class:`StableLayerNorm` ``(..., *normalized_shape)``.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


def orthogonal_init(tensor: Tensor, gain: float = 1.0) -> Tensor:
    """:func:`torch.nn.init.orthogonal_` computed on one CPU thread (the QR's result depends on the count)."""
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        return nn.init.orthogonal_(tensor, gain=gain)
    finally:
        torch.set_num_threads(threads)


def _moments(x: Tensor) -> tuple[Tensor, Tensor]:
    """Mean and biased variance over every axis but the channel axis 1: ``(C,)`` each.

    Channels go last first (``(N, C)``), so both reductions are column sums (split over the C outputs).
    """
    c = x.shape[1]
    flat = x.movedim(1, -1).reshape(-1, c)
    mean = flat.mean(0)
    var = (flat - mean).square().mean(0)
    return mean, var


class _StableBatchNorm(nn.modules.batchnorm._BatchNorm):
    def forward(self, x: Tensor) -> Tensor:
        self._check_input_dim(x)
        if x.device.type != "cpu" or not (self.training or self.running_mean is None):
            return super().forward(x)
        momentum = self.momentum  # None: cumulative moving average, as nn.BatchNorm
        mean, var = _moments(x)
        if self.track_running_stats and self.num_batches_tracked is not None:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                m = 1.0 / float(self.num_batches_tracked) if momentum is None else momentum
                n = x.numel() // x.shape[1]
                unbiased = var * (n / max(n - 1, 1))
                self.running_mean.mul_(1 - m).add_(mean.detach(), alpha=m)
                self.running_var.mul_(1 - m).add_(unbiased.detach(), alpha=m)
        shape = [1, -1] + [1] * (x.dim() - 2)
        y = (x - mean.view(shape)) * torch.rsqrt(var.view(shape) + self.eps)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        return y


class StableBatchNorm1d(_StableBatchNorm, nn.BatchNorm1d):
    """:class:`torch.nn.BatchNorm1d` with thread-count-independent training statistics on CPU."""


class StableBatchNorm2d(_StableBatchNorm, nn.BatchNorm2d):
    """:class:`torch.nn.BatchNorm2d` with thread-count-independent training statistics on CPU."""


class _ConvFunction(torch.autograd.Function):
    """``aten.convolution`` whose weight and bias gradients are computed on one thread (see the module doc)."""

    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, bias: Tensor | None, stride: list[int], padding: list[int],
                dilation: list[int], groups: int) -> Tensor:
        ctx.save_for_backward(x, weight)
        ctx.conf = (stride, padding, dilation, groups, bias is not None)
        return torch.ops.aten.convolution(x, weight, bias, stride, padding, dilation, False, [0] * len(stride), groups)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor | None, ...]:
        x, weight = ctx.saved_tensors
        stride, padding, dilation, groups, has_bias = ctx.conf
        out_pad = [0] * len(stride)
        grad_x = None
        if ctx.needs_input_grad[0]:
            grad_x = torch.ops.aten.convolution_backward(grad, x, weight, None, stride, padding, dilation, False,
                                                         out_pad, groups, [True, False, False])[0]
        threads = torch.get_num_threads()
        try:
            torch.set_num_threads(1)
            _, grad_w, grad_b = torch.ops.aten.convolution_backward(
                grad, x, weight, [weight.shape[0]] if has_bias else None, stride, padding, dilation, False, out_pad,
                groups, [False, True, has_bias])
        finally:
            torch.set_num_threads(threads)
        return grad_x, grad_w, grad_b, None, None, None, None


class _StableConv:
    def _conv_forward(self, x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
        if x.device.type != "cpu" or self.padding_mode != "zeros" or isinstance(self.padding, str):
            return super()._conv_forward(x, weight, bias)
        if (all(k == 1 for k in self.kernel_size) and all(st == 1 for st in self.stride) and self.groups == 1
                and not any(self.padding)):
            # a pointwise conv is a matrix product (oneDNN's 1x1 kernels split the channel sum between threads)
            y = torch.matmul(weight.reshape(weight.shape[0], -1), x.flatten(2)).reshape(
                x.shape[0], weight.shape[0], *x.shape[2:])
            return y if bias is None else y + bias.reshape(1, -1, *[1] * (x.dim() - 2))
        if not torch.is_grad_enabled():
            return super()._conv_forward(x, weight, bias)
        return _ConvFunction.apply(x, weight, bias, list(self.stride), list(self.padding), list(self.dilation),
                                   self.groups)


class StableConv1d(_StableConv, nn.Conv1d):
    """:class:`torch.nn.Conv1d` with thread-count-independent weight gradients on CPU."""


class StableConv2d(_StableConv, nn.Conv2d):
    """:class:`torch.nn.Conv2d` with thread-count-independent weight gradients on CPU."""


class _LinearFunction(torch.autograd.Function):
    """``x @ W.T + b`` whose weight and bias gradients are computed on one thread (MKL splits the sum of a
    long, thin product, e.g. a few outputs over many frames, between threads)."""

    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
        ctx.save_for_backward(x, weight)
        ctx.has_bias = bias is not None
        return torch.nn.functional.linear(x, weight, bias)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor | None, ...]:
        x, weight = ctx.saved_tensors
        grad_x = grad @ weight if ctx.needs_input_grad[0] else None
        g2, x2 = grad.reshape(-1, grad.shape[-1]), x.reshape(-1, x.shape[-1])
        threads = torch.get_num_threads()
        try:
            torch.set_num_threads(1)
            grad_w = g2.t() @ x2
            grad_b = g2.sum(0) if ctx.has_bias else None
        finally:
            torch.set_num_threads(threads)
        return grad_x, grad_w, grad_b


class StableLinear(nn.Linear):
    """:class:`torch.nn.Linear` with thread-count-independent weight gradients on CPU (for small layers: the
    weight gradient runs on one thread)."""

    def forward(self, x: Tensor) -> Tensor:
        if x.device.type != "cpu" or not torch.is_grad_enabled():
            return super().forward(x)
        return _LinearFunction.apply(x, self.weight, self.bias)


class StableLayerNorm(nn.LayerNorm):
    """:class:`torch.nn.LayerNorm` whose CPU backward does not depend on the thread count (CPU: always this path,
    so training, validation and inference see the same function).

    Forward: mean and biased variance over the last ``len(normalized_shape)`` axes (row reductions), then the
    affine map; the weight and bias gradients are then column sums over the leading axes.
    """

    def forward(self, x: Tensor) -> Tensor:
        if x.device.type != "cpu":
            return super().forward(x)
        dims = tuple(range(x.dim() - len(self.normalized_shape), x.dim()))
        mean = x.mean(dims, keepdim=True)
        var = (x - mean).square().mean(dims, keepdim=True)
        y = (x - mean) * torch.rsqrt(var + self.eps)
        if self.weight is not None:
            y = y * self.weight
        if self.bias is not None:
            y = y + self.bias
        return y


def stable_l1(prediction: Tensor, target: Tensor) -> Tensor:
    """Mean absolute error over all elements, reduced row by row (equal to ``F.l1_loss`` up to rounding)."""
    diff = (prediction - target).abs()
    return diff.reshape(diff.shape[0], -1).mean(1).mean() if diff.dim() > 1 else diff.mean()
