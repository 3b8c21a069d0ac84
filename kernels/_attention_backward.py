"""Flash-attention backward: ``delta = rowsum(dO * O)``, then dk/dv over query tiles and dq over
key tiles, recomputing the probabilities tile by tile from the saved log-sum-exp (see attention.py)."""

from __future__ import annotations

import math

import torch

from ._attention_tiles import (LOG2E, attention_grid, dot_precision, head_ptr, key_tile_ranges,
                                last_dim_contiguous, load_head_tile, load_seq_tile, store_rows, strides,
                                tile_ptrs, visible)
from ._blocks import attention_config_pruner, attention_row_block, attention_tile_configs, head_dim_block
from ._ops import kernel_op, launch
from ._triton import tl, triton


@triton.jit
def _attention_delta_kernel(O, DO, DELTA, so_b, so_h, so_s, sdo_b, sdo_h, sdo_s, n_heads, q_len,
                            BLOCK_M: tl.constexpr, BLOCK_D: tl.constexpr, HEAD_DIM: tl.constexpr):
    """``delta[row] = sum(dO[row] * O[row])`` in float32: the softmax backward's row correction."""
    bh = tl.program_id(0)
    m0 = tl.program_id(1) * BLOCK_M
    rows = m0 + tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, BLOCK_D)
    PAD_D: tl.constexpr = BLOCK_D != HEAD_DIM
    o = load_head_tile(O, bh, n_heads, so_b, so_h, so_s, rows, q_len, offs_d, HEAD_DIM, PAD_D)
    do = load_head_tile(DO, bh, n_heads, sdo_b, sdo_h, sdo_s, rows, q_len, offs_d, HEAD_DIM, PAD_D)
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
        q = load_seq_tile(q_base, rows, stride_qs, q_len, offs_d, HEAD_DIM, PAD_D, True)
        do = load_seq_tile(do_base, rows, stride_dos, q_len, offs_d, HEAD_DIM, PAD_D, True)
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


@triton.autotune(attention_tile_configs("dkdv"), key=["q_bucket", "k_bucket", "HEAD_DIM", "CAUSAL"],
                 prune_configs_by={"early_config_prune": attention_config_pruner("dkdv")})
@triton.jit
def _attention_dkdv_kernel(
    Q, K, V, DO, DK, DV, LSE, DELTA,
    sq_b, sq_h, sq_s, sk_b, sk_h, sk_s, sv_b, sv_h, sv_s, sdo_b, sdo_h, sdo_s,
    n_heads, q_len, k_len, q_bucket, k_bucket, qk_scale, sm_scale,  # buckets: autotuning key only
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr, HEAD_DIM: tl.constexpr,
    CAUSAL: tl.constexpr, PRECISION: tl.constexpr,
):
    qk_scale, sm_scale = tl.cast(qk_scale, tl.float32), tl.cast(sm_scale, tl.float32)  # fp32 even if passed as fp64
    bh = tl.program_id(0)
    n0 = tl.program_id(1) * BLOCK_N
    cols = n0 + tl.arange(0, BLOCK_N)
    offs_d = tl.arange(0, BLOCK_D)
    PAD_D: tl.constexpr = BLOCK_D != HEAD_DIM
    k = load_head_tile(K, bh, n_heads, sk_b, sk_h, sk_s, cols, k_len, offs_d, HEAD_DIM, PAD_D)
    v = load_head_tile(V, bh, n_heads, sv_b, sv_h, sv_s, cols, k_len, offs_d, HEAD_DIM, PAD_D)
    dk = tl.zeros([BLOCK_N, BLOCK_D], dtype=tl.float32)
    dv = tl.zeros([BLOCK_N, BLOCK_D], dtype=tl.float32)
    q_base = head_ptr(Q, bh, n_heads, sq_b, sq_h)
    do_base = head_ptr(DO, bh, n_heads, sdo_b, sdo_h)
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
    store_rows(tile_ptrs(DK + dkv_offset, cols, HEAD_DIM, offs_d), dk * sm_scale, cols, k_len, offs_d,
               HEAD_DIM)
    store_rows(tile_ptrs(DV + dkv_offset, cols, HEAD_DIM, offs_d), dv, cols, k_len, offs_d, HEAD_DIM)


@triton.jit
def _dq_tiles(dq, q, do, lse, delta, k_base, v_base, stride_ks, stride_vs, rows, offs_d, q_len, k_len,
              start, end, qk_scale, BLOCK_N: tl.constexpr, HEAD_DIM: tl.constexpr, PAD_D: tl.constexpr,
              BOUNDARY: tl.constexpr, CAUSAL: tl.constexpr, PRECISION: tl.constexpr):
    offs_n = tl.arange(0, BLOCK_N)
    for n0 in range(start, end, BLOCK_N):
        cols = n0 + offs_n
        k = load_seq_tile(k_base, cols, stride_ks, k_len, offs_d, HEAD_DIM, PAD_D, BOUNDARY)
        v = load_seq_tile(v_base, cols, stride_vs, k_len, offs_d, HEAD_DIM, PAD_D, BOUNDARY)
        p = tl.exp2(tl.dot(q, tl.trans(k), input_precision=PRECISION) * qk_scale - lse[:, None])  # (M, N)
        if BOUNDARY:
            p = tl.where(visible(rows, cols, q_len, k_len, CAUSAL), p, 0.0)
        dp = tl.dot(do, tl.trans(v), input_precision=PRECISION)
        ds = p * (dp - delta[:, None])
        dq = tl.dot(ds.to(k.dtype), k, dq, input_precision=PRECISION)
    return dq


