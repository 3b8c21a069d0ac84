"""Scaled dot-product attention on (..., seq, head_dim) tensors.

Triton design: flash attention 2. Scores are never materialised beyond one (queries x keys) tile.

* forward, one program per (query tile, batch*head): loops over key tiles keeping a running max
  ``m``, running sum ``l`` and the unnormalised output in float32 (online softmax, base-2
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
import triton
import triton.language as tl

from ._backend import resolve_backend
from ._blocks import attention_backward_blocks, attention_forward_blocks
from ._checks import check_float, check_same_device, check_same_dtype
from .softmax import softmax_reference

LOG2E = 1.4426950408889634


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


# ----------------------------------------------------------------------------- shared pieces


@triton.jit
def _load_rows(ptrs, rows, n_rows, offs_d, HEAD_DIM: tl.constexpr, PAD_D: tl.constexpr,
               CHECK_ROWS: tl.constexpr):
    """Load a (rows, head_dim) tile; masks only what the compile-time flags say may be out of range."""
    if CHECK_ROWS:
        if PAD_D:
            x = tl.load(ptrs, mask=(rows < n_rows)[:, None] & (offs_d < HEAD_DIM)[None, :], other=0.0)
        else:
            x = tl.load(ptrs, mask=(rows < n_rows)[:, None], other=0.0)
    else:
        if PAD_D:
            x = tl.load(ptrs, mask=(offs_d < HEAD_DIM)[None, :], other=0.0)
        else:
            x = tl.load(ptrs)
    return x


@triton.jit
def _store_rows(ptrs, x, rows, n_rows, offs_d, HEAD_DIM: tl.constexpr):
    tl.store(ptrs, x.to(ptrs.dtype.element_ty), mask=(rows < n_rows)[:, None] & (offs_d < HEAD_DIM)[None, :])


@triton.jit
def _key_tile_ranges(m0, q_len, k_len, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, CAUSAL: tl.constexpr):
    """Key tiles seen by query rows [m0, m0+BLOCK_M): full tiles [0, full_end), boundary [full_end, end)."""
    offset = k_len - q_len
    if CAUSAL:
        full_end = (tl.minimum(m0 + offset + 1, k_len) // BLOCK_N) * BLOCK_N
        end = tl.minimum(k_len, m0 + BLOCK_M + offset)
    else:
        full_end = (k_len // BLOCK_N) * BLOCK_N
        end = k_len
    return full_end, end


@triton.jit
def _visible(rows, cols, q_len, k_len, CAUSAL: tl.constexpr):
    """(rows, cols) mask of keys that exist and, when causal, that the query row may see."""
    valid = (cols < k_len)[None, :]
    if CAUSAL:
        valid = valid & (cols[None, :] <= rows[:, None] + (k_len - q_len))
    return valid


# ----------------------------------------------------------------------------- forward


@triton.jit
def _forward_tiles(acc, l_i, m_i, q, k_base, v_base, stride_ks, stride_vs, rows, offs_d, q_len, k_len,
                   start, end, qk_scale, BLOCK_N: tl.constexpr, HEAD_DIM: tl.constexpr,
                   PAD_D: tl.constexpr, BOUNDARY: tl.constexpr, CAUSAL: tl.constexpr,
                   PRECISION: tl.constexpr):
    offs_n = tl.arange(0, BLOCK_N)
    for n0 in range(start, end, BLOCK_N):
        cols = n0 + offs_n
        k = _load_rows(k_base + cols[:, None] * stride_ks + offs_d[None, :], cols, k_len, offs_d,
                       HEAD_DIM, PAD_D, BOUNDARY)
        s = tl.dot(q, tl.trans(k), input_precision=PRECISION) * qk_scale  # (M, N), log2 units
        if BOUNDARY:
            s = tl.where(_visible(rows, cols, q_len, k_len, CAUSAL), s, float("-inf"))
        m_new = tl.maximum(m_i, tl.max(s, axis=1))
        p = tl.exp2(s - m_new[:, None])
        alpha = tl.exp2(m_i - m_new)
        l_i = l_i * alpha + tl.sum(p, axis=1)
        v = _load_rows(v_base + cols[:, None] * stride_vs + offs_d[None, :], cols, k_len, offs_d,
                       HEAD_DIM, PAD_D, BOUNDARY)
        acc = tl.dot(p.to(v.dtype), v, acc * alpha[:, None], input_precision=PRECISION)
        m_i = m_new
    return acc, l_i, m_i


@triton.jit
def _attention_forward_kernel(
    Q, K, V, O, LSE,
    sq_b, sq_h, sq_s, sk_b, sk_h, sk_s, sv_b, sv_h, sv_s, so_b, so_h, so_s,
    n_heads, q_len, k_len, qk_scale,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr, HEAD_DIM: tl.constexpr,
    CAUSAL: tl.constexpr, PRECISION: tl.constexpr,
):
    m0 = tl.program_id(0) * BLOCK_M
    bh = tl.program_id(1)
    b = (bh // n_heads).to(tl.int64)
    h = (bh % n_heads).to(tl.int64)
    rows = m0 + tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, BLOCK_D)
    PAD_D: tl.constexpr = BLOCK_D != HEAD_DIM
    q = _load_rows(Q + b * sq_b + h * sq_h + rows[:, None] * sq_s + offs_d[None, :], rows, q_len, offs_d,
                   HEAD_DIM, PAD_D, True)
    k_base = K + b * sk_b + h * sk_h
    v_base = V + b * sv_b + h * sv_h
    m_i = tl.full([BLOCK_M], float("-inf"), dtype=tl.float32)
    l_i = tl.zeros([BLOCK_M], dtype=tl.float32)
    acc = tl.zeros([BLOCK_M, BLOCK_D], dtype=tl.float32)
    full_end, end = _key_tile_ranges(m0, q_len, k_len, BLOCK_M, BLOCK_N, CAUSAL)
    acc, l_i, m_i = _forward_tiles(acc, l_i, m_i, q, k_base, v_base, sk_s, sv_s, rows, offs_d, q_len, k_len,
                                   0, full_end, qk_scale, BLOCK_N, HEAD_DIM, PAD_D, False, CAUSAL, PRECISION)
    acc, l_i, m_i = _forward_tiles(acc, l_i, m_i, q, k_base, v_base, sk_s, sv_s, rows, offs_d, q_len, k_len,
                                   full_end, end, qk_scale, BLOCK_N, HEAD_DIM, PAD_D, True, CAUSAL, PRECISION)
    out = acc / l_i[:, None]
    _store_rows(O + b * so_b + h * so_h + rows[:, None] * so_s + offs_d[None, :], out, rows, q_len, offs_d,
                HEAD_DIM)
    tl.store(LSE + bh.to(tl.int64) * q_len + rows, m_i + tl.log2(l_i), mask=rows < q_len)


# ----------------------------------------------------------------------------- backward


@triton.jit
def _attention_delta_kernel(O, DO, DELTA, so_b, so_h, so_s, sdo_b, sdo_h, sdo_s, n_heads, q_len,
                            BLOCK_M: tl.constexpr, BLOCK_D: tl.constexpr, HEAD_DIM: tl.constexpr):
    """``delta[row] = sum(dO[row] * O[row])`` in float32: the softmax backward's row correction."""
    m0 = tl.program_id(0) * BLOCK_M
    bh = tl.program_id(1)
    b = (bh // n_heads).to(tl.int64)
    h = (bh % n_heads).to(tl.int64)
    rows = m0 + tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, BLOCK_D)
    PAD_D: tl.constexpr = BLOCK_D != HEAD_DIM
    o = _load_rows(O + b * so_b + h * so_h + rows[:, None] * so_s + offs_d[None, :], rows, q_len, offs_d,
                   HEAD_DIM, PAD_D, True)
    do = _load_rows(DO + b * sdo_b + h * sdo_h + rows[:, None] * sdo_s + offs_d[None, :], rows, q_len, offs_d,
                    HEAD_DIM, PAD_D, True)
    delta = tl.sum(o.to(tl.float32) * do.to(tl.float32), axis=1)
    tl.store(DELTA + bh.to(tl.int64) * q_len + rows, delta, mask=rows < q_len)


