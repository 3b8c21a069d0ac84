"""Causal multi-head self-attention with optional RoPE and QK-norm, and its KV cache.

Heads are contiguous row blocks of the projection weights (head-major): rows
``h*d_k .. (h+1)*d_k-1`` of ``q_proj.weight`` belong to head h.
"""

from __future__ import annotations

import torch

from tritonlm import kernels
from .config import KernelPlan
from .layers import KernelModule, Linear, RMSNorm, RotaryPositionalEmbedding


class LayerKVCache:
    """Keys and values of one attention layer, preallocated as (batch, heads, max_len, d_k)."""

    def __init__(self, batch_size: int, num_heads: int, max_len: int, head_dim: int, device=None, dtype=None):
        shape = (batch_size, num_heads, max_len, head_dim)
        self.keys = torch.zeros(shape, device=device, dtype=dtype)
        self.values = torch.zeros(shape, device=device, dtype=dtype)
        self.max_len = max_len

    def append(self, k: torch.Tensor, v: torch.Tensor, start: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Store (batch, heads, t, d_k) keys/values at positions start..start+t-1 and return all
        keys/values up to there, (batch, heads, start+t, d_k)."""
        end = start + k.shape[-2]
        if end > self.max_len:
            raise ValueError(f"KV cache holds {self.max_len} positions; writing up to {end} would overflow. "
                             "Crop the context (generate() does) or allocate a longer cache.")
        if k.shape[0] != self.keys.shape[0]:
            raise ValueError(f"KV cache was allocated for batch {self.keys.shape[0]}, got batch {k.shape[0]}")
        self.keys[:, :, start:end] = k.detach()
        self.values[:, :, start:end] = v.detach()
        # under autocast the new keys may be bf16 while the cache holds the model's dtype
        return self.keys[:, :, :end].to(k.dtype), self.values[:, :, :end].to(v.dtype)


class KVCache:
    """Per-layer KV caches of a TransformerLM plus the number of positions already processed
    (``length``); ``TransformerLM.forward(ids, kv_cache=cache)`` appends to it and advances it."""

    def __init__(self, num_layers: int, batch_size: int, num_heads: int, max_len: int, head_dim: int,
                 device=None, dtype=None):
        self.layers = [LayerKVCache(batch_size, num_heads, max_len, head_dim, device, dtype) for _ in range(num_layers)]
        self.max_len = max_len
        self.length = 0

    def reset(self) -> None:
        """Forget everything (the buffers are reused)."""
        self.length = 0


class MultiHeadSelfAttention(KernelModule):
    """Causal MHSA: ``output_proj(attention(rope(q_proj x), rope(k_proj x), v_proj x))``.

    RoPE is applied when ``theta`` is given (it then needs ``max_seq_len``); ``qk_norm`` applies
    an RMSNorm over the head dimension to queries and keys (before RoPE), which keeps attention
    logits bounded. ``kernels`` picks the attention and rmsnorm backends.
    """

    def __init__(self, d_model: int, num_heads: int, max_seq_len: int | None = None, theta: float | None = None,
                 qk_norm: bool = False, eps: float = 1e-5, kernels: str | KernelPlan = "auto", device=None, dtype=None):
        super().__init__()
        if d_model % num_heads:
            raise ValueError(f"d_model={d_model} is not divisible by num_heads={num_heads}")
        self.d_model, self.num_heads, self.head_dim = d_model, num_heads, d_model // num_heads
        self.q_proj = Linear(d_model, d_model, device=device, dtype=dtype)
        self.k_proj = Linear(d_model, d_model, device=device, dtype=dtype)
        self.v_proj = Linear(d_model, d_model, device=device, dtype=dtype)
        self.output_proj = Linear(d_model, d_model, device=device, dtype=dtype)
        self.rope = None
        if theta is not None:
            if max_seq_len is None:
                raise ValueError("RoPE needs max_seq_len to build its tables")
            self.rope = RotaryPositionalEmbedding(theta, self.head_dim, max_seq_len, device=device)
        self.q_norm = self.k_norm = None
        if qk_norm:
            self.q_norm = RMSNorm(self.head_dim, eps, device=device, dtype=dtype, kernels=kernels)
            self.k_norm = RMSNorm(self.head_dim, eps, device=device, dtype=dtype, kernels=kernels)
        self._init_kernels(kernels, device)

    def _split_heads(self, x: torch.Tensor) -> torch.Tensor:
        return x.unflatten(-1, (self.num_heads, self.head_dim)).transpose(-3, -2)  # (..., T, d) -> (..., h, T, d_k)

    def forward(self, x: torch.Tensor, token_positions: torch.Tensor | None = None,
                kv_cache: LayerKVCache | None = None, start_pos: int = 0) -> torch.Tensor:
        """``x`` (..., seq, d_model) -> (..., seq, d_model). With ``kv_cache``, ``x`` holds the
        tokens at positions start_pos.. and attends to everything cached before them."""
        seq = x.shape[-2]
        q, k, v = (self._split_heads(proj(x)) for proj in (self.q_proj, self.k_proj, self.v_proj))
        if self.q_norm is not None:
            q, k = self.q_norm(q), self.k_norm(k)
        if self.rope is not None:
            if token_positions is None:
                token_positions = torch.arange(start_pos, start_pos + seq, device=x.device)
            positions = token_positions.unsqueeze(-2) if token_positions.dim() > 1 else token_positions
            q, k = self.rope(q, positions), self.rope(k, positions)  # positions broadcast over heads
        out = self._attend(q, k, v, kv_cache, start_pos)  # (..., h, T, d_k)
        return self.output_proj(out.transpose(-3, -2).flatten(-2))  # (..., T, d_model)

    def _attend(self, q, k, v, kv_cache: LayerKVCache | None, start_pos: int) -> torch.Tensor:
        """Causal attention of q (..., h, T, d_k) over the keys; with a cache the keys are the
        cached ones followed by the new ones, and the causal mask is aligned at the end."""
        if kv_cache is not None:
            k, v = kv_cache.append(k, v, start_pos)
        lead = q.shape[:-3]
        q4, k4, v4 = (t.reshape(-1, *t.shape[-3:]) for t in (q, k, v))  # (batch, h, T, d_k)
        out = kernels.attention(q4, k4, v4, causal=True, backend=self.kernel_plan.attention)
        return out.reshape(*lead, *out.shape[-3:])

    def extra_repr(self) -> str:
        return f"d_model={self.d_model}, num_heads={self.num_heads}, backend={self.kernel_plan.attention}"
