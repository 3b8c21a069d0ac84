"""RMSNorm: ``x / sqrt(mean(x^2) + eps) * weight`` over the last dimension.

Layers: the ``@triton.jit`` kernels; ``rmsnorm_forward`` / ``rmsnorm_backward``, the launchers,
registered as operators ``torch.ops.tritonlm.rmsnorm_forward`` / ``rmsnorm_backward`` (the
forward differentiable through ``register_autograd``, so ``torch.compile`` traces it without a
graph break); ``rmsnorm_triton`` for any leading shape; ``rmsnorm(..., backend=)``.

Triton design (in the forward one program per tile of rows; in the backward a fixed number of
programs, each over a run of rows):

* forward reads a row once when it fits one block (kept in registers), otherwise in two sweeps
  (sum of squares, then normalise); it stores the per-row inverse RMS for the backward. Narrow
  rows (QK-norm normalises each head, 64 or 128 wide) come several to a program, as a
  (rows x block) tile, so a program still moves a few thousand elements.
* backward computes ``dx = rstd * (w*dy) - x * rstd^3 * mean(w*dy*x)`` per row and accumulates
  ``dy * x * rstd`` into one float32 partial weight-gradient row per program; the partial rows
  are summed once at the end, so no atomics are needed.

All arithmetic is float32; outputs take the input dtype (the weight gradient the weight dtype).
"""

from __future__ import annotations

import torch

from ._backend import resolve_backend
from ._blocks import row_blocks, rows_per_program, sm_count
from ._checks import check_float, check_rows, check_same_device
from ._ops import kernel_op, launch
from ._rows import row_start
from ._reference_grads import RMSNormFunction as ReferenceRMSNorm
from ._triton import tl, triton

# Widest row held in registers in one pass. A 16,384-wide row needs 16 warps, which caps each
# thread at 128 registers, and the backward (x, dy, weight and their products live at once)
# spills about 340 bytes there on sm_80/89/90; from 8,193 columns on, the rows are looped over.
_GPU_MAX_BLOCK = 8192


