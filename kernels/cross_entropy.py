"""Mean cross-entropy over token positions (the LM head fused with it: ``linear_cross_entropy.py``).

Layers: the ``@triton.jit`` loss kernel; the launchers, registered as operators
``torch.ops.tritonlm.cross_entropy_losses`` (loss only), ``cross_entropy_losses_and_grad_``
(loss, and the gradient written into a buffer it is given) and ``scale_by_upstream_``;
``CrossEntropyFunction``, the ``torch.autograd.Function`` that ties them together (an
``autograd.Function`` rather than ``register_autograd``: the gradient is written into a buffer
the operator mutates, possibly the logits themselves, and only functional operators take
``register_autograd``; ``torch.compile`` traces the Function and the operators without graph
breaks); ``cross_entropy(..., backend=)``.

Triton design: one program per token row.

* The kernel computes ``logsumexp(logits) - logits[target]`` with an online max/sum over vocab
  tiles (per-tile max: one exponential per element), and in the same kernel writes the gradient
  of the *mean* loss, ``(softmax - onehot) / num_valid``, so the backward is a single scalar
  multiply. Rows that fit one block are read once from registers. ``num_valid`` (targets !=
  ignore_index) stays on the device: no host synchronisation. Ignored rows get loss 0 and
  gradient 0; a target outside ``[0, vocab)`` gives a NaN loss.
* ``overwrite_logits=True`` writes that gradient over the logits (each row is read before it is
  overwritten): no second tokens x vocab buffer, the memory of the loss is the logits alone.
  The logits then hold the gradient, so it is for logits nobody reads afterwards (the LM's own).
* backward scales the stored gradient by the upstream gradient in place, with a kernel that
  reads that scalar on the device and does nothing when it is 1 (the usual ``loss.backward()``):
  no extra pass over the gradient and no host synchronisation. Because the stored gradient is
  consumed, a second backward through the same graph raises (recompute the loss instead).
"""

from __future__ import annotations

import torch

from ._backend import resolve_backend
from ._blocks import row_blocks
from ._checks import autocast_disabled, check_float, check_rows
from ._ops import kernel_op, launch
from ._rows import online_max_sum_init, online_max_sum_step, row_start
from ._reference_grads import CrossEntropyFunction as ReferenceCrossEntropy
from ._triton import tl, triton

# Vocab tile sizes: whole rows up to 16k stay in registers on the GPU; under the interpreter a
# 4096-wide tile keeps the > 65,536-vocab tests fast while still looping over several tiles.
_GPU_MAX_BLOCK = 16384
_INTERPRETER_MAX_BLOCK = 4096


def cross_entropy_reference(
    logits: torch.Tensor, targets: torch.Tensor, ignore_index: int = -100, *, softcap: float = 0.0,
    z_loss: float = 0.0,
) -> torch.Tensor:
    """Mean of ``logsumexp(logits) - logits[target]`` over positions whose target is not ignored.

    ``logits`` is (..., vocab) and ``targets`` (...); stable for large logits (max subtracted),
    computed in float32. Options used by LM recipes: ``softcap > 0`` first maps the logits to
    ``softcap * tanh(logits / softcap)``; ``z_loss`` adds ``z_loss * logsumexp^2`` per position.
    """
    check_loss_options(softcap, z_loss)
    logits2d = logits.reshape(-1, logits.shape[-1])  # (tokens, vocab)
    return ReferenceCrossEntropy.apply(logits2d, targets.reshape(-1), ignore_index, softcap, z_loss)


@triton.jit
def _tanh(u):
    # 1 - 2 / (exp(2u) + 1): exactly +-1 in the limits (exp overflows to inf or underflows to 0).
    return 1.0 - 2.0 / (tl.exp(2.0 * u) + 1.0)


@triton.jit
def _load_logits(ptrs, mask, softcap, SOFTCAP: tl.constexpr):
    """float32 logits, soft-capped (``softcap * tanh(x / softcap)``) when SOFTCAP; -inf where masked."""
    x = tl.load(ptrs, mask=mask, other=0.0).to(tl.float32)
    if SOFTCAP:
        x = softcap * _tanh(x / softcap)
    return tl.where(mask, x, float("-inf"))


