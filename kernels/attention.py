"""Scaled dot-product attention on (..., seq, head_dim) tensors.

Layers: the ``@triton.jit`` kernels; the launchers ``attention_forward`` / ``attention_backward``,
registered as operators ``torch.ops.tritonlm.attention_forward`` / ``attention_backward`` (the
forward differentiable through ``register_autograd``); ``attention_triton`` (dtype and autocast
handling); ``attention(..., backend=)``.

Triton design: flash attention 2. Scores are never materialised beyond one (queries x keys) tile.

* forward, one program per (batch*head, query tile), batch*head on the grid's first axis (its
  limit is 2^31 - 1, not 65,535) and row offsets in 64 bits (see ``tile_ptrs``): loops over key
  tiles keeping a running max ``m``, running sum ``l`` and the unnormalised output in float32 (online softmax, base-2
  exponentials with ``log2(e)`` folded into the scale); saves ``lse = m + log2(l)`` per row.
  Key tiles come in two kinds, chosen by a compile-time flag: *full* tiles (entirely visible,
  no masking work) and *boundary* tiles (the causal diagonal and the ragged sequence tail).
  Causal programs stop at the diagonal, skipping the tiles above it.
* backward: a preprocess kernel computes ``delta = rowsum(dO * O)``; a dk/dv kernel (one
  program per key tile) walks the query tiles that can see it, recomputing ``P = exp2(S - lse)``
  tile by tile; a dq kernel (one program per query tile) walks key tiles like the forward.

``causal`` lets query i see keys j <= i + (k_len - q_len): aligned at the end, as in decoding.
"""

from __future__ import annotations

import math

import torch

from ._backend import resolve_backend
from ._attention_backward import attention_backward
from ._attention_tiles import (LOG2E, MAX_SEQ_LEN, attention_grid, dot_precision, head_ptr, key_tile_ranges,
                                last_dim_contiguous, load_head_tile, load_seq_tile, store_rows, strides,
                                tile_ptrs, visible)