def rmsnorm_reference(x: torch.Tensor, weight: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """From-scratch PyTorch RMSNorm, computed in float32 and returned in ``x.dtype``; the
    backward is the closed form (see ``_reference_grads``)."""
    return ReferenceRMSNorm.apply(x, weight, eps)


@triton.jit
def _rmsnorm_forward_kernel(
    X, W, Y, RSTD, stride_x, stride_y, n_rows, n_cols, eps,
    BLOCK: tl.constexpr, ROWS: tl.constexpr, SINGLE_PASS: tl.constexpr,
):
    eps = tl.cast(eps, tl.float32)  # fp32 whatever the launch passed (inductor passes Python floats as fp64)
    cols = tl.arange(0, BLOCK)
    if SINGLE_PASS:
        # A (ROWS, BLOCK) tile: narrow rows (QK-norm over a head, 64 or 128 wide) share a program.
        rows = tl.program_id(0).to(tl.int64) * ROWS + tl.arange(0, ROWS)
        row_ok = rows < n_rows
        mask = row_ok[:, None] & (cols < n_cols)[None, :]
        x = tl.load(X + rows[:, None] * stride_x + cols[None, :], mask=mask, other=0.0).to(tl.float32)
        rstd = tl.rsqrt(tl.sum(x * x, axis=1) / n_cols + eps)  # (ROWS,)
        w = tl.load(W + cols, mask=cols < n_cols, other=0.0).to(tl.float32)
        y = x * rstd[:, None] * w[None, :]
        tl.store(Y + rows[:, None] * stride_y + cols[None, :], y.to(Y.dtype.element_ty), mask=mask)
        tl.store(RSTD + rows, rstd, mask=row_ok)
    else:  # one wide row per program, in two sweeps
        row = tl.program_id(0).to(tl.int64)
        x_row, y_row = X + row * stride_x, Y + row * stride_y
        sum_sq = tl.zeros([BLOCK], dtype=tl.float32)
        for start in range(0, n_cols, BLOCK):
            mask = start + cols < n_cols
            x = tl.load(x_row + start + cols, mask=mask, other=0.0).to(tl.float32)
            sum_sq += x * x
        rstd = tl.rsqrt(tl.sum(sum_sq, axis=0) / n_cols + eps)
        for start in range(0, n_cols, BLOCK):
            mask = start + cols < n_cols
            x = tl.load(x_row + start + cols, mask=mask, other=0.0).to(tl.float32)
            w = tl.load(W + start + cols, mask=mask, other=0.0).to(tl.float32)
            tl.store(y_row + start + cols, (x * rstd * w).to(Y.dtype.element_ty), mask=mask)
        tl.store(RSTD + row, rstd)


@triton.jit
def _rmsnorm_backward_kernel(
    DY, X, W, RSTD, DX, DW_PARTIAL,
    stride_dy, stride_x, stride_dx, n_rows, n_cols, rows_per_program,
    BLOCK: tl.constexpr, ROWS: tl.constexpr, SINGLE_PASS: tl.constexpr,
):
    pid = tl.program_id(0)
    first_row = pid.to(tl.int64) * rows_per_program  # rows_per_program is a multiple of ROWS
    cols = tl.arange(0, BLOCK)
    dw_row = DW_PARTIAL + pid.to(tl.int64) * n_cols
    if SINGLE_PASS:
        col_ok = cols < n_cols
        w = tl.load(W + cols, mask=col_ok, other=0.0).to(tl.float32)
        dw = tl.zeros([ROWS, BLOCK], dtype=tl.float32)
        # The last program may run past n_rows: those rows are masked out (dy = 0 adds nothing).
        for i in range(0, rows_per_program, ROWS):
            rows = first_row + i + tl.arange(0, ROWS)
            row_ok = rows < n_rows
            mask = row_ok[:, None] & col_ok[None, :]
            x = tl.load(X + rows[:, None] * stride_x + cols[None, :], mask=mask, other=0.0).to(tl.float32)
            dy = tl.load(DY + rows[:, None] * stride_dy + cols[None, :], mask=mask, other=0.0).to(tl.float32)
            rstd = tl.load(RSTD + rows, mask=row_ok, other=0.0)[:, None]  # (ROWS, 1)
            wdy = w[None, :] * dy
            mean_wdy_x = tl.sum(wdy * x, axis=1)[:, None] / n_cols
            dx = rstd * wdy - x * (rstd * rstd * rstd * mean_wdy_x)
            tl.store(DX + rows[:, None] * stride_dx + cols[None, :], dx.to(DX.dtype.element_ty), mask=mask)
            dw += dy * x * rstd
        tl.store(dw_row + cols, tl.sum(dw, axis=0), mask=col_ok)
    else:
        for i in range(0, rows_per_program):
            row = first_row + i
            in_range = row < n_rows
            rstd = tl.load(RSTD + row, mask=in_range, other=0.0)
            acc = tl.zeros([BLOCK], dtype=tl.float32)
            for start in range(0, n_cols, BLOCK):
                mask = (start + cols < n_cols) & in_range
                x = tl.load(X + row * stride_x + start + cols, mask=mask, other=0.0).to(tl.float32)
                dy = tl.load(DY + row * stride_dy + start + cols, mask=mask, other=0.0).to(tl.float32)
                w = tl.load(W + start + cols, mask=mask, other=0.0).to(tl.float32)
                acc += w * dy * x
            mean_wdy_x = tl.sum(acc, axis=0) / n_cols
            for start in range(0, n_cols, BLOCK):
                mask = (start + cols < n_cols) & in_range
                x = tl.load(X + row * stride_x + start + cols, mask=mask, other=0.0).to(tl.float32)
                dy = tl.load(DY + row * stride_dy + start + cols, mask=mask, other=0.0).to(tl.float32)
                w = tl.load(W + start + cols, mask=mask, other=0.0).to(tl.float32)
                dx = rstd * w * dy - x * (rstd * rstd * rstd * mean_wdy_x)
                tl.store(DX + row * stride_dx + start + cols, dx.to(DX.dtype.element_ty), mask=mask)
                dw = tl.load(dw_row + start + cols, mask=mask, other=0.0)
                tl.store(dw_row + start + cols, dw + dy * x * rstd, mask=mask)


def _check_inputs(x: torch.Tensor, weight: torch.Tensor) -> None:
    check_float("x", x)
    check_float("weight", weight)
    check_same_device(x=x, weight=weight)
    if x.dim() < 1 or x.shape[-1] == 0:
        raise ValueError(f"x must have a non-empty last dimension, got shape {tuple(x.shape)}")
    if weight.shape != (x.shape[-1],):
        raise ValueError(
            f"weight has shape {tuple(weight.shape)} but x has {x.shape[-1]} features in its last "
            f"dimension; weight must have shape ({x.shape[-1]},)"
        )
    if not weight.is_contiguous():
        raise ValueError("weight must be contiguous; call .contiguous()")


def _forward_outputs(x2d: torch.Tensor, weight: torch.Tensor, eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Checked inputs, and the empty outputs ``(y, rstd)``: also the forward's fake implementation."""
    _check_inputs(x2d, weight)
    check_rows("x", x2d)
    y = torch.empty_like(x2d, memory_format=torch.contiguous_format)
    rstd = torch.empty(x2d.shape[0], device=x2d.device, dtype=torch.float32)
    return y, rstd


@kernel_op("rmsnorm_forward", fake=_forward_outputs)
def rmsnorm_forward(x2d: torch.Tensor, weight: torch.Tensor, eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Launch the forward on (rows, cols) ``x2d``: returns ``(y, rstd)`` with ``rstd`` float32 (rows,).
    Differentiable in ``x2d`` and ``weight`` (the backward launches ``rmsnorm_backward``)."""
    y, rstd = _forward_outputs(x2d, weight, eps)
    n_rows, n_cols = x2d.shape
    if n_rows:
        blocks = row_blocks(n_cols, _GPU_MAX_BLOCK, tile_rows=True)
        launch(_rmsnorm_forward_kernel, (triton.cdiv(n_rows, blocks.rows),))(
            x2d, weight, y, rstd, x2d.stride(0), y.stride(0), n_rows, n_cols, eps,
            BLOCK=blocks.block, ROWS=blocks.rows, SINGLE_PASS=blocks.single_pass, num_warps=blocks.num_warps,
        )
    return y, rstd


def _backward_outputs(dy: torch.Tensor, x2d: torch.Tensor, weight: torch.Tensor, rstd: torch.Tensor):
    """Checked inputs, and the empty ``(dx, dweight)``: also the backward's fake implementation."""
    check_rows("dy", dy)
    if dy.shape != x2d.shape:
        raise ValueError(f"dy has shape {tuple(dy.shape)} but x has {tuple(x2d.shape)}")
    return torch.empty_like(x2d, memory_format=torch.contiguous_format), torch.empty_like(weight)


@kernel_op("rmsnorm_backward", fake=_backward_outputs)
def rmsnorm_backward(
    dy: torch.Tensor, x2d: torch.Tensor, weight: torch.Tensor, rstd: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Launch the backward: returns ``(dx, dweight)`` for (rows, cols) ``dy`` and ``x2d``."""
    dx, _ = _backward_outputs(dy, x2d, weight, rstd)
    n_rows, n_cols = x2d.shape
    if n_rows == 0:
        return dx, torch.zeros_like(weight)
    blocks = row_blocks(n_cols, _GPU_MAX_BLOCK, tile_rows=True)
    per_program = rows_per_program(n_rows, 4 * sm_count(x2d.device), multiple_of=blocks.rows)
    n_programs = triton.cdiv(n_rows, per_program)
    # One float32 partial weight-gradient row per program, zeroed for the multi-sweep path
    # which accumulates into it; reduced once below.
    dw_partial = torch.zeros(n_programs, n_cols, device=x2d.device, dtype=torch.float32)
    launch(_rmsnorm_backward_kernel, (n_programs,))(
        dy, x2d, weight, rstd, dx, dw_partial,
        dy.stride(0), x2d.stride(0), dx.stride(0), n_rows, n_cols, per_program,
        BLOCK=blocks.block, ROWS=blocks.rows, SINGLE_PASS=blocks.single_pass, num_warps=blocks.num_warps,
    )
    return dx, dw_partial.sum(dim=0).to(weight.dtype)


def _save_for_backward(ctx, inputs, output) -> None:
    x2d, weight, _eps = inputs
    ctx.save_for_backward(x2d, weight, output[1])


def _backward(ctx, dy: torch.Tensor, _drstd: torch.Tensor | None):
    x2d, weight, rstd = ctx.saved_tensors
    dx, dweight = rmsnorm_backward(dy.contiguous(), x2d, weight, rstd)
    return dx, dweight, None


rmsnorm_forward.register_autograd(_backward, setup_context=_save_for_backward)


def rmsnorm_triton(x: torch.Tensor, weight: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Triton RMSNorm over the last dimension of any-shaped ``x``; differentiable."""
    _check_inputs(x, weight)
    x2d = x.reshape(-1, x.shape[-1])  # (rows, cols); copies only when x is not row-strided
    if x2d.shape[-1] > 1 and x2d.stride(-1) != 1:
        x2d = x2d.contiguous()
    y, _ = rmsnorm_forward(x2d, weight, eps)
    return y.view(x.shape)


def rmsnorm(x: torch.Tensor, weight: torch.Tensor, eps: float = 1e-5, backend: str = "auto") -> torch.Tensor:
    """RMSNorm over the last dimension of ``x`` with gain ``weight``; differentiable in both."""
    if resolve_backend(backend, x.device) == "triton":
        return rmsnorm_triton(x, weight, eps)
    return rmsnorm_reference(x, weight, eps)