@triton.jit
def _logit_grad(x, lse, is_target, scale, softcap, z_loss, SOFTCAP: tl.constexpr, Z_LOSS: tl.constexpr):
    """d(row loss * scale)/d(raw logit) for (capped) logits ``x`` of a row with log-sum-exp ``lse``."""
    p = tl.exp(x - lse)
    if Z_LOSS:  # d(z * lse^2)/dx = 2 z lse p
        p = p * (1.0 + 2.0 * z_loss * lse)
    grad = (p - tl.where(is_target, 1.0, 0.0)) * scale
    if SOFTCAP:  # chain rule through softcap * tanh(raw / softcap)
        capped = x / softcap
        grad = grad * (1.0 - capped * capped)
    return grad


@triton.jit
def _cross_entropy_kernel(
    LOGITS, GRAD, TARGETS, LOSS, NUM_VALID, stride_logits, stride_grad, n_cols, ignore_index, softcap, z_loss,
    BLOCK: tl.constexpr, SINGLE_PASS: tl.constexpr, WRITE_GRAD: tl.constexpr, SOFTCAP: tl.constexpr,
    Z_LOSS: tl.constexpr,
):
    softcap, z_loss = tl.cast(softcap, tl.float32), tl.cast(z_loss, tl.float32)  # fp32 even if passed as fp64
    row = tl.program_id(0).to(tl.int64)
    logits_row = LOGITS + row * stride_logits
    grad_row = GRAD + row * stride_grad
    target = tl.load(TARGETS + row).to(tl.int64)
    ignored = target == ignore_index
    in_range = (target >= 0) & (target < n_cols)
    target_logit = tl.load(logits_row + target, mask=in_range & (~ignored), other=0.0).to(tl.float32)
    if SOFTCAP:
        target_logit = softcap * _tanh(target_logit / softcap)
    cols = tl.arange(0, BLOCK)
    if SINGLE_PASS:
        mask = cols < n_cols
        x = _load_logits(logits_row + cols, mask, softcap, SOFTCAP)
        row_max = tl.max(x, axis=0)
        row_sum = tl.sum(tl.exp(x - row_max), axis=0)
    else:
        row_max, row_sum = online_max_sum_init()
        for start in range(0, n_cols, BLOCK):
            x = _load_logits(logits_row + start + cols, start + cols < n_cols, softcap, SOFTCAP)
            row_max, row_sum = online_max_sum_step(row_max, row_sum, x)
    lse = row_max + tl.log(row_sum)
    loss = lse - target_logit
    if Z_LOSS:
        loss += z_loss * lse * lse
    loss = tl.where(ignored, 0.0, loss)
    loss = tl.where(in_range | ignored, loss, float("nan"))
    tl.store(LOSS + row, loss)
    if WRITE_GRAD:
        # Gradient of the mean loss over num_valid positions; zero for ignored rows.
        scale = tl.where(ignored, 0.0, 1.0 / tl.load(NUM_VALID))
        if SINGLE_PASS:
            grad = _logit_grad(x, lse, cols == target, scale, softcap, z_loss, SOFTCAP, Z_LOSS)
            tl.store(grad_row + cols, grad.to(GRAD.dtype.element_ty), mask=mask)
        else:
            for start in range(0, n_cols, BLOCK):
                mask = start + cols < n_cols
                x = _load_logits(logits_row + start + cols, mask, softcap, SOFTCAP)
                grad = _logit_grad(x, lse, start + cols == target, scale, softcap, z_loss, SOFTCAP, Z_LOSS)
                tl.store(grad_row + start + cols, grad.to(GRAD.dtype.element_ty), mask=mask)


@triton.jit
def _scale_by_upstream_kernel(X, UPSTREAM, n, BLOCK: tl.constexpr):
    """``X *= upstream`` in place, skipped entirely (no memory traffic) when ``upstream == 1``."""
    upstream = tl.load(UPSTREAM).to(tl.float32)
    if upstream != 1.0:
        offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
        mask = offs < n
        x = tl.load(X + offs, mask=mask, other=0.0).to(tl.float32)
        tl.store(X + offs, (x * upstream).to(X.dtype.element_ty), mask=mask)


def scale_by_upstream_fake(grad: torch.Tensor, upstream: torch.Tensor) -> None:
    if not grad.is_contiguous():
        raise ValueError("the stored gradient must be contiguous")


@kernel_op("scale_by_upstream_", fake=scale_by_upstream_fake, mutates_args=("grad",))
def scale_by_upstream_(grad: torch.Tensor, upstream: torch.Tensor) -> None:
    """Multiply the contiguous ``grad`` in place by the scalar tensor ``upstream`` (device-side check)."""
    scale_by_upstream_fake(grad, upstream)
    n = grad.numel()
    if n:
        block = 4096
        launch(_scale_by_upstream_kernel, (triton.cdiv(n, block),))(
            grad, upstream.reshape(1), n, BLOCK=block, num_warps=8
        )


