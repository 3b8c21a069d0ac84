"""The online (one-sweep) max and sum-of-exponentials of a row read in tiles.

Shared by the softmax and cross-entropy kernels for rows longer than one block: each lane keeps a
running max and a sum of ``exp(x - max)`` rescaled whenever the max grows, and the lanes are
combined once at the end.
"""

from __future__ import annotations

import triton
import triton.language as tl


@triton.jit
def online_max_sum_step(lane_max, lane_sum, x):
    """Fold the tile ``x`` into the per-lane running max and sum; returns (max, sum)."""
    new_max = tl.maximum(lane_max, x)
    # A lane that has seen only -inf keeps sum 0 (avoids -inf - -inf = NaN).
    safe_max = tl.where(new_max == float("-inf"), 0.0, new_max)
    lane_sum = lane_sum * tl.exp(lane_max - safe_max) + tl.exp(x - safe_max)
    return new_max, lane_sum


@triton.jit
def online_max_sum_finish(lane_max, lane_sum):
    """Combine the lanes: the row max and the row sum of ``exp(x - row max)``."""
    row_max = tl.max(lane_max, axis=0)
    row_sum = tl.sum(lane_sum * tl.exp(lane_max - row_max), axis=0)
    return row_max, row_sum
