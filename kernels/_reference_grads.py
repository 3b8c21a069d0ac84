"""Hand-written backward passes for the from-scratch PyTorch references (the CPU training path).

Letting autograd differentiate the references op by op keeps every intermediate alive and
runs one extra pass per op (for softmax: max, subtract, exp, sum, divide, each with its own
backward). These ``torch.autograd.Function``s compute the same values in float32 (float64 stays float64, for gradcheck) with in-place
updates of their own temporaries, save only what the backward needs (mostly the inputs and the
output, which autograd holds anyway), and apply the closed-form gradients. A forward never
returns an alias of one of its intermediates (a tensor last written in place, or ``.to`` of its
own dtype): under torch.compile, torch 2.11 routes the gradient of such an output to the wrong
input (pytorch/pytorch#180642) and every gradient upstream of the op comes out wrong.

* softmax: ``dx = y * (dy - sum(dy * y))``;
* attention: ``dV = P^T dO``, ``dS = P * (dO V^T - rowsum(dO * O))``, ``dQ = dS K / sqrt(d)``,
  ``dK = dS^T Q / sqrt(d)``;
* cross-entropy: ``dlogits = (softmax * (1 + 2 z lse) - onehot) / num_valid`` per kept row,
  times ``1 - tanh^2`` under soft-capping;
* RMSNorm: ``dx = rstd * (w dy - xhat * mean(w dy xhat))``, ``dw = sum(dy * xhat)``.

Inputs are never modified. Results come back in the input dtype; NaN behaviour matches the
op-by-op formulas (a fully masked attention row or softmax row of -inf gives NaN, a mean over
no kept targets is 0/0 = NaN).
"""

from __future__ import annotations

import math

import torch

from ._checks import autocast_disabled

_WIDE = (torch.float32, torch.float64)


def _float(t: torch.Tensor) -> torch.Tensor:
    """``t`` in float32, or float64 (for gradcheck) when it is; no copy when no cast is needed."""
    return t if t.dtype in _WIDE else t.float()


def _owned_float(t: torch.Tensor) -> torch.Tensor:
    """Like ``_float`` but a tensor this function may overwrite: a copy unless the cast made one."""
    return t.clone() if t.dtype in _WIDE else t.float()