@triton.jit
def _dkdv_tiles(dk, dv, k, v, q_base, do_base, lse_base, delta_base, stride_qs, stride_dos, cols, offs_d,
                q_len, k_len, start, end, qk_scale, BLOCK_M: tl.constexpr, HEAD_DIM: tl.constexpr,
                PAD_D: tl.constexpr, BOUNDARY: tl.constexpr, PRECISION: tl.constexpr):
    """Accumulate dk, dv of one key tile over query tiles [start, end); transposed (keys x queries)."""
    offs_m = tl.arange(0, BLOCK_M)
    for m0 in range(start, end, BLOCK_M):
        rows = m0 + offs_m
        q = _load_rows(q_base + rows[:, None] * stride_qs + offs_d[None, :], rows, q_len, offs_d,
                       HEAD_DIM, PAD_D, True)
        do = _load_rows(do_base + rows[:, None] * stride_dos + offs_d[None, :], rows, q_len, offs_d,
                        HEAD_DIM, PAD_D, True)
        # Rows past q_len get lse = +inf, so their probabilities are exactly 0.
        lse = tl.load(lse_base + rows, mask=rows < q_len, other=float("inf"))
        delta = tl.load(delta_base + rows, mask=rows < q_len, other=0.0)
        p_t = tl.exp2(tl.dot(k, tl.trans(q), input_precision=PRECISION) * qk_scale - lse[None, :])  # (N, M)
        if BOUNDARY:  # causal diagonal: key col may be seen only by rows >= col - offset
            p_t = tl.where(cols[:, None] <= rows[None, :] + (k_len - q_len), p_t, 0.0)
        dv = tl.dot(p_t.to(do.dtype), do, dv, input_precision=PRECISION)
        dp_t = tl.dot(v, tl.trans(do), input_precision=PRECISION)  # (N, M)
        ds_t = p_t * (dp_t - delta[None, :])
        dk = tl.dot(ds_t.to(q.dtype), q, dk, input_precision=PRECISION)
    return dk, dv