from ._blocks import attention_config_pruner, attention_tile_configs, head_dim_block
from ._checks import autocast_disabled, check_float, check_same_device, check_same_dtype, compute_dtype
from ._ops import kernel_op, launch
from ._reference_grads import AttentionFunction as ReferenceAttention
from ._triton import tl, triton


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
    as in incremental decoding). Scores are computed in float32; the backward is the
    closed form (see ``_reference_grads``), holding only the probabilities besides q, k, v, out.
    """
    return ReferenceAttention.apply(q, k, v, causal, mask)


# ----------------------------------------------------------------------------- forward


@triton.jit
def _forward_tiles(acc, l_i, m_i, q, k_base, v_base, stride_ks, stride_vs, rows, offs_d, q_len, k_len,
                   start, end, qk_scale, BLOCK_N: tl.constexpr, HEAD_DIM: tl.constexpr,
                   PAD_D: tl.constexpr, BOUNDARY: tl.constexpr, CAUSAL: tl.constexpr,
                   PRECISION: tl.constexpr):
    offs_n = tl.arange(0, BLOCK_N)
    for n0 in range(start, end, BLOCK_N):
        cols = n0 + offs_n
        k = load_seq_tile(k_base, cols, stride_ks, k_len, offs_d, HEAD_DIM, PAD_D, BOUNDARY)
        s = tl.dot(q, tl.trans(k), input_precision=PRECISION) * qk_scale  # (M, N), log2 units
        if BOUNDARY:
            s = tl.where(visible(rows, cols, q_len, k_len, CAUSAL), s, float("-inf"))
        m_new = tl.maximum(m_i, tl.max(s, axis=1))
        p = tl.exp2(s - m_new[:, None])
        alpha = tl.exp2(m_i - m_new)
        l_i = l_i * alpha + tl.sum(p, axis=1)
        v = load_seq_tile(v_base, cols, stride_vs, k_len, offs_d, HEAD_DIM, PAD_D, BOUNDARY)
        acc = tl.dot(p.to(v.dtype), v, acc * alpha[:, None], input_precision=PRECISION)
        m_i = m_new
    return acc, l_i, m_i


@triton.autotune(attention_tile_configs("forward"), key=["q_bucket", "k_bucket", "HEAD_DIM", "CAUSAL"],
                 prune_configs_by={"early_config_prune": attention_config_pruner("forward")})
@triton.jit
def _attention_forward_kernel(
    Q, K, V, O, LSE,
    sq_b, sq_h, sq_s, sk_b, sk_h, sk_s, sv_b, sv_h, sv_s, so_b, so_h, so_s,
    n_heads, q_len, k_len, q_bucket, k_bucket, qk_scale,  # buckets: autotuning key only
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr, HEAD_DIM: tl.constexpr,
    CAUSAL: tl.constexpr, PRECISION: tl.constexpr,
):
    qk_scale = tl.cast(qk_scale, tl.float32)  # fp32 whatever the launch passed (inductor passes fp64)
    # Last query tiles first: under a causal mask they do the most work, so they start earliest.
    bh = tl.program_id(0)
    m0 = (tl.num_programs(1) - 1 - tl.program_id(1)) * BLOCK_M
    rows = m0 + tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, BLOCK_D)
    PAD_D: tl.constexpr = BLOCK_D != HEAD_DIM
    q = load_head_tile(Q, bh, n_heads, sq_b, sq_h, sq_s, rows, q_len, offs_d, HEAD_DIM, PAD_D)
    k_base = head_ptr(K, bh, n_heads, sk_b, sk_h)
    v_base = head_ptr(V, bh, n_heads, sv_b, sv_h)
    m_i = tl.full([BLOCK_M], float("-inf"), dtype=tl.float32)
    l_i = tl.zeros([BLOCK_M], dtype=tl.float32)
    acc = tl.zeros([BLOCK_M, BLOCK_D], dtype=tl.float32)
    full_end, end = key_tile_ranges(m0, q_len, k_len, BLOCK_M, BLOCK_N, CAUSAL)
    acc, l_i, m_i = _forward_tiles(acc, l_i, m_i, q, k_base, v_base, sk_s, sv_s, rows, offs_d, q_len, k_len,
                                   0, full_end, qk_scale, BLOCK_N, HEAD_DIM, PAD_D, False, CAUSAL, PRECISION)
    acc, l_i, m_i = _forward_tiles(acc, l_i, m_i, q, k_base, v_base, sk_s, sv_s, rows, offs_d, q_len, k_len,
                                   full_end, end, qk_scale, BLOCK_N, HEAD_DIM, PAD_D, True, CAUSAL, PRECISION)
    out = acc / l_i[:, None]
    o_ptrs = tile_ptrs(head_ptr(O, bh, n_heads, so_b, so_h), rows, so_s, offs_d)
    store_rows(o_ptrs, out, rows, q_len, offs_d, HEAD_DIM)
    tl.store(LSE + bh.to(tl.int64) * q_len + rows, m_i + tl.log2(l_i), mask=rows < q_len)


# ----------------------------------------------------------------------------- launchers


def _check_attention_inputs(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool) -> None:
    for name, t in (("q", q), ("k", k), ("v", v)):
        check_float(name, t)
        if t.dim() != 4:
            raise ValueError(f"{name} must be 4-D (batch, heads, seq, head_dim), got shape {tuple(t.shape)}")
    check_same_device(q=q, k=k, v=v)
    check_same_dtype(q=q, k=k, v=v)
    if k.shape != v.shape:
        raise ValueError(f"k and v must have the same shape, got {tuple(k.shape)} and {tuple(v.shape)}")
    if q.shape[:2] != k.shape[:2] or q.shape[-1] != k.shape[-1]:
        raise ValueError(
            f"q {tuple(q.shape)} and k {tuple(k.shape)} must agree in batch, heads and head_dim "
            "(grouped-query attention: repeat k and v over heads first)"
        )
    head_dim = q.shape[-1]
    if not 1 <= head_dim <= 256:
        raise ValueError(f"head_dim {head_dim} is outside the supported 1..256; use backend='torch'")
    if k.shape[2] == 0:
        raise ValueError("k and v have no positions to attend to (seq length 0)")
    if max(q.shape[2], k.shape[2]) > MAX_SEQ_LEN:
        raise ValueError(
            f"sequences of {max(q.shape[2], k.shape[2])} positions exceed the {MAX_SEQ_LEN:,} the launch grid "
            "covers; split the sequence or use backend='torch'"
        )
    if causal and q.shape[2] > k.shape[2]:
        raise ValueError(
            f"causal attention with more queries ({q.shape[2]}) than keys ({k.shape[2]}) leaves the first "
            "queries nothing to attend to; pass as many keys as queries (or more, for decoding)"
        )


def _forward_outputs(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool):
    """Checked inputs, and the empty ``(out, lse)``: also the forward operator's fake implementation."""
    _check_attention_inputs(q, k, v, causal)
    batch, heads, q_len, _ = q.shape
    out = torch.empty(q.shape, device=q.device, dtype=q.dtype)
    lse = torch.empty(batch * heads, q_len, device=q.device, dtype=torch.float32)
    return out, lse


