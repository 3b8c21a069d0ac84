"""Block sizes and warp counts for every kernel, chosen in one place.

The GPU choices are the standard ones for an H100 (rows kept in registers up to 16k elements,
flash-attention tiles of 128 x 64). Under Triton's CPU interpreter (``TRITON_INTERPRET=1``) the
blocks are small on purpose: every program instance runs in Python, and small blocks let tests
with small, awkward shapes still exercise the multi-block code paths (rows longer than a block,
sequence tails, several key tiles).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
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


# (BLOCK_M queries, BLOCK_N keys, warps, pipeline stages) that each flash-attention kernel is
# autotuned over on the GPU, per regime: 16-bit inputs with head dim <= 64, 16-bit with larger
# head dims (more warps, so the (rows x head_dim) float32 accumulators fit in registers), and
# float32 inputs (exact float32 dots run on the FMA units: small tiles, or registers spill).
# Checked with `python -m tritonlm.kernels.compile_check` (shared memory, registers, spills on sm_90).
_ATTENTION_TILES = {
    ("forward", "small_d"): [(128, 64, 4, 3), (128, 128, 8, 3), (64, 64, 4, 3), (128, 32, 4, 4)],
    ("forward", "large_d"): [(128, 64, 8, 3), (128, 128, 8, 3), (64, 64, 4, 3), (64, 128, 8, 3)],
    ("dkdv", "small_d"): [(64, 64, 4, 3), (32, 64, 4, 3), (64, 128, 8, 3), (128, 128, 8, 2)],
    ("dkdv", "large_d"): [(64, 64, 8, 3), (32, 64, 4, 3), (64, 128, 8, 2), (32, 128, 8, 2)],
    ("dq", "small_d"): [(64, 64, 4, 3), (128, 64, 8, 3), (64, 32, 4, 3), (128, 32, 8, 3)],
    ("dq", "large_d"): [(64, 64, 8, 3), (128, 64, 8, 3), (64, 32, 4, 3), (128, 32, 8, 3)],
}
_FLOAT32_TILES = [(32, 32, 4, 2), (64, 32, 4, 2), (32, 64, 4, 2)]
_INTERPRETER_TILE = (16, 16, 4, 1)


def attention_tiles(kernel: str, float32: bool, head_dim: int) -> list[tuple[int, int, int, int]]:
    """The (BLOCK_M, BLOCK_N, warps, stages) candidates of ``kernel`` (forward | dkdv | dq) for
    inputs of this precision and head dim; a single 16 x 16 tile under the interpreter (so small
    test sequences still span several tiles and ragged tails)."""
    if interpreter_enabled():
        return [_INTERPRETER_TILE]
    if float32:
        return _FLOAT32_TILES
    return _ATTENTION_TILES[(kernel, "small_d" if head_dim <= 64 else "large_d")]


def attention_tile_configs(kernel: str) -> list[triton.Config]:
    """Every candidate config of ``kernel``; ``attention_config_pruner`` keeps those of the regime
    of the actual inputs before autotuning."""
    if interpreter_enabled():
        candidates = [_INTERPRETER_TILE]
    else:
        candidates = sorted({t for (k, _), tiles in _ATTENTION_TILES.items() if k == kernel for t in tiles}
                            | set(_FLOAT32_TILES))
    return [triton.Config({"BLOCK_M": m, "BLOCK_N": n}, num_warps=w, num_stages=st) for m, n, w, st in candidates]


def attention_config_pruner(kernel: str):
    """An autotuner ``early_config_prune`` hook keeping the configs of the inputs' regime."""

    def prune(configs: list[triton.Config], named_args: dict, **kwargs) -> list[triton.Config]:
        wanted = set(attention_tiles(kernel, named_args["Q"].dtype == torch.float32, kwargs["HEAD_DIM"]))
        kept = [c for c in configs
                if (c.kwargs["BLOCK_M"], c.kwargs["BLOCK_N"], c.num_warps, c.num_stages) in wanted]
        return kept or configs[:1]

    return prune


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
    if torch.device(device).type == "cuda":
        return torch.cuda.get_device_properties(device).multi_processor_count
    return 4
