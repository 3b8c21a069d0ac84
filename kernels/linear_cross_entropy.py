"""The LM head fused with the mean cross-entropy: ``cross_entropy(hidden @ weight.T, targets)``
without the (tokens x vocab) logits ever existing at once.

Layers: the loss kernel of ``cross_entropy.py``; the launchers, registered as operators
``torch.ops.tritonlm.linear_cross_entropy_losses`` (evaluation: the logits GEMM and the loss,
nothing else) and ``linear_cross_entropy_losses_and_grads_`` (training: the gradients written
into the buffers it is given); ``LinearCrossEntropyFunction``, the ``torch.autograd.Function``
that ties them together (an ``autograd.Function`` because the gradients are produced in the
forward into buffers the operator mutates); ``linear_cross_entropy(..., backend=)``.

Design: the tokens are processed in chunks. For each chunk the logits are computed, the loss
kernel overwrites them with their gradient in place, and the chunk's contributions
``grad @ W`` (to dhidden) and ``grad^T @ h`` (to dweight) are taken at once. Only the GEMMs whose
gradient is wanted run: in evaluation (no gradient) a chunk costs one GEMM. The weight gradient
is accumulated across chunks in float32 by default (``fp32_weight_grad``), rounded to the weight
dtype once at the end; with 16-bit weights a small GEMM kernel adds each chunk's contribution
straight into the float32 accumulator, so no vocab x hidden_dim product exists per chunk. The backward scales the stored gradients by the upstream gradient in
place (nothing at all when it is 1), as in ``cross_entropy.py``.
"""

from __future__ import annotations

import torch

from ._attention_tiles import dot_precision
from ._backend import resolve_backend
from ._blocks import linear_cross_entropy_chunk_tokens, weight_grad_blocks
from ._checks import autocast_disabled, check_float, check_same_device, check_same_dtype, compute_dtype
from ._ops import kernel_op, launch
from .cross_entropy import (
    check_loss_options,
    check_targets,
    count_valid,
    cross_entropy_reference,
    launch_loss_kernel,
    scale_by_upstream_,
    take_stored_grads,
)
from ._triton import tl, triton


def linear_cross_entropy_reference(
    hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, ignore_index: int = -100, *,
    softcap: float = 0.0, z_loss: float = 0.0,
) -> torch.Tensor:
    """Cross-entropy of ``hidden @ weight.T`` (the LM head), materialising the full logits."""
    logits = torch.matmul(hidden, weight.t())
    return cross_entropy_reference(logits, targets, ignore_index, softcap=softcap, z_loss=z_loss)


def _check_linear_inputs(hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor) -> None:
    check_float("hidden", hidden)
    check_float("weight", weight)
    check_same_device(hidden=hidden, weight=weight)
    check_same_dtype(hidden=hidden, weight=weight)
    if weight.dim() != 2 or hidden.dim() < 1 or hidden.shape[-1] != weight.shape[1]:
        raise ValueError(
            f"weight must be (vocab, hidden_dim) matching hidden's last dimension; got hidden "
            f"{tuple(hidden.shape)} and weight {tuple(weight.shape)}"
        )
    check_targets(targets, hidden.shape[:-1], hidden.device)


def _losses_output(hidden2d: torch.Tensor, weight: torch.Tensor, targets1d: torch.Tensor, *_) -> torch.Tensor:
    """Checked inputs, and the empty per-token losses: also the fake implementation of both ops."""
    _check_linear_inputs(hidden2d, weight, targets1d)
    return torch.empty(hidden2d.shape[0], device=hidden2d.device, dtype=torch.float32)


@triton.jit
def _weight_grad_accumulate_kernel(
    G, H, DW, n_tokens, vocab, hidden_dim, stride_g, stride_h, stride_dw,
    BLOCK_V: tl.constexpr, BLOCK_H: tl.constexpr, BLOCK_T: tl.constexpr, PRECISION: tl.constexpr,
):
    """``DW[v, j] += sum_t G[t, v] * H[t, j]`` for one (BLOCK_V, BLOCK_H) tile of the float32 ``DW``:
    the chunk's weight gradient added straight into the accumulator, no product tensor in between."""
    offs_v = tl.program_id(0) * BLOCK_V + tl.arange(0, BLOCK_V)
    offs_h = tl.program_id(1) * BLOCK_H + tl.arange(0, BLOCK_H)
    offs_t = tl.arange(0, BLOCK_T)
    acc = tl.zeros([BLOCK_V, BLOCK_H], dtype=tl.float32)
    for t0 in range(0, n_tokens, BLOCK_T):
        rows = (t0 + offs_t).to(tl.int64)
        row_ok = (t0 + offs_t) < n_tokens
        g = tl.load(G + rows[:, None] * stride_g + offs_v[None, :], mask=row_ok[:, None] & (offs_v < vocab)[None, :],
                    other=0.0)  # (BLOCK_T, BLOCK_V)
        h = tl.load(H + rows[:, None] * stride_h + offs_h[None, :],
                    mask=row_ok[:, None] & (offs_h < hidden_dim)[None, :], other=0.0)  # (BLOCK_T, BLOCK_H)
        acc = tl.dot(tl.trans(g), h, acc, input_precision=PRECISION)
    mask = (offs_v < vocab)[:, None] & (offs_h < hidden_dim)[None, :]
    ptrs = DW + offs_v.to(tl.int64)[:, None] * stride_dw + offs_h[None, :]
    tl.store(ptrs, tl.load(ptrs, mask=mask, other=0.0) + acc, mask=mask)


