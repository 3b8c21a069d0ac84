"""Pieces shared by the flash-attention forward and backward kernels: tile pointers with 64-bit
row offsets, masked tile loads and stores, the key-tile ranges a query tile visits (full tiles,
then boundary tiles), the visibility mask, and the launch grid."""

from __future__ import annotations

import torch

from ._triton import tl, triton

LOG2E = 1.4426950408889634  # exp(x) = exp2(x * LOG2E): the kernels work in base 2


@triton.jit
def load_rows(ptrs, rows, n_rows, offs_d, HEAD_DIM: tl.constexpr, PAD_D: tl.constexpr,
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
def tile_ptrs(base, idx, stride, offs_d):
    """Pointers to the (len(idx), head_dim) tile at rows ``idx`` of a head starting at ``base``.

    Row offsets are 64-bit: ``row * stride`` passes 2^31 for long sequences in a (batch, seq,
    heads, head_dim) layout (stride heads * head_dim), where 32-bit offsets would wrap around.
    """
    return base + idx.to(tl.int64)[:, None] * stride + offs_d[None, :]


@triton.jit
def head_ptr(PTR, bh, n_heads, stride_b, stride_h):
    """Start of head ``bh % n_heads`` of batch ``bh // n_heads`` (64-bit offsets)."""
    return PTR + (bh // n_heads).to(tl.int64) * stride_b + (bh % n_heads).to(tl.int64) * stride_h


@triton.jit
def load_seq_tile(base, idx, stride, n_rows, offs_d, HEAD_DIM: tl.constexpr, PAD_D: tl.constexpr,
                  CHECK_ROWS: tl.constexpr):
    """Rows ``idx`` of the head starting at ``base``: a (len(idx), padded head_dim) tile."""
    return load_rows(tile_ptrs(base, idx, stride, offs_d), idx, n_rows, offs_d, HEAD_DIM, PAD_D, CHECK_ROWS)


@triton.jit
def load_head_tile(PTR, bh, n_heads, stride_b, stride_h, stride_s, rows, n_rows, offs_d, HEAD_DIM: tl.constexpr,
                   PAD_D: tl.constexpr):
    """Rows ``rows`` (masked to ``n_rows``) of one head: a (rows, padded head_dim) tile."""
    return load_seq_tile(head_ptr(PTR, bh, n_heads, stride_b, stride_h), rows, stride_s, n_rows, offs_d,
                         HEAD_DIM, PAD_D, True)


@triton.jit
def store_rows(ptrs, x, rows, n_rows, offs_d, HEAD_DIM: tl.constexpr):
    tl.store(ptrs, x.to(ptrs.dtype.element_ty), mask=(rows < n_rows)[:, None] & (offs_d < HEAD_DIM)[None, :])


@triton.jit
def key_tile_ranges(m0, q_len, k_len, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, CAUSAL: tl.constexpr):
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
def visible(rows, cols, q_len, k_len, CAUSAL: tl.constexpr):
    """(rows, cols) mask of keys that exist and, when causal, that the query row may see."""
    valid = (cols < k_len)[None, :]
    if CAUSAL:
        valid = valid & (cols[None, :] <= rows[:, None] + (k_len - q_len))
    return valid


# The largest grid on CUDA's second and third axes; the first allows 2^31 - 1 programs.
MAX_GRID_YZ = 65535


# Sequence tiles are at least 16 rows, so sequences up to this length fit the grid's axis 1.
MAX_SEQ_LEN = MAX_GRID_YZ * 16


def attention_grid(batch_heads: int, seq_len: int, block: str):
    """Launch grid for kernels with one program per (head, tile of ``meta[block]`` rows of
    ``seq_len``): heads on axis 0, whose limit is 2^31 - 1 (batch x heads easily passes 65,535),
    tiles on axis 1. Read by the kernels as ``bh = program_id(0)``, ``tile = program_id(1)``."""

    def grid(meta):
        return batch_heads, triton.cdiv(seq_len, meta[block])

    return grid


def last_dim_contiguous(t: torch.Tensor) -> torch.Tensor:
    return t if t.stride(-1) == 1 else t.contiguous()


def strides(t: torch.Tensor) -> tuple[int, int, int]:
    return t.stride(0), t.stride(1), t.stride(2)


def dot_precision(dtype: torch.dtype) -> str:
    # float32 inputs get exact float32 dot products (matching the reference); 16-bit use tensor cores.
    return "ieee" if dtype == torch.float32 else "tf32"
