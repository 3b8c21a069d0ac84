"""Softmax over one dimension, numerically stable (max subtracted), float32 accumulation.

Layers: the ``@triton.jit`` kernels; the launchers ``softmax_forward`` / ``softmax_backward``,
registered as operators ``torch.ops.tritonlm.softmax_forward`` / ``softmax_backward`` (the
forward differentiable through ``register_autograd``); ``softmax_triton`` for any dimension of any
shape; ``softmax(..., backend=)``.

Triton design: the op is moved to the last dimension and run with one program per row.

* forward: when the row fits one block it is read once, kept in registers, and written once.
  Longer rows take two sweeps: an online max/sum sweep (per-tile max, one exponential per
  element), then a sweep that writes ``exp(x - max) / sum``.
* backward: ``dx = y * (dy - sum(dy * y))`` from the saved output, again single-pass when the row
  fits a block.
"""

from __future__ import annotations

import torch

from ._backend import resolve_backend
from ._blocks import row_blocks
from ._checks import check_float, check_rows
from ._ops import kernel_op, launch
from ._rows import online_max_sum_init, online_max_sum_step, row_start
from ._reference_grads import SoftmaxFunction as ReferenceSoftmax
from ._triton import tl, triton


def softmax_reference(x: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """From-scratch PyTorch softmax in float32 (max subtracted), with the closed-form backward
    ``dx = y * (dy - sum(dy * y))``; rows that are entirely -inf give NaN, as torch does."""
    return ReferenceSoftmax.apply(x, dim)


@triton.jit
def _softmax_forward_kernel(
    X, Y, stride_x, stride_y, n_cols, BLOCK: tl.constexpr, SINGLE_PASS: tl.constexpr
):
    x_row, y_row = row_start(X, stride_x), row_start(Y, stride_y)
    cols = tl.arange(0, BLOCK)
    if SINGLE_PASS:
        mask = cols < n_cols
        x = tl.load(x_row + cols, mask=mask, other=float("-inf")).to(tl.float32)
        e = tl.exp(x - tl.max(x, axis=0))
        y = e / tl.sum(e, axis=0)
        tl.store(y_row + cols, y.to(Y.dtype.element_ty), mask=mask)
    else:
        row_max, row_sum = online_max_sum_init()
        for start in range(0, n_cols, BLOCK):
            mask = start + cols < n_cols
            x = tl.load(x_row + start + cols, mask=mask, other=float("-inf")).to(tl.float32)
            row_max, row_sum = online_max_sum_step(row_max, row_sum, x)
        inv_sum = 1.0 / row_sum
        for start in range(0, n_cols, BLOCK):
            mask = start + cols < n_cols
            x = tl.load(x_row + start + cols, mask=mask, other=float("-inf")).to(tl.float32)
            y = tl.exp(x - row_max) * inv_sum
            tl.store(y_row + start + cols, y.to(Y.dtype.element_ty), mask=mask)


@triton.jit
def _softmax_backward_kernel(
    DY, Y, DX, stride_dy, stride_y, stride_dx, n_cols,
    BLOCK: tl.constexpr, SINGLE_PASS: tl.constexpr,
):
    dy_row, y_row, dx_row = row_start(DY, stride_dy), row_start(Y, stride_y), row_start(DX, stride_dx)
    cols = tl.arange(0, BLOCK)
    if SINGLE_PASS:
        mask = cols < n_cols
        y = tl.load(y_row + cols, mask=mask, other=0.0).to(tl.float32)
        dy = tl.load(dy_row + cols, mask=mask, other=0.0).to(tl.float32)
        dot = tl.sum(dy * y, axis=0)
        tl.store(dx_row + cols, (y * (dy - dot)).to(DX.dtype.element_ty), mask=mask)
    else:
        acc = tl.zeros([BLOCK], dtype=tl.float32)
        for start in range(0, n_cols, BLOCK):
            mask = start + cols < n_cols
            y = tl.load(y_row + start + cols, mask=mask, other=0.0).to(tl.float32)
            dy = tl.load(dy_row + start + cols, mask=mask, other=0.0).to(tl.float32)
            acc += dy * y
        dot = tl.sum(acc, axis=0)
        for start in range(0, n_cols, BLOCK):
            mask = start + cols < n_cols
            y = tl.load(y_row + start + cols, mask=mask, other=0.0).to(tl.float32)
            dy = tl.load(dy_row + start + cols, mask=mask, other=0.0).to(tl.float32)
            tl.store(dx_row + start + cols, (y * (dy - dot)).to(DX.dtype.element_ty), mask=mask)


def _forward_output(x2d: torch.Tensor) -> torch.Tensor:
    """Checked input, and the empty output: also the forward's fake implementation."""
    check_float("x", x2d)
    check_rows("x", x2d)
    return torch.empty_like(x2d, memory_format=torch.contiguous_format)


@kernel_op("softmax_forward", fake=_forward_output)
def softmax_forward(x2d: torch.Tensor) -> torch.Tensor:
    """Launch the forward over the rows of (rows, cols) ``x2d``; differentiable (the backward
    launches ``softmax_backward`` on the saved output)."""
    y = _forward_output(x2d)
    n_rows, n_cols = x2d.shape
    if n_rows:
        blocks = row_blocks(n_cols)
        launch(_softmax_forward_kernel, (n_rows,))(
            x2d, y, x2d.stride(0), y.stride(0), n_cols,
            BLOCK=blocks.block, SINGLE_PASS=blocks.single_pass, num_warps=blocks.num_warps,
        )
    return y


def _backward_output(dy2d: torch.Tensor, y2d: torch.Tensor) -> torch.Tensor:
    """Checked inputs, and the empty ``dx``: also the backward's fake implementation."""
    check_rows("dy", dy2d)
    if dy2d.shape != y2d.shape:
        raise ValueError(f"dy has shape {tuple(dy2d.shape)} but the output has {tuple(y2d.shape)}")
    return torch.empty_like(y2d)


@kernel_op("softmax_backward", fake=_backward_output)
def softmax_backward(dy2d: torch.Tensor, y2d: torch.Tensor) -> torch.Tensor:
    """Launch the backward: ``dx`` for (rows, cols) upstream gradient ``dy2d`` and output ``y2d``."""
    dx = _backward_output(dy2d, y2d)
    n_rows, n_cols = y2d.shape
    if n_rows:
        blocks = row_blocks(n_cols)
        launch(_softmax_backward_kernel, (n_rows,))(
            dy2d, y2d, dx, dy2d.stride(0), y2d.stride(0), dx.stride(0), n_cols,
            BLOCK=blocks.block, SINGLE_PASS=blocks.single_pass, num_warps=blocks.num_warps,
        )
    return dx


def _save_for_backward(ctx, inputs, output) -> None:
    ctx.save_for_backward(output)


def _backward(ctx, dy2d: torch.Tensor) -> torch.Tensor:
    (y2d,) = ctx.saved_tensors
    return softmax_backward(dy2d.contiguous(), y2d)


softmax_forward.register_autograd(_backward, setup_context=_save_for_backward)


def softmax_triton(x: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """Triton softmax over dimension ``dim`` of any-shaped ``x``; differentiable."""
    check_float("x", x)
    if x.dim() == 0:
        raise ValueError("softmax needs at least one dimension, got a 0-d tensor")
    dim = dim % x.dim()
    moved = x.movedim(dim, -1)  # (..., n) with the softmax dimension last
    x2d = moved.reshape(-1, moved.shape[-1])  # (rows, n)
    if x2d.shape[-1] > 1 and x2d.stride(-1) != 1:
        x2d = x2d.contiguous()
    y2d = softmax_forward(x2d)
    return y2d.view(moved.shape).movedim(-1, dim)


def softmax(x: torch.Tensor, dim: int = -1, backend: str = "auto") -> torch.Tensor:
    """Softmax of ``x`` along ``dim``; differentiable."""
    if resolve_backend(backend, x.device) == "triton":
        return softmax_triton(x, dim)
    return softmax_reference(x, dim)
