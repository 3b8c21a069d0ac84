"""Block sizes and warp counts for every kernel, chosen in one place.

The GPU choices are the standard ones for an H100 (rows kept in registers up to 16k elements,
flash-attention tiles of 128 x 64). Under Triton's CPU interpreter (``TRITON_INTERPRET=1``) the
blocks are small on purpose: every program instance runs in Python, and small blocks let tests
with small, awkward shapes still exercise the multi-block code paths (rows longer than a block,
sequence tails, several key tiles).
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from typing import Iterator

import torch

from ._backend import interpreter_enabled
from ._triton import triton


@dataclass(frozen=True)
class GpuTarget:
    """What the configuration choices depend on: the compute capability (x10: 80 = A100, 89 =
    RTX 4090, 90 = H100) and the shared memory one block may use (the opt-in limit)."""

    arch: int
    shared_bytes: int

    # Opt-in shared memory per block by architecture (CUDA programming guide, compute capabilities).
    _SHARED = {80: 166912, 86: 101376, 87: 166912, 89: 101376, 90: 232448, 100: 232448, 120: 101376}

    @classmethod
    def for_arch(cls, arch: int) -> "GpuTarget":
        known = [a for a in sorted(cls._SHARED) if a <= arch]
        return cls(arch, cls._SHARED[known[-1]] if known else 49152)


_SIMULATED: list[GpuTarget] = []
_DEFAULT_TARGET = GpuTarget.for_arch(90)


@contextlib.contextmanager
def simulate_target(target: GpuTarget) -> Iterator[None]:
    """Choose configurations for ``target`` instead of the tensors' device (ahead-of-time checks)."""
    _SIMULATED.append(target)
    try:
        yield
    finally:
        _SIMULATED.pop()


def device_target(device) -> GpuTarget:
    """The target of a CUDA device (read from the device), or the simulated one, or an H100 (also
    for fake CUDA tensors traced on a machine without CUDA)."""
    if _SIMULATED:
        return _SIMULATED[-1]
    device = torch.device(device)
    if device.type == "cuda" and torch.cuda.is_available():
        props = torch.cuda.get_device_properties(device)
        shared = getattr(props, "shared_memory_per_block_optin", 0) or GpuTarget.for_arch(
            props.major * 10 + props.minor).shared_bytes
        return GpuTarget(props.major * 10 + props.minor, int(shared))
    return _DEFAULT_TARGET


@dataclass(frozen=True)
class RowBlocks:
    """How a row-wise kernel (one program per row) covers a row of ``n_cols`` elements."""

    block: int  # columns handled per step (a power of two)
    single_pass: bool  # the whole row fits one block: kept in registers, read once
    num_warps: int
    rows: int = 1  # rows per tile (a power of two) for kernels that take narrow rows several at a time


# Warps of a looping row program (a 4,096-wide step): 16 elements per thread per step. (16 warps
# make ptxas 12.8 spill 8 bytes in the looping RMSNorm backward on sm_80.)
_LOOP_WARPS = 8


def _warps_for(elements: int) -> int:
    """Warps for a program that holds ``elements`` per step: at most 8 per thread up to 4,096
    (ptxas 12.8 spills a 16-per-thread bf16 row on sm_80, with 32 registers in use), then 16."""
    if elements <= 1024:
        return 4
    if elements <= 2048:
        return 8
    return 16


# Elements a tile of narrow rows should hold: a few thousand on the GPU (16 per thread at 4 warps);
# a few dozen under the interpreter, so small test shapes still span several tiles and a ragged tail.
_GPU_TILE_ELEMENTS = 2048
_INTERPRETER_TILE_ELEMENTS = 256