@triton.autotune(attention_tile_configs("dq"), key=["q_bucket", "k_bucket", "HEAD_DIM", "CAUSAL"],
                 prune_configs_by={"early_config_prune": attention_config_pruner("dq")})
@triton.jit
def _attention_dq_kernel(
    Q, K, V, DO, DQ, LSE, DELTA,
    sq_b, sq_h, sq_s, sk_b, sk_h, sk_s, sv_b, sv_h, sv_s, sdo_b, sdo_h, sdo_s,
    n_heads, q_len, k_len, q_bucket, k_bucket, qk_scale, sm_scale,  # buckets: autotuning key only
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr, HEAD_DIM: tl.constexpr,
    CAUSAL: tl.constexpr, PRECISION: tl.constexpr,
):
    qk_scale, sm_scale = tl.cast(qk_scale, tl.float32), tl.cast(sm_scale, tl.float32)  # fp32 even if passed as fp64
    bh = tl.program_id(0)
    m0 = (tl.num_programs(1) - 1 - tl.program_id(1)) * BLOCK_M  # heaviest (causal) tiles first
    rows = m0 + tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, BLOCK_D)
    PAD_D: tl.constexpr = BLOCK_D != HEAD_DIM
    q = load_head_tile(Q, bh, n_heads, sq_b, sq_h, sq_s, rows, q_len, offs_d, HEAD_DIM, PAD_D)
    do = load_head_tile(DO, bh, n_heads, sdo_b, sdo_h, sdo_s, rows, q_len, offs_d, HEAD_DIM, PAD_D)
    lse = tl.load(LSE + bh.to(tl.int64) * q_len + rows, mask=rows < q_len, other=float("inf"))
    delta = tl.load(DELTA + bh.to(tl.int64) * q_len + rows, mask=rows < q_len, other=0.0)
    k_base = head_ptr(K, bh, n_heads, sk_b, sk_h)
    v_base = head_ptr(V, bh, n_heads, sv_b, sv_h)
    dq = tl.zeros([BLOCK_M, BLOCK_D], dtype=tl.float32)
    full_end, end = key_tile_ranges(m0, q_len, k_len, BLOCK_M, BLOCK_N, CAUSAL)
    dq = _dq_tiles(dq, q, do, lse, delta, k_base, v_base, sk_s, sv_s, rows, offs_d, q_len, k_len, 0, full_end,
                   qk_scale, BLOCK_N, HEAD_DIM, PAD_D, False, CAUSAL, PRECISION)
    dq = _dq_tiles(dq, q, do, lse, delta, k_base, v_base, sk_s, sv_s, rows, offs_d, q_len, k_len, full_end, end,
                   qk_scale, BLOCK_N, HEAD_DIM, PAD_D, True, CAUSAL, PRECISION)
    dq_offset = bh.to(tl.int64) * q_len * HEAD_DIM  # dq is contiguous (batch*heads, q_len, head_dim)
    store_rows(tile_ptrs(DQ + dq_offset, rows, HEAD_DIM, offs_d), dq * sm_scale, rows, q_len, offs_d,
               HEAD_DIM)


def _backward_outputs(do, q, k, v, out, lse, causal: bool):
    """Checked shapes, and the empty ``(dq, dk, dv)`` (contiguous, input dtype): also the fake
    implementation of the backward operator."""
    if do.shape != q.shape or out.shape != q.shape:
        raise ValueError(f"dO {tuple(do.shape)} and O {tuple(out.shape)} must have q's shape {tuple(q.shape)}")
    return tuple(torch.empty(t.shape, device=t.device, dtype=t.dtype) for t in (q, k, v))


@kernel_op("attention_backward", fake=_backward_outputs)
def attention_backward(do: torch.Tensor, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, out: torch.Tensor,
                       lse: torch.Tensor, causal: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Launch the backward kernels: returns ``(dq, dk, dv)``, contiguous, in the input dtype."""
    dq, dk, dv = _backward_outputs(do, q, k, v, out, lse, causal)
    do, q, k, v = (last_dim_contiguous(t) for t in (do, q, k, v))
    batch, heads, q_len, head_dim = q.shape
    k_len = k.shape[2]
    if q_len == 0 or batch * heads == 0:
        return dq, dk.zero_(), dv.zero_()
    sm_scale = 1.0 / math.sqrt(head_dim)
    block_d = head_dim_block(head_dim)
    delta = torch.empty_like(lse)
    row_block = attention_row_block()
    launch(_attention_delta_kernel, (batch * heads, triton.cdiv(q_len, row_block)))(
        out, do, delta, *strides(out), *strides(do), heads, q_len,
        BLOCK_M=row_block, BLOCK_D=block_d, HEAD_DIM=head_dim,
    )
    common = (*strides(q), *strides(k), *strides(v), *strides(do), heads, q_len, k_len,
              triton.next_power_of_2(q_len), triton.next_power_of_2(k_len), sm_scale * LOG2E, sm_scale)
    flags = dict(BLOCK_D=block_d, HEAD_DIM=head_dim, CAUSAL=causal, PRECISION=dot_precision(q.dtype))
    launch(_attention_dkdv_kernel, attention_grid(batch * heads, k_len, "BLOCK_N"))(
        q, k, v, do, dk, dv, lse, delta, *common, **flags
    )
    launch(_attention_dq_kernel, attention_grid(batch * heads, q_len, "BLOCK_M"))(
        q, k, v, do, dq, lse, delta, *common, **flags
    )
    return dq, dk, dv