def accumulate_weight_grad_(dw: torch.Tensor, grad_logits: torch.Tensor, hidden: torch.Tensor) -> None:
    """``dw += grad_logits.T @ hidden`` with ``dw`` float32 and the others in the compute dtype,
    accumulated in float32 inside the kernel (no vocab x hidden_dim temporary)."""
    n_tokens, vocab = grad_logits.shape
    hidden_dim = hidden.shape[1]
    if dw.dtype != torch.float32 or dw.shape != (vocab, hidden_dim) or dw.stride(1) != 1:
        raise ValueError(f"dw must be a row-major float32 ({vocab}, {hidden_dim}) tensor")
    if grad_logits.stride(1) != 1 or hidden.stride(1) != 1 or hidden.shape[0] != n_tokens:
        raise ValueError("grad_logits and hidden must be row-major with one row per token")
    if n_tokens == 0:
        return
    blocks = weight_grad_blocks(hidden.dtype == torch.float32)
    grid = (triton.cdiv(vocab, blocks.block_v), triton.cdiv(hidden_dim, blocks.block_h))
    launch(_weight_grad_accumulate_kernel, grid)(
        grad_logits, hidden, dw, n_tokens, vocab, hidden_dim, grad_logits.stride(0), hidden.stride(0), dw.stride(0),
        BLOCK_V=blocks.block_v, BLOCK_H=blocks.block_h, BLOCK_T=blocks.block_t, PRECISION=dot_precision(hidden.dtype),
        num_warps=blocks.num_warps, num_stages=blocks.num_stages,
    )


def _chunk_losses(hidden2d, weight, targets1d, num_valid, ignore_index, softcap, z_loss, chunk_tokens,
                  dh=None, dw=None) -> torch.Tensor:
    """Per-token losses, chunk by chunk; with ``dh`` / ``dw`` given, their gradients written too."""
    want_grad = dh is not None or dw is not None
    losses = []
    for start in range(0, hidden2d.shape[0], chunk_tokens):
        h_chunk = hidden2d[start : start + chunk_tokens]  # (chunk, hidden_dim)
        logits = h_chunk @ weight.t()  # (chunk, vocab); overwritten by its gradient when one is wanted
        losses.append(launch_loss_kernel(logits, targets1d[start : start + chunk_tokens], ignore_index, num_valid,
                                         logits if want_grad else None, softcap, z_loss))
        if dh is not None:
            torch.matmul(logits, weight, out=dh[start : start + chunk_tokens])
        if dw is not None:
            if dw.dtype == logits.dtype:
                dw.addmm_(logits.t(), h_chunk)
            else:  # float32 accumulation of the chunk's (compute-dtype) contribution, in the kernel
                accumulate_weight_grad_(dw, logits, h_chunk)
    return torch.cat(losses) if losses else _losses_output(hidden2d, weight, targets1d)


@kernel_op("linear_cross_entropy_losses", fake=_losses_output)
def linear_cross_entropy_losses(hidden2d: torch.Tensor, weight: torch.Tensor, targets1d: torch.Tensor,
                                ignore_index: int, softcap: float, z_loss: float,
                                chunk_tokens: int) -> torch.Tensor:
    """Per-token losses of ``hidden2d @ weight.T`` (float32; 0 where ignored): one GEMM per chunk,
    no gradient."""
    _losses_output(hidden2d, weight, targets1d)
    num_valid = torch.ones((), device=hidden2d.device, dtype=torch.float32)  # read only with a gradient
    return _chunk_losses(hidden2d, weight, targets1d, num_valid, ignore_index, softcap, z_loss, chunk_tokens)


@kernel_op("linear_cross_entropy_losses_and_grads_", fake=_losses_output, mutates_args=("dh", "dw"))
def linear_cross_entropy_losses_and_grads_(
    hidden2d: torch.Tensor, weight: torch.Tensor, targets1d: torch.Tensor, num_valid: torch.Tensor,
    dh: torch.Tensor, dw: torch.Tensor, ignore_index: int, softcap: float, z_loss: float, chunk_tokens: int,
) -> torch.Tensor:
    """Per-token losses, and the gradients of their mean over ``num_valid`` tokens written into
    ``dh`` (tokens, hidden_dim) and accumulated into the zeroed ``dw`` (vocab, hidden_dim; float32
    or the weight dtype). An empty ``dh`` or ``dw`` means that gradient is not wanted: its GEMM
    is skipped."""
    _losses_output(hidden2d, weight, targets1d)
    return _chunk_losses(hidden2d, weight, targets1d, num_valid, ignore_index, softcap, z_loss, chunk_tokens,
                         dh if dh.numel() else None, dw if dw.numel() else None)