def row_blocks(n_cols: int, gpu_max_block: int = 16384, interpreter_max_block: int = 256,
               gpu_loop_block: int = 4096, tile_rows: bool = False) -> RowBlocks:
    """Block for a row-wise op: the whole row in one block when it fits ``max_block`` (read once,
    kept in registers; with ``tile_rows``, for kernels that take a (rows x block) tile, rows
    narrower than a tile come several to a tile), else a loop over
    ``loop_block``-wide steps (on the GPU a narrower block than the single-pass cap: the loop
    keeps per-lane running state, and smaller programs let several share an SM to keep enough
    loads in flight)."""
    if n_cols < 1:
        raise ValueError(f"rows must have at least one element, got {n_cols}")
    interpreted = interpreter_enabled()
    max_block = interpreter_max_block if interpreted else gpu_max_block
    if n_cols <= max_block:
        block = triton.next_power_of_2(n_cols)
        tile = _INTERPRETER_TILE_ELEMENTS if interpreted else _GPU_TILE_ELEMENTS
        rows = max(1, tile // block) if tile_rows else 1
        return RowBlocks(block=block, single_pass=True, num_warps=_warps_for(rows * block), rows=rows)
    block = max_block if interpreted else min(gpu_loop_block, max_block)
    return RowBlocks(block=block, single_pass=False, num_warps=_LOOP_WARPS)


def rows_per_program(n_rows: int, target_programs: int, multiple_of: int = 1) -> int:
    """Rows each program handles so that about ``target_programs`` programs cover ``n_rows``
    (rounded up to a multiple of ``multiple_of``, the rows of one tile)."""
    per_program = max(1, triton.cdiv(n_rows, max(1, target_programs)))
    return triton.cdiv(per_program, multiple_of) * multiple_of


def head_dim_block(head_dim: int) -> int:
    """Head dim padded to a power of two, at least 16 (the smallest tensor-core tile)."""
    return max(16, triton.next_power_of_2(head_dim))


def attention_row_block() -> int:
    """Query rows per program of the backward's ``delta`` preprocess (a pure row reduction)."""
    return 16 if interpreter_enabled() else 64


# ----------------------------------------------------------------------------- attention tiles

# (BLOCK_M queries, BLOCK_N keys, warps, pipeline stages), per GPU family, kernel, precision and
# head-dim regime, in order of preference. Every tile listed compiles without spilling registers
# on its family (sm_80/sm_89: mma.sync; sm_90: wgmma), with Triton 3.6 and the newest release,
# at the head dims of its regime (a head dim below the block, such as 80, masks columns and costs
# registers of its own), causal or not, with fp32 or fp64 float scalars: `python -m tritonlm.kernels.compile_check` proves it, and the
# committed table (bench/results/compile_table-*.json) records it. Tiles are then kept only where
# their shared memory fits the device (``attention_shared_bytes``), so an RTX 4090 (99 KB per
# block) never gets an H100 tile (227 KB).
Tile = tuple[int, int, int, int]
_ATTENTION_TILES: dict[tuple[str, str, str, str], list[Tile]] = {
    ("sm80", "forward", "16bit", "d<=64"): [(128, 64, 8, 3), (128, 128, 8, 3), (64, 64, 4, 3), (64, 64, 4, 2)],
    ("sm80", "forward", "16bit", "d<=128"): [(128, 64, 8, 3), (64, 128, 8, 3), (128, 32, 8, 2), (64, 32, 4, 2)],
    ("sm80", "forward", "16bit", "d<=256"): [(32, 32, 4, 2), (32, 32, 8, 2), (16, 32, 4, 2), (64, 32, 8, 2)],
    ("sm80", "forward", "fp32", "d<=64"): [(32, 32, 8, 2), (16, 32, 8, 2), (16, 32, 4, 2), (16, 16, 4, 2)],
    ("sm80", "forward", "fp32", "d<=128"): [(16, 32, 4, 2), (16, 16, 4, 2), (32, 16, 8, 2)],
    ("sm80", "forward", "fp32", "d<=256"): [(32, 32, 8, 2), (16, 32, 8, 2), (16, 32, 4, 2), (16, 16, 4, 2)],
    ("sm80", "dkdv", "16bit", "d<=64"): [(32, 64, 4, 3), (32, 64, 4, 2), (32, 32, 4, 2)],
    ("sm80", "dkdv", "16bit", "d<=128"): [(64, 64, 8, 3), (32, 32, 4, 2), (64, 32, 4, 3)],
    ("sm80", "dkdv", "16bit", "d<=256"): [(32, 32, 8, 2), (64, 32, 8, 2), (16, 16, 4, 2)],
    ("sm80", "dkdv", "fp32", "d<=64"): [(32, 32, 8, 2), (16, 32, 8, 2), (16, 16, 4, 2)],
    ("sm80", "dkdv", "fp32", "d<=128"): [(16, 32, 8, 2), (16, 16, 8, 2)],
    ("sm80", "dkdv", "fp32", "d<=256"): [(16, 16, 8, 2), (16, 16, 4, 2)],
    ("sm80", "dq", "16bit", "d<=64"): [(64, 64, 4, 3), (128, 64, 8, 3), (64, 32, 4, 3)],
    ("sm80", "dq", "16bit", "d<=128"): [(64, 64, 8, 3), (128, 32, 8, 3), (32, 64, 4, 3), (32, 64, 4, 2)],
    ("sm80", "dq", "16bit", "d<=256"): [(32, 32, 4, 2), (32, 32, 8, 2), (16, 32, 4, 2), (64, 32, 8, 2)],
    ("sm80", "dq", "fp32", "d<=64"): [(16, 32, 8, 2), (16, 32, 4, 2), (32, 16, 8, 2), (32, 32, 4, 2)],
    ("sm80", "dq", "fp32", "d<=128"): [(16, 16, 4, 2), (16, 16, 4, 1)],
    ("sm80", "dq", "fp32", "d<=256"): [(16, 32, 8, 2), (16, 32, 4, 2), (16, 16, 4, 2), (32, 16, 8, 2)],
    ("sm90", "forward", "16bit", "d<=64"): [(128, 64, 4, 3), (128, 64, 8, 3), (128, 128, 8, 3), (128, 128, 8, 2)],
    ("sm90", "forward", "16bit", "d<=128"): [(128, 64, 8, 3), (64, 64, 4, 3), (64, 64, 4, 2), (64, 128, 8, 3)],
    ("sm90", "forward", "16bit", "d<=256"): [(32, 32, 4, 2), (16, 32, 4, 2), (64, 32, 8, 2), (32, 64, 8, 2)],
    ("sm90", "forward", "fp32", "d<=64"): [(32, 32, 8, 2), (16, 32, 8, 2), (16, 32, 4, 2)],
    ("sm90", "forward", "fp32", "d<=128"): [(16, 32, 8, 2), (16, 16, 4, 2), (32, 16, 8, 2)],
    ("sm90", "forward", "fp32", "d<=256"): [(32, 32, 8, 2), (16, 32, 8, 2), (16, 32, 4, 2), (16, 16, 4, 2)],
    ("sm90", "dkdv", "16bit", "d<=64"): [(64, 64, 4, 3), (64, 64, 8, 3), (32, 64, 4, 3), (64, 128, 8, 3)],
    ("sm90", "dkdv", "16bit", "d<=128"): [(64, 64, 8, 3), (32, 64, 4, 3), (32, 128, 8, 2), (32, 32, 4, 2)],
    ("sm90", "dkdv", "16bit", "d<=256"): [(32, 32, 8, 2), (64, 32, 8, 2), (16, 16, 4, 2)],
    ("sm90", "dkdv", "fp32", "d<=64"): [(16, 16, 4, 2), (32, 16, 8, 2)],
    ("sm90", "dkdv", "fp32", "d<=128"): [(16, 32, 8, 2), (16, 16, 4, 2), (16, 16, 8, 2)],
    ("sm90", "dkdv", "fp32", "d<=256"): [(16, 16, 8, 2), (32, 16, 8, 1)],
    ("sm90", "dq", "16bit", "d<=64"): [(64, 64, 4, 3), (64, 64, 8, 3), (128, 64, 8, 3), (64, 32, 4, 3)],
    ("sm90", "dq", "16bit", "d<=128"): [(64, 64, 4, 3), (64, 64, 8, 3), (128, 64, 8, 3), (64, 32, 4, 3)],
    ("sm90", "dq", "16bit", "d<=256"): [(32, 32, 4, 2), (32, 32, 8, 2), (16, 32, 4, 2), (64, 32, 8, 2)],
    ("sm90", "dq", "fp32", "d<=64"): [(32, 32, 8, 2), (16, 32, 8, 2), (16, 32, 4, 2)],
    ("sm90", "dq", "fp32", "d<=128"): [(16, 32, 8, 2), (16, 16, 4, 2), (32, 16, 8, 2)],
    ("sm90", "dq", "fp32", "d<=256"): [(32, 32, 8, 2), (16, 32, 8, 2), (16, 16, 4, 2), (32, 16, 8, 2)],
}
_INTERPRETER_TILE: Tile = (16, 16, 4, 1)
MAX_CONFIGS_ENV = "TRITONLM_MAX_AUTOTUNE_CONFIGS"


def _family(arch: int) -> str:
    return "sm90" if arch >= 90 else "sm80"


def _precision(float32: bool) -> str:
    return "fp32" if float32 else "16bit"


def _regime(head_dim: int) -> str:
    return "d<=64" if head_dim <= 64 else "d<=128" if head_dim <= 128 else "d<=256"


def attention_shared_bytes(kernel: str, tile: Tile, block_d: int, element_bytes: int) -> int:
    """An upper bound of the shared memory of ``kernel`` at ``tile``: each pipeline stage holds
    the tiles the loop streams (keys and values; queries and output gradients, with their
    float32 log-sum-exp and delta, for dk/dv), plus the tiles loaded once. The compile check
    verifies the bound against every compiled configuration."""
    block_m, block_n, _, stages = tile
    if kernel == "forward":
        return stages * 2 * block_n * block_d * element_bytes + block_m * block_d * element_bytes
    if kernel == "dq":
        return stages * 2 * block_n * block_d * element_bytes + 2 * block_m * block_d * element_bytes
    streamed = 2 * block_m * block_d * element_bytes + 8 * block_m
    return stages * streamed + 2 * block_n * block_d * element_bytes + 1024


def max_autotune_configs() -> int | None:
    """The cap on autotuned configurations (``TRITONLM_MAX_AUTOTUNE_CONFIGS``), or None."""
    value = os.environ.get(MAX_CONFIGS_ENV, "").strip()
    if not value:
        return None
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"{MAX_CONFIGS_ENV} must be a positive integer, got {value!r}")
    return int(value)