def check_targets(targets: torch.Tensor, expected_shape: tuple[int, ...], device: torch.device) -> None:
    if not isinstance(targets, torch.Tensor) or targets.dtype not in (torch.int64, torch.int32):
        got = targets.dtype if isinstance(targets, torch.Tensor) else type(targets).__name__
        raise TypeError(f"targets must be an int64 or int32 tensor of class ids, got {got}")
    if tuple(targets.shape) != tuple(expected_shape):
        raise ValueError(
            f"targets has shape {tuple(targets.shape)} but the logits expect {tuple(expected_shape)} "
            "(one target per position)"
        )
    if targets.device != device:
        raise ValueError(f"targets are on {targets.device} but the logits on {device}; move them with .to()")


def check_loss_options(softcap: float, z_loss: float) -> None:
    if not softcap >= 0:
        raise ValueError(f"softcap must be >= 0 (0 = off), got {softcap}")
    if not z_loss >= 0:
        raise ValueError(f"z_loss must be >= 0 (0 = off), got {z_loss}")


def count_valid(targets: torch.Tensor, ignore_index: int) -> torch.Tensor:
    """Number of non-ignored targets as a float32 device scalar (no host synchronisation)."""
    return (targets != ignore_index).sum().to(torch.float32)


def launch_loss_kernel(
    logits2d: torch.Tensor, targets1d: torch.Tensor, ignore_index: int, num_valid: torch.Tensor,
    grad_out: torch.Tensor | None = None, softcap: float = 0.0, z_loss: float = 0.0,
) -> torch.Tensor:
    """Run the loss kernel on (rows, vocab) logits; returns per-row losses (float32).

    When ``grad_out`` is given (it may be ``logits2d`` itself, for an in-place gradient) the
    gradient of the mean loss over ``num_valid`` positions is written into it.
    """
    losses = _losses_output(logits2d, targets1d)
    n_rows, n_cols = logits2d.shape
    if n_rows == 0:
        return losses
    if grad_out is not None:
        check_rows("grad", grad_out)
    blocks = row_blocks(n_cols, _GPU_MAX_BLOCK, _INTERPRETER_MAX_BLOCK)
    grad = logits2d if grad_out is None else grad_out
    launch(_cross_entropy_kernel, (n_rows,))(
        logits2d, grad, targets1d.contiguous(), losses, num_valid, logits2d.stride(0), grad.stride(0),
        n_cols, ignore_index, float(softcap), float(z_loss),
        BLOCK=blocks.block, SINGLE_PASS=blocks.single_pass, WRITE_GRAD=grad_out is not None,
        SOFTCAP=softcap > 0, Z_LOSS=z_loss != 0, num_warps=blocks.num_warps,
    )
    return losses


def _losses_output(logits2d: torch.Tensor, targets1d: torch.Tensor, *_) -> torch.Tensor:
    """Checked inputs, and the empty per-row losses: also the fake implementation of both ops."""
    check_float("logits", logits2d)
    check_rows("logits", logits2d)
    check_targets(targets1d, logits2d.shape[:1], logits2d.device)
    return torch.empty(logits2d.shape[0], device=logits2d.device, dtype=torch.float32)


@kernel_op("cross_entropy_losses", fake=_losses_output)
def cross_entropy_losses(logits2d: torch.Tensor, targets1d: torch.Tensor, ignore_index: int, softcap: float,
                         z_loss: float) -> torch.Tensor:
    """Per-row losses of (rows, vocab) ``logits2d`` (float32; 0 where ignored): no gradient."""
    num_valid = torch.ones((), device=logits2d.device, dtype=torch.float32)  # read only with a gradient
    return launch_loss_kernel(logits2d, targets1d, ignore_index, num_valid, None, softcap, z_loss)


@kernel_op("cross_entropy_losses_and_grad_", fake=_losses_output, mutates_args=("grad",))
def cross_entropy_losses_and_grad_(logits2d: torch.Tensor, targets1d: torch.Tensor, num_valid: torch.Tensor,
                                   grad: torch.Tensor, ignore_index: int, softcap: float,
                                   z_loss: float) -> torch.Tensor:
    """Per-row losses, and the gradient of their mean over ``num_valid`` rows written into
    ``grad`` ((rows, vocab), row-strided; it may be ``logits2d`` itself)."""
    return launch_loss_kernel(logits2d, targets1d, ignore_index, num_valid, grad, softcap, z_loss)


