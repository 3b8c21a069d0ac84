"""Functional building blocks of the LM, from scratch: softmax, SiLU, scaled dot-product attention.

Softmax and attention reuse the PyTorch references in ``kernels/`` (the same code the Triton
kernels are checked against), so the model and the kernels share one definition of each op.
"""

from __future__ import annotations

import torch

from kernels import attention_reference, softmax_reference


def softmax(x: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """Numerically stable softmax over ``dim`` (the max is subtracted; float32 accumulation)."""
    return softmax_reference(x, dim=dim)


def silu(x: torch.Tensor) -> torch.Tensor:
    """SiLU (swish): ``x * sigmoid(x)``."""
    return x * torch.sigmoid(x)


def scaled_dot_product_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None = None
) -> torch.Tensor:
    """``softmax(Q K^T / sqrt(d_k)) V`` on (..., queries, d_k), (..., keys, d_k), (..., keys, d_v).

    ``mask`` is boolean, True where a query may attend to a key, broadcastable to
    (..., queries, keys). Scores are computed in float32 and the result returned in q's dtype.
    """
    return attention_reference(q, k, v, mask=mask)
