"""Block sizes and warp counts for every kernel, chosen in one place.

The GPU choices are the standard ones for an H100 (rows kept in registers up to 16k elements,
flash-attention tiles of 128 x 64). Under Triton's CPU interpreter (``TRITON_INTERPRET=1``) the
blocks are small on purpose: every program instance runs in Python, and small blocks let tests
with small, awkward shapes still exercise the multi-block code paths (rows longer than a block,
sequence tails, several key tiles).
"""

from __future__ import annotations

from dataclasses import dataclass

import triton

from ._backend import interpreter_enabled


@dataclass(frozen=True)
class RowBlocks:
    """How a row-wise kernel (one program per row) covers a row of ``n_cols`` elements."""

    block: int  # columns handled per step (a power of two)
    single_pass: bool  # the whole row fits one block: kept in registers, read once
    num_warps: int


def _warps_for(block: int) -> int:
    if block <= 1024:
        return 4
    if block <= 4096:
        return 8
    return 16


def row_blocks(n_cols: int, gpu_max_block: int = 16384, interpreter_max_block: int = 256,
               gpu_loop_block: int = 4096) -> RowBlocks:
    """Block for a row-wise op: the whole row in one block when it fits ``max_block`` (read once,
    kept in registers), else a loop over ``loop_block``-wide steps (on the GPU a narrower block
    than the single-pass cap: the loop keeps per-lane running state, and smaller programs let
    several share an SM to keep enough loads in flight)."""
    if n_cols < 1:
        raise ValueError(f"rows must have at least one element, got {n_cols}")
    interpreted = interpreter_enabled()
    max_block = interpreter_max_block if interpreted else gpu_max_block
    if n_cols <= max_block:
        block = triton.next_power_of_2(n_cols)
        return RowBlocks(block=block, single_pass=True, num_warps=_warps_for(block))
    block = max_block if interpreted else min(gpu_loop_block, max_block)
    return RowBlocks(block=block, single_pass=False, num_warps=_warps_for(block))


def rows_per_program(n_rows: int, target_programs: int) -> int:
    """Rows each program handles so that about ``target_programs`` programs cover ``n_rows``."""
    return max(1, triton.cdiv(n_rows, max(1, target_programs)))


def head_dim_block(head_dim: int) -> int:
    """Head dim padded to a power of two, at least 16 (the smallest tensor-core tile)."""
    return max(16, triton.next_power_of_2(head_dim))


def attention_row_block() -> int:
    """Query rows per program of the backward's ``delta`` preprocess (a pure row reduction)."""
    return 16 if interpreter_enabled() else 64


# (BLOCK_M queries, BLOCK_N keys, warps, pipeline stages): the candidates each flash-attention
# kernel is autotuned over on the GPU (keyed on head dim, causality, dtype and the power-of-two
# bucket of the sequence lengths, so decoding with a growing cache does not retune every step).
_ATTENTION_TILES = {
    "forward": [(128, 64, 4, 3), (128, 64, 8, 3), (128, 128, 8, 3), (64, 64, 4, 3), (128, 32, 4, 4), (64, 128, 4, 3)],
    "dkdv": [(32, 128, 4, 3), (64, 64, 4, 3), (64, 128, 8, 2), (32, 64, 4, 2), (128, 128, 8, 2)],
    "dq": [(128, 32, 4, 3), (64, 64, 4, 3), (128, 64, 8, 3), (64, 32, 4, 2)],
}


def attention_tile_configs(kernel: str) -> list[triton.Config]:
    """Autotuning configs for the ``forward``, ``dkdv`` or ``dq`` kernel; under the interpreter a
    single 16 x 16 tile (so small test sequences still span several tiles and ragged tails)."""
    if interpreter_enabled():
        return [triton.Config({"BLOCK_M": 16, "BLOCK_N": 16}, num_warps=4, num_stages=1)]
    return [triton.Config({"BLOCK_M": m, "BLOCK_N": n}, num_warps=w, num_stages=st)
            for m, n, w, st in _ATTENTION_TILES[kernel]]


def linear_cross_entropy_chunk_tokens(n_tokens: int, vocab_size: int, hidden_dim: int) -> int:
    """Tokens per chunk of the fused LM head + loss.

    The chunk's logits (chunk x vocab) are about the size of the hidden states (tokens x
    hidden_dim), capped at 16 chunks so that the weight gradient, accumulated across chunks in
    the weight dtype, sees few roundings and each chunk's matmul stays large.
    """
    n_chunks = max(1, min(triton.cdiv(vocab_size, max(1, hidden_dim)), 16))
    return max(1, triton.cdiv(n_tokens, n_chunks))


def sm_count(device) -> int:
    """Streaming multiprocessors on a CUDA device (a small stand-in under the interpreter)."""
    import torch

    if torch.device(device).type == "cuda":
        return torch.cuda.get_device_properties(device).multi_processor_count
    return 4