def attention_tiles(kernel: str, float32: bool, head_dim: int, target: GpuTarget | None = None) -> list[Tile]:
    """The (BLOCK_M, BLOCK_N, warps, stages) candidates of ``kernel`` (forward | dkdv | dq) for
    inputs of this precision and head dim on ``target`` (default: an H100): the listed tiles whose
    shared memory fits, in order of preference, at most ``max_autotune_configs()`` of them; a
    single 16 x 16 tile under the interpreter (so small test sequences still span several tiles)."""
    if interpreter_enabled():
        return [_INTERPRETER_TILE]
    target = target or _DEFAULT_TARGET
    candidates = _ATTENTION_TILES[(_family(target.arch), kernel, _precision(float32), _regime(head_dim))]
    block_d, element_bytes = head_dim_block(head_dim), 4 if float32 else 2

    def shared(tile: Tile) -> int:
        return attention_shared_bytes(kernel, tile, block_d, element_bytes)

    fitting = [t for t in candidates if shared(t) <= target.shared_bytes] or [min(candidates, key=shared)]
    return fitting[: max_autotune_configs() or len(fitting)]


def attention_tile_configs(kernel: str) -> list[triton.Config]:
    """Every candidate config of ``kernel``; ``attention_config_pruner`` keeps those of the
    actual inputs and device before autotuning."""
    if interpreter_enabled():
        candidates = {_INTERPRETER_TILE}
    else:
        candidates = {t for (_, k, _, _), tiles in _ATTENTION_TILES.items() if k == kernel for t in tiles}
    return [triton.Config({"BLOCK_M": m, "BLOCK_N": n}, num_warps=w, num_stages=st)
            for m, n, w, st in sorted(candidates)]