def take_stored_grads(ctx) -> tuple:
    """The gradients stored by the forward, once: they are scaled in place by the backward."""
    if not torch.compiler.is_compiling():
        if getattr(ctx, "grads_consumed", False):
            raise RuntimeError(
                "the Triton cross-entropy computes its gradient in the forward and can backpropagate once; "
                "to backpropagate again, recompute the loss (or use backend='torch')"
            )
        ctx.grads_consumed = True
    return ctx.saved_tensors


class CrossEntropyFunction(torch.autograd.Function):
    """Mean cross-entropy whose logits gradient is computed in the forward kernel."""

    @staticmethod
    def forward(ctx, logits: torch.Tensor, targets: torch.Tensor, ignore_index: int, softcap: float = 0.0,
                z_loss: float = 0.0, overwrite_logits: bool = False, grad_enabled: bool = True) -> torch.Tensor:
        """``grad_enabled``: the caller's grad mode (``needs_input_grad`` says only requires_grad,
        also under ``torch.no_grad()``, where no gradient must be computed)."""
        check_loss_options(softcap, z_loss)
        check_float("logits", logits)
        if logits.dim() < 1 or logits.shape[-1] == 0:
            raise ValueError(f"logits must have a non-empty vocab dimension, got shape {tuple(logits.shape)}")
        check_targets(targets, logits.shape[:-1], logits.device)
        # (tokens, vocab); detached: the gradient may be written over it, outside autograd's view tracking
        logits2d = logits.detach().reshape(-1, logits.shape[-1])
        in_place = overwrite_logits
        if logits2d.shape[-1] > 1 and logits2d.stride(-1) != 1:
            logits2d, in_place = logits2d.contiguous(), True  # a copy of our own: its gradient can go over it
        targets1d = targets.reshape(-1)  # (tokens,)
        num_valid = count_valid(targets1d, ignore_index)
        if grad_enabled and ctx.needs_input_grad[0]:
            grad = logits2d if in_place else torch.empty_like(logits2d, memory_format=torch.contiguous_format)
            losses = cross_entropy_losses_and_grad_(logits2d, targets1d, num_valid, grad, ignore_index, softcap,
                                                    z_loss)
            ctx.save_for_backward(grad)
        else:
            losses = cross_entropy_losses(logits2d, targets1d, ignore_index, softcap, z_loss)
        ctx.logits_shape = logits.shape
        return losses.sum() / num_valid

    @staticmethod
    def backward(ctx, grad_loss: torch.Tensor):
        (grad,) = take_stored_grads(ctx)
        scale_by_upstream_(grad, grad_loss)
        return grad.view(ctx.logits_shape), None, None, None, None, None, None


def cross_entropy_triton(logits: torch.Tensor, targets: torch.Tensor, ignore_index: int = -100, *,
                         softcap: float = 0.0, z_loss: float = 0.0, overwrite_logits: bool = False) -> torch.Tensor:
    """Triton mean cross-entropy (see ``cross_entropy``); autocast off inside."""
    with autocast_disabled(logits.device):
        return CrossEntropyFunction.apply(logits, targets, ignore_index, softcap, z_loss, overwrite_logits,
                                          torch.is_grad_enabled())


def cross_entropy(
    logits: torch.Tensor, targets: torch.Tensor, ignore_index: int = -100, backend: str = "auto", *,
    softcap: float = 0.0, z_loss: float = 0.0, overwrite_logits: bool = False,
) -> torch.Tensor:
    """Mean cross-entropy of (..., vocab) ``logits`` against (...) ``targets``, skipping ``ignore_index``.

    ``softcap`` (> 0: logits become ``softcap * tanh(logits / softcap)``) and ``z_loss`` (adds
    ``z_loss * logsumexp^2`` per position) are fused into the Triton kernel. With
    ``overwrite_logits=True`` the Triton path writes the logits' gradient over the logits (no
    second tokens x vocab buffer; the logits' values are gone once the loss is computed; the
    reference path ignores it).
    """
    if resolve_backend(backend, logits.device) == "triton":
        return cross_entropy_triton(logits, targets, ignore_index, softcap=softcap, z_loss=z_loss,
                                    overwrite_logits=overwrite_logits)
    return cross_entropy_reference(logits, targets, ignore_index, softcap=softcap, z_loss=z_loss)