def _returned(t: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """``t`` in ``dtype`` for a forward to return: ``t`` itself, never an alias made by ``.to``
    (see the module docstring for the torch 2.11 bug that makes the difference)."""
    return t if t.dtype == dtype else t.to(dtype)


def _grad_like(grad: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """``grad`` summed over broadcast dimensions down to ``like``'s shape, in ``like``'s dtype."""
    if grad.shape != like.shape:
        grad = grad.sum_to_size(like.shape)
    return grad.to(like.dtype)


def softmax_rows_(scores: torch.Tensor, dim: int) -> torch.Tensor:
    """Softmax over ``dim`` of the float32 tensor ``scores``, in place (max subtracted first)."""
    exp = _exp_shifted_(scores, dim)
    return exp.div_(exp.sum(dim=dim, keepdim=True))


def _exp_shifted_(scores: torch.Tensor, dim: int) -> torch.Tensor:
    """``exp(scores - max)`` over ``dim``, in place: softmax before its normalisation."""
    return scores.sub_(scores.amax(dim=dim, keepdim=True)).exp_()


class SoftmaxFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, dim: int) -> torch.Tensor:
        exp = _exp_shifted_(_owned_float(x), dim)
        y = exp / exp.sum(dim=dim, keepdim=True)  # out of place: it is returned
        ctx.save_for_backward(y)
        ctx.dim = dim
        return _returned(y, x.dtype)

    @staticmethod
    def backward(ctx, dy: torch.Tensor):
        (y,) = ctx.saved_tensors
        dx = _float(dy) * y  # (dy - sum(dy y)) * y, as dy*y - y*sum(dy*y)
        dx.addcmul_(y, dx.sum(dim=ctx.dim, keepdim=True), value=-1.0)
        return dx.to(dy.dtype), None


def causal_disallowed(q_len: int, k_len: int, device: torch.device) -> torch.Tensor:
    """(q_len, k_len) boolean, True where query i may NOT see key j (j > i + k_len - q_len)."""
    rows = torch.arange(q_len, device=device)[:, None] + (k_len - q_len)
    return torch.arange(k_len, device=device)[None, :] > rows


class AttentionFunction(torch.autograd.Function):
    """``softmax(Q K^T / sqrt(d) + mask) V`` in float32 on (..., seq, head_dim) tensors."""

    @staticmethod
    def forward(ctx, q, k, v, causal: bool, mask: torch.Tensor | None):
        scale = 1.0 / math.sqrt(q.shape[-1])
        qf, kf, vf = _float(q), _float(k), _float(v)
        with autocast_disabled(q.device):  # float32 matmuls, also under autocast
            probs = torch.matmul(qf * scale, kf.transpose(-2, -1))  # (..., q_len, k_len)
            out = AttentionFunction._softmax_times_v(probs, vf, causal, mask)
        ctx.save_for_backward(q, k, v, probs, out)
        ctx.scale = scale
        return _returned(out, q.dtype)

    @staticmethod
    def _softmax_times_v(probs, vf, causal: bool, mask: torch.Tensor | None) -> torch.Tensor:
        """Mask the scores, turn them into probabilities in place, and return ``probs @ v``."""
        q_len, k_len = probs.shape[-2:]
        if causal:
            probs.masked_fill_(causal_disallowed(q_len, k_len, probs.device), float("-inf"))
        if mask is not None:
            probs.masked_fill_(~mask.to(torch.bool), float("-inf"))
        softmax_rows_(probs, -1)
        return torch.matmul(probs, vf)  # (..., q_len, head_dim), float32

    @staticmethod
    def backward(ctx, do: torch.Tensor):
        q, k, v, probs, out = ctx.saved_tensors
        qf, kf, vf, dof = _float(q), _float(k), _float(v), _float(do)
        dv = torch.matmul(probs.transpose(-2, -1), dof)
        ds = torch.matmul(dof, vf.transpose(-2, -1))  # dP, turned into dS in place
        delta = (dof * out).sum(dim=-1, keepdim=True)  # rowsum(dP * P) = rowsum(dO * O)
        ds.sub_(delta).mul_(probs)
        dq = torch.matmul(ds, kf).mul_(ctx.scale)
        dk = torch.matmul(ds.transpose(-2, -1), qf).mul_(ctx.scale)
        return _grad_like(dq, q), _grad_like(dk, k), _grad_like(dv, v), None, None


class CrossEntropyFunction(torch.autograd.Function):
    """Mean ``lse - logit[target] + z_loss * lse^2`` over kept rows of (tokens, vocab) logits."""

    @staticmethod
    def forward(ctx, logits, targets, ignore_index: int, softcap: float, z_loss: float):
        x = _float(logits)
        tanh = None
        if softcap > 0:
            tanh = torch.tanh(x / softcap)
            x = tanh * softcap
        keep = targets != ignore_index
        safe_targets = torch.where(keep, targets, torch.zeros_like(targets))[:, None]  # (tokens, 1)
        row_max = x.amax(dim=-1, keepdim=True)
        exp = (x - row_max).exp_()  # (tokens, vocab); kept for the backward
        sum_exp = exp.sum(dim=-1)
        lse = sum_exp.log() + row_max.squeeze(-1)
        losses = lse - x.gather(-1, safe_targets).squeeze(-1)
        if z_loss:
            losses = losses + z_loss * lse.square()
        num_valid = keep.sum()
        ctx.save_for_backward(exp, sum_exp, lse, keep, safe_targets, num_valid, tanh)
        ctx.softcap, ctx.z_loss, ctx.logits_dtype = softcap, z_loss, logits.dtype
        return torch.where(keep, losses, torch.zeros_like(losses)).sum() / num_valid

    @staticmethod
    def backward(ctx, grad_loss: torch.Tensor):
        exp, sum_exp, lse, keep, safe_targets, num_valid, tanh = ctx.saved_tensors
        row_scale = keep * (grad_loss.to(exp.dtype) / num_valid)  # (tokens,): d(mean)/d(row loss)
        prob_scale = row_scale / sum_exp  # exp / sum_exp is the softmax
        if ctx.z_loss:  # d(z lse^2)/dx = 2 z lse softmax
            prob_scale = prob_scale * (1 + 2 * ctx.z_loss * lse)
        grad = exp * prob_scale[:, None]
        grad.scatter_add_(-1, safe_targets, -row_scale[:, None])
        if tanh is not None:  # chain rule through softcap * tanh(x / softcap)
            grad.mul_(1 - tanh.square())
        return grad.to(ctx.logits_dtype), None, None, None, None


class RMSNormFunction(torch.autograd.Function):
    """``x * rsqrt(mean(x^2) + eps) * weight`` over the last dimension, in float32."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
        xf = _float(x)
        rstd = xf.square().mean(dim=-1, keepdim=True).add_(eps).rsqrt_()  # (..., 1)
        y = (xf * rstd) * _float(weight)  # out of place: it is returned
        ctx.save_for_backward(x, weight, rstd)
        return _returned(y, x.dtype)

    @staticmethod
    def backward(ctx, dy: torch.Tensor):
        x, weight, rstd = ctx.saved_tensors
        dyf = _float(dy)
        xhat = _float(x) * rstd
        dweight = (dyf * xhat).reshape(-1, x.shape[-1]).sum(dim=0)  # (cols,)
        wdy = dyf * _float(weight)
        mean_wdy_xhat = (wdy * xhat).mean(dim=-1, keepdim=True)
        dx = wdy.sub_(xhat.mul_(mean_wdy_xhat)).mul_(rstd)
        return dx.to(x.dtype), dweight.to(weight.dtype), None