class LinearCrossEntropyFunction(torch.autograd.Function):
    """Mean cross-entropy of ``hidden @ weight.T``, computed chunk by chunk over the tokens."""

    @staticmethod
    def forward(ctx, hidden, weight, targets, ignore_index: int, softcap: float = 0.0, z_loss: float = 0.0,
                chunk_tokens: int | None = None, fp32_weight_grad: bool = True, grad_enabled: bool = True):
        """``grad_enabled``: the caller's grad mode (``needs_input_grad`` says only requires_grad,
        also under ``torch.no_grad()``, where no gradient GEMM must run)."""
        check_loss_options(softcap, z_loss)
        _check_linear_inputs(hidden, weight, targets)
        h2d = hidden.reshape(-1, hidden.shape[-1])  # (tokens, hidden_dim)
        targets1d = targets.reshape(-1)  # (tokens,)
        n_tokens, vocab = h2d.shape[0], weight.shape[0]
        chunk = chunk_tokens or linear_cross_entropy_chunk_tokens(n_tokens, vocab, h2d.shape[1])
        num_valid = count_valid(targets1d, ignore_index)
        want_dh, want_dw = (grad_enabled and needed for needed in ctx.needs_input_grad[:2])
        ctx.hidden_shape, ctx.weight_dtype = hidden.shape, weight.dtype
        if not (want_dh or want_dw):
            losses = linear_cross_entropy_losses(h2d, weight, targets1d, ignore_index, softcap, z_loss, chunk)
            return losses.sum() / num_valid
        # Contiguous gradient buffers whatever the inputs' layouts (the backward scales them in place).
        dh = torch.empty(h2d.shape if want_dh else (0,), device=h2d.device, dtype=h2d.dtype)
        dw_dtype = torch.float32 if fp32_weight_grad else weight.dtype
        dw = torch.zeros(weight.shape if want_dw else (0,), device=weight.device, dtype=dw_dtype)
        losses = linear_cross_entropy_losses_and_grads_(h2d, weight, targets1d, num_valid, dh, dw, ignore_index,
                                                        softcap, z_loss, chunk)
        ctx.save_for_backward(dh, dw.to(weight.dtype))
        ctx.want_dh, ctx.want_dw = want_dh, want_dw
        return losses.sum() / num_valid

    @staticmethod
    def backward(ctx, grad_loss: torch.Tensor):
        dh, dw = take_stored_grads(ctx)
        dhidden = dweight = None
        if ctx.want_dh:
            scale_by_upstream_(dh, grad_loss)
            dhidden = dh.view(ctx.hidden_shape)
        if ctx.want_dw:
            scale_by_upstream_(dw, grad_loss)
            dweight = dw
        return dhidden, dweight, None, None, None, None, None, None, None


def linear_cross_entropy_triton(hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor,
                                ignore_index: int = -100, *, softcap: float = 0.0, z_loss: float = 0.0,
                                fp32_weight_grad: bool = True, chunk_tokens: int | None = None) -> torch.Tensor:
    """Triton fused LM head + loss (see ``linear_cross_entropy``), in one compute dtype, autocast off inside."""
    if hidden.is_floating_point() and weight.is_floating_point():
        dtype = compute_dtype(hidden.device, hidden, weight)
        hidden, weight = hidden.to(dtype), weight.to(dtype)
    with autocast_disabled(hidden.device):
        return LinearCrossEntropyFunction.apply(hidden, weight, targets, ignore_index, softcap, z_loss, chunk_tokens,
                                                fp32_weight_grad, torch.is_grad_enabled())


def linear_cross_entropy(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    targets: torch.Tensor,
    ignore_index: int = -100,
    backend: str = "auto",
    *,
    softcap: float = 0.0,
    z_loss: float = 0.0,
    fp32_weight_grad: bool = True,
) -> torch.Tensor:
    """``cross_entropy(hidden @ weight.T, targets)`` without holding all the logits at once (Triton).

    The Triton path runs the LM head in one dtype: under autocast the autocast dtype (as the
    autocast linear layer would), otherwise the promoted dtype of hidden and weight. ``softcap``
    and ``z_loss`` as in ``cross_entropy``. ``fp32_weight_grad`` accumulates the weight gradient
    across token chunks in float32 (one rounding to the weight dtype at the end instead of one
    per chunk; costs a float32 vocab x hidden_dim buffer during the forward).
    """
    if resolve_backend(backend, hidden.device) == "triton":
        return linear_cross_entropy_triton(hidden, weight, targets, ignore_index, softcap=softcap, z_loss=z_loss,
                                           fp32_weight_grad=fp32_weight_grad)
    return linear_cross_entropy_reference(hidden, weight, targets, ignore_index, softcap=softcap, z_loss=z_loss)
