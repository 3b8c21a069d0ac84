"""Scaled dot-product attention on (..., seq, head_dim) tensors."""

from __future__ import annotations

import math

import torch

from ._backend import resolve_backend
from .softmax import softmax_reference


def attention_reference(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    causal: bool = False,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """From-scratch attention: ``softmax(QK^T / sqrt(d) + mask) V``.

    ``mask`` is boolean, True where attention is allowed, broadcastable to (..., q_len, k_len);
    ``causal`` additionally lets query i see keys j <= i (aligned at the end when q_len < k_len,
    as in incremental decoding). Scores are computed in float32.
    """
    d = q.shape[-1]
    scores = torch.matmul(q.float(), k.float().transpose(-2, -1)) / math.sqrt(d)
    q_len, k_len = q.shape[-2], k.shape[-2]
    if causal:
        rows = torch.arange(q_len, device=q.device)[:, None] + (k_len - q_len)
        cols = torch.arange(k_len, device=q.device)[None, :]
        scores = scores.masked_fill(cols > rows, float("-inf"))
    if mask is not None:
        scores = scores.masked_fill(~mask.to(torch.bool), float("-inf"))
    probs = softmax_reference(scores, dim=-1)
    return torch.matmul(probs, v.float()).to(q.dtype)


def attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool = True, backend: str = "auto"
) -> torch.Tensor:
    """Attention on (batch, heads, seq, head_dim) tensors."""
    if resolve_backend(backend, q.device) == "triton":
        raise NotImplementedError("the Triton attention kernel is being written")
    return attention_reference(q, k, v, causal=causal)
