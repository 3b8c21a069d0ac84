"""Functional building blocks of the LM, from scratch: softmax, SiLU, scaled dot-product attention.

Softmax and attention reuse the PyTorch references in ``kernels/`` (the same code the Triton
kernels are checked against), so the model and the kernels share one definition of each op.
"""

from __future__ import annotations

import torch

from tritonlm.kernels import attention_reference, softmax_reference


def softmax(x: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """Numerically stable softmax over ``dim`` (the max is subtracted; float32 accumulation)."""
    return softmax_reference(x, dim=dim)


def silu(x: torch.Tensor) -> torch.Tensor:
    """SiLU (swish): ``x * sigmoid(x)``."""
    return x * torch.sigmoid(x)


class _SiLUGate(torch.autograd.Function):
    """``silu(a) * b`` saving only ``a`` and ``b``, with the closed-form backward
    ``da = g b s (1 + a (1 - s))``, ``db = g a s`` (s = sigmoid(a)).

    The forward returns a tensor made out of place: under torch.compile, torch 2.11 sends the
    gradient of a Function's output that was last written in place to the wrong input
    (pytorch/pytorch#180642), which silently corrupted every gradient below the FFN."""

    @staticmethod
    def forward(ctx, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(a, b)
        return torch.sigmoid(a).mul_(a) * b

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        a, b = ctx.saved_tensors
        s = torch.sigmoid(a)
        silu_a = a * s
        db = grad * silu_a
        # s + silu(a) (1 - s) = s + silu(a) - silu(a) s, built in place in silu_a
        da = silu_a.addcmul_(silu_a, s, value=-1.0).add_(s).mul_(grad).mul_(b)
        return da, db


def silu_gate(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """The SwiGLU gate ``silu(a) * b`` (same shapes and dtype), differentiable in both."""
    return _SiLUGate.apply(a, b)


def scaled_dot_product_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None = None
) -> torch.Tensor:
    """``softmax(Q K^T / sqrt(d_k)) V`` on (..., queries, d_k), (..., keys, d_k), (..., keys, d_v).

    ``mask`` is boolean, True where a query may attend to a key, broadcastable to
    (..., queries, keys). Scores are computed in float32 and the result returned in q's dtype.
    """
    return attention_reference(q, k, v, mask=mask)
