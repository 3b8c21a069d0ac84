"""Pieces shared by the row-wise kernels (RMSNorm, softmax, cross-entropy): where a program's row
starts, and the online (one-sweep) max and sum-of-exponentials of a row read in tiles.

The online pass serves the softmax and cross-entropy kernels for rows longer than one block. Each tile's max
is taken first and folded into the running row max, so every element costs one exponential
(``exp(x - max)``) plus one per tile to rescale the running sum: half the special-function work
of a per-lane running max (two exponentials per element), which matters once the loads are fast
and the soft-capped loss adds a third.
"""

from __future__ import annotations

from ._triton import tl, triton


@triton.jit
def row_start(PTR, stride):
    """The start of this program's row (one program per row), with a 64-bit offset."""
    return PTR + tl.program_id(0).to(tl.int64) * stride


@triton.jit
def online_max_sum_init():
    """The running (row max, row sum) before the first tile: (-inf, 0) as float32 scalars."""
    return tl.full((), float("-inf"), tl.float32), tl.full((), 0.0, tl.float32)


@triton.jit
def online_max_sum_step(row_max, row_sum, x):
    """Fold the tile ``x`` (masked lanes -inf) into the running row max and the running sum of
    ``exp(x - row max)``; returns the new (max, sum)."""
    new_max = tl.maximum(row_max, tl.max(x, axis=0))
    # While only -inf has been seen, rescale from 0 instead (avoids -inf - -inf = NaN).
    safe_max = tl.where(new_max == float("-inf"), 0.0, new_max)
    row_sum = row_sum * tl.exp(row_max - safe_max) + tl.sum(tl.exp(x - safe_max), axis=0)
    return new_max, row_sum