@kernel_op("attention_forward", fake=_forward_outputs)
def attention_forward(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                      causal: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Launch the forward: returns ``(out, lse)``; ``lse`` is float32 (batch*heads, q_len), base 2.
    Differentiable in q, k and v (the backward launches ``attention_backward``)."""
    out, lse = _forward_outputs(q, k, v, causal)
    q, k, v = (last_dim_contiguous(t) for t in (q, k, v))
    batch, heads, q_len, head_dim = q.shape
    k_len = k.shape[2]
    if q_len == 0 or batch * heads == 0:
        return out, lse
    launch(_attention_forward_kernel, attention_grid(batch * heads, q_len, "BLOCK_M"))(
        q, k, v, out, lse, *strides(q), *strides(k), *strides(v), *strides(out),
        heads, q_len, k_len, triton.next_power_of_2(q_len), triton.next_power_of_2(k_len),
        LOG2E / math.sqrt(head_dim),
        BLOCK_D=head_dim_block(head_dim), HEAD_DIM=head_dim, CAUSAL=causal, PRECISION=dot_precision(q.dtype),
    )
    return out, lse


def _save_for_backward(ctx, inputs, output) -> None:
    q, k, v, causal = inputs
    ctx.save_for_backward(q, k, v, *output)
    ctx.causal = causal


def _backward(ctx, do: torch.Tensor, _dlse: torch.Tensor | None):
    q, k, v, out, lse = ctx.saved_tensors
    dq, dk, dv = attention_backward(do, q, k, v, out, lse, ctx.causal)
    return dq, dk, dv, None


attention_forward.register_autograd(_backward, setup_context=_save_for_backward)


def attention_triton(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool = True) -> torch.Tensor:
    """Triton flash attention on (batch, heads, seq, head_dim) tensors, differentiable; computes in
    one dtype (see ``attention``) with autocast off inside."""
    if all(t.is_floating_point() for t in (q, k, v)):
        dtype = compute_dtype(q.device, q, k, v)
        q, k, v = (t.to(dtype) for t in (q, k, v))
    with autocast_disabled(q.device):
        out, _ = attention_forward(q, k, v, causal)
    return out


def attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool = True, backend: str = "auto"
) -> torch.Tensor:
    """Attention on (batch, heads, seq, head_dim) tensors.

    The Triton path computes in one dtype: under autocast the autocast dtype (like
    F.scaled_dot_product_attention), otherwise the promoted dtype of q, k and v.
    """
    if resolve_backend(backend, q.device) == "triton":
        return attention_triton(q, k, v, causal)
    return attention_reference(q, k, v, causal=causal)