def attention_config_pruner(kernel: str):
    """An autotuner ``early_config_prune`` hook keeping the configs of the inputs' precision and
    head dim on their device (compute capability and shared memory)."""

    def prune(configs: list[triton.Config], named_args: dict, **kwargs) -> list[triton.Config]:
        q = named_args["Q"]
        wanted = attention_tiles(kernel, q.dtype == torch.float32, kwargs["HEAD_DIM"], device_target(q.device))
        by_tile = {(c.kwargs["BLOCK_M"], c.kwargs["BLOCK_N"], c.num_warps, c.num_stages): c for c in configs}
        return [by_tile[t] for t in wanted]

    return prune


@dataclass(frozen=True)
class WeightGradBlocks:
    """Tiles of the fused LM head's weight-gradient GEMM (vocab x hidden_dim, over tokens)."""

    block_v: int
    block_h: int
    block_t: int
    num_warps: int
    num_stages: int


def weight_grad_blocks(float32: bool) -> WeightGradBlocks:
    """128 x 128 output tiles over 32-token steps for 16-bit inputs (tensor cores; a float32
    accumulator of 64 registers per thread at 8 warps, 48 KB of shared memory at 3 stages, which
    fits every GPU here); smaller tiles for exact float32 products. Under the interpreter wide
    vocab tiles (each program costs Python time) and 2-token steps (so short test chunks still
    take several steps and a ragged last one)."""
    if interpreter_enabled():
        return WeightGradBlocks(512, 32, 2, 4, 1)
    if float32:
        return WeightGradBlocks(64, 64, 16, 4, 2)
    return WeightGradBlocks(128, 128, 32, 8, 3)


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