@triton.jit
def _attention_dkdv_kernel(
    Q, K, V, DO, DK, DV, LSE, DELTA,
    sq_b, sq_h, sq_s, sk_b, sk_h, sk_s, sv_b, sv_h, sv_s, sdo_b, sdo_h, sdo_s,
    n_heads, q_len, k_len, qk_scale, sm_scale,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr, HEAD_DIM: tl.constexpr,
    CAUSAL: tl.constexpr, PRECISION: tl.constexpr,
):
    n0 = tl.program_id(0) * BLOCK_N
    bh = tl.program_id(1)
    b = (bh // n_heads).to(tl.int64)
    h = (bh % n_heads).to(tl.int64)
    cols = n0 + tl.arange(0, BLOCK_N)
    offs_d = tl.arange(0, BLOCK_D)
    PAD_D: tl.constexpr = BLOCK_D != HEAD_DIM
    k = _load_rows(K + b * sk_b + h * sk_h + cols[:, None] * sk_s + offs_d[None, :], cols, k_len, offs_d,
                   HEAD_DIM, PAD_D, True)
    v = _load_rows(V + b * sv_b + h * sv_h + cols[:, None] * sv_s + offs_d[None, :], cols, k_len, offs_d,
                   HEAD_DIM, PAD_D, True)
    dk = tl.zeros([BLOCK_N, BLOCK_D], dtype=tl.float32)
    dv = tl.zeros([BLOCK_N, BLOCK_D], dtype=tl.float32)
    q_base = Q + b * sq_b + h * sq_h
    do_base = DO + b * sdo_b + h * sdo_h
    lse_base = LSE + bh.to(tl.int64) * q_len
    delta_base = DELTA + bh.to(tl.int64) * q_len
    if CAUSAL:
        # Query tiles before `start` cannot see this key tile; those before `full_start` see part of it.
        offset = k_len - q_len
        start = (tl.maximum(n0 - offset, 0) // BLOCK_M) * BLOCK_M
        full_start = tl.maximum(tl.cdiv(tl.maximum(n0 + BLOCK_N - 1 - offset, 0), BLOCK_M) * BLOCK_M, start)
        full_start = tl.minimum(full_start, q_len)
        dk, dv = _dkdv_tiles(dk, dv, k, v, q_base, do_base, lse_base, delta_base, sq_s, sdo_s, cols, offs_d,
                             q_len, k_len, start, full_start, qk_scale, BLOCK_M, HEAD_DIM, PAD_D, True, PRECISION)
    else:
        full_start = 0
    dk, dv = _dkdv_tiles(dk, dv, k, v, q_base, do_base, lse_base, delta_base, sq_s, sdo_s, cols, offs_d,
                         q_len, k_len, full_start, q_len, qk_scale, BLOCK_M, HEAD_DIM, PAD_D, False, PRECISION)
    dkv_offset = bh.to(tl.int64) * k_len * HEAD_DIM  # dk, dv are contiguous (batch*heads, k_len, head_dim)
    _store_rows(DK + dkv_offset + cols[:, None] * HEAD_DIM + offs_d[None, :], dk * sm_scale, cols, k_len, offs_d,
                HEAD_DIM)
    _store_rows(DV + dkv_offset + cols[:, None] * HEAD_DIM + offs_d[None, :], dv, cols, k_len, offs_d, HEAD_DIM)


@triton.jit
def _dq_tiles(dq, q, do, lse, delta, k_base, v_base, stride_ks, stride_vs, rows, offs_d, q_len, k_len,
              start, end, qk_scale, BLOCK_N: tl.constexpr, HEAD_DIM: tl.constexpr, PAD_D: tl.constexpr,
              BOUNDARY: tl.constexpr, CAUSAL: tl.constexpr, PRECISION: tl.constexpr):
    offs_n = tl.arange(0, BLOCK_N)
    for n0 in range(start, end, BLOCK_N):
        cols = n0 + offs_n
        k = _load_rows(k_base + cols[:, None] * stride_ks + offs_d[None, :], cols, k_len, offs_d,
                       HEAD_DIM, PAD_D, BOUNDARY)
        v = _load_rows(v_base + cols[:, None] * stride_vs + offs_d[None, :], cols, k_len, offs_d,
                       HEAD_DIM, PAD_D, BOUNDARY)
        p = tl.exp2(tl.dot(q, tl.trans(k), input_precision=PRECISION) * qk_scale - lse[:, None])  # (M, N)
        if BOUNDARY:
            p = tl.where(_visible(rows, cols, q_len, k_len, CAUSAL), p, 0.0)
        dp = tl.dot(do, tl.trans(v), input_precision=PRECISION)
        ds = p * (dp - delta[:, None])
        dq = tl.dot(ds.to(k.dtype), k, dq, input_precision=PRECISION)
    return dq


@triton.jit
def _attention_dq_kernel(
    Q, K, V, DO, DQ, LSE, DELTA,
    sq_b, sq_h, sq_s, sk_b, sk_h, sk_s, sv_b, sv_h, sv_s, sdo_b, sdo_h, sdo_s,
    n_heads, q_len, k_len, qk_scale, sm_scale,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr, HEAD_DIM: tl.constexpr,
    CAUSAL: tl.constexpr, PRECISION: tl.constexpr,
):
    m0 = tl.program_id(0) * BLOCK_M
    bh = tl.program_id(1)
    b = (bh // n_heads).to(tl.int64)
    h = (bh % n_heads).to(tl.int64)
    rows = m0 + tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, BLOCK_D)
    PAD_D: tl.constexpr = BLOCK_D != HEAD_DIM
    q = _load_rows(Q + b * sq_b + h * sq_h + rows[:, None] * sq_s + offs_d[None, :], rows, q_len, offs_d,
                   HEAD_DIM, PAD_D, True)
    do = _load_rows(DO + b * sdo_b + h * sdo_h + rows[:, None] * sdo_s + offs_d[None, :], rows, q_len, offs_d,
                    HEAD_DIM, PAD_D, True)
    lse = tl.load(LSE + bh.to(tl.int64) * q_len + rows, mask=rows < q_len, other=float("inf"))
    delta = tl.load(DELTA + bh.to(tl.int64) * q_len + rows, mask=rows < q_len, other=0.0)
    k_base = K + b * sk_b + h * sk_h
    v_base = V + b * sv_b + h * sv_h
    dq = tl.zeros([BLOCK_M, BLOCK_D], dtype=tl.float32)
    full_end, end = _key_tile_ranges(m0, q_len, k_len, BLOCK_M, BLOCK_N, CAUSAL)
    dq = _dq_tiles(dq, q, do, lse, delta, k_base, v_base, sk_s, sv_s, rows, offs_d, q_len, k_len, 0, full_end,
                   qk_scale, BLOCK_N, HEAD_DIM, PAD_D, False, CAUSAL, PRECISION)
    dq = _dq_tiles(dq, q, do, lse, delta, k_base, v_base, sk_s, sv_s, rows, offs_d, q_len, k_len, full_end, end,
                   qk_scale, BLOCK_N, HEAD_DIM, PAD_D, True, CAUSAL, PRECISION)
    dq_offset = bh.to(tl.int64) * q_len * HEAD_DIM  # dq is contiguous (batch*heads, q_len, head_dim)
    _store_rows(DQ + dq_offset + rows[:, None] * HEAD_DIM + offs_d[None, :], dq * sm_scale, rows, q_len, offs_d,
                HEAD_DIM)


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
    if causal and q.shape[2] > k.shape[2]:
        raise ValueError(
            f"causal attention with more queries ({q.shape[2]}) than keys ({k.shape[2]}) leaves the first "
            "queries nothing to attend to; pass as many keys as queries (or more, for decoding)"
        )


def _last_dim_contiguous(t: torch.Tensor) -> torch.Tensor:
    return t if t.stride(-1) == 1 else t.contiguous()


def _strides(t: torch.Tensor) -> tuple[int, int, int]:
    return t.stride(0), t.stride(1), t.stride(2)


def _precision(dtype: torch.dtype) -> str:
    # float32 inputs get exact float32 dot products (matching the reference); 16-bit use tensor cores.
    return "ieee" if dtype == torch.float32 else "tf32"


def attention_forward(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool):
    """Launch the forward: returns ``(out, lse)``; ``lse`` is float32 (batch*heads, q_len), base 2."""
    _check_attention_inputs(q, k, v, causal)
    q, k, v = (_last_dim_contiguous(t) for t in (q, k, v))
    batch, heads, q_len, head_dim = q.shape
    k_len = k.shape[2]
    out = torch.empty(q.shape, device=q.device, dtype=q.dtype)
    lse = torch.empty(batch * heads, q_len, device=q.device, dtype=torch.float32)
    if q_len == 0 or batch * heads == 0:
        return out, lse
    blocks = attention_forward_blocks(head_dim)
    grid = (triton.cdiv(q_len, blocks.block_m), batch * heads)
    _attention_forward_kernel[grid](
        q, k, v, out, lse, *_strides(q), *_strides(k), *_strides(v), *_strides(out),
        heads, q_len, k_len, LOG2E / math.sqrt(head_dim),
        BLOCK_M=blocks.block_m, BLOCK_N=blocks.block_n, BLOCK_D=blocks.block_d, HEAD_DIM=head_dim,
        CAUSAL=causal, PRECISION=_precision(q.dtype), num_warps=blocks.num_warps, num_stages=blocks.num_stages,
    )
    return out, lse


def attention_backward(do, q, k, v, out, lse, causal: bool):
    """Launch the backward kernels: returns ``(dq, dk, dv)``, contiguous, in the input dtype."""
    do, q, k, v = (_last_dim_contiguous(t) for t in (do, q, k, v))
    batch, heads, q_len, head_dim = q.shape
    k_len = k.shape[2]
    dq = torch.empty(q.shape, device=q.device, dtype=q.dtype)
    dk = torch.empty(k.shape, device=k.device, dtype=k.dtype)
    dv = torch.empty(v.shape, device=v.device, dtype=v.dtype)
    if q_len == 0 or batch * heads == 0:
        return dq, dk.zero_(), dv.zero_()
    blocks = attention_backward_blocks(head_dim)
    sm_scale = 1.0 / math.sqrt(head_dim)
    consts = dict(BLOCK_M=blocks.block_m, BLOCK_N=blocks.block_n, BLOCK_D=blocks.block_d, HEAD_DIM=head_dim,
                  num_warps=blocks.num_warps)
    delta = torch.empty_like(lse)
    _attention_delta_kernel[(triton.cdiv(q_len, blocks.block_m), batch * heads)](
        out, do, delta, *_strides(out), *_strides(do), heads, q_len,
        BLOCK_M=blocks.block_m, BLOCK_D=blocks.block_d, HEAD_DIM=head_dim, num_warps=blocks.num_warps,
    )
    common = (*_strides(q), *_strides(k), *_strides(v), *_strides(do), heads, q_len, k_len,
              sm_scale * LOG2E, sm_scale)
    flags = dict(CAUSAL=causal, PRECISION=_precision(q.dtype), num_stages=blocks.num_stages, **consts)
    _attention_dkdv_kernel[(triton.cdiv(k_len, blocks.block_n), batch * heads)](
        q, k, v, do, dk, dv, lse, delta, *common, **flags
    )
    _attention_dq_kernel[(triton.cdiv(q_len, blocks.block_m), batch * heads)](
        q, k, v, do, dq, lse, delta, *common, **flags
    )
    return dq, dk, dv


class FlashAttentionFunction(torch.autograd.Function):
    """Differentiable Triton flash attention on (batch, heads, seq, head_dim) tensors."""

    @staticmethod
    def forward(ctx, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool) -> torch.Tensor:
        out, lse = attention_forward(q, k, v, causal)
        ctx.save_for_backward(q, k, v, out, lse)
        ctx.causal = causal
        return out

    @staticmethod
    def backward(ctx, do: torch.Tensor):
        q, k, v, out, lse = ctx.saved_tensors
        dq, dk, dv = attention_backward(do, q, k, v, out, lse, ctx.causal)
        return dq, dk, dv, None


def attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool = True, backend: str = "auto"
) -> torch.Tensor:
    """Attention on (batch, heads, seq, head_dim) tensors."""
    if resolve_backend(backend, q.device) == "triton":
        return FlashAttentionFunction.apply(q, k, v, causal)
    return attention_reference(q, k, v, causal=causal)
