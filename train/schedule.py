"""Learning-rate schedules: cosine with linear warmup, and warmup-stable-decay (WSD).

Both take a position ``it`` that may be fractional, so the loop can evaluate them at a step
count or at a fraction of a wall-clock budget (see ``lr_at_progress``).
"""

from __future__ import annotations

import math


def lr_cosine_schedule(
    it: float, max_lr: float, min_lr: float, warmup_iters: float, cosine_cycle_iters: float
) -> float:
    """Linear warmup ``it / Tw * max_lr`` for ``it < Tw``; cosine from ``max_lr`` to ``min_lr``
    between ``Tw`` and ``Tc``; ``min_lr`` after ``Tc``."""
    if it < warmup_iters:
        return it / warmup_iters * max_lr
    if it > cosine_cycle_iters:
        return min_lr
    span = cosine_cycle_iters - warmup_iters
    if span <= 0:
        return min_lr if it > warmup_iters else max_lr
    progress = (it - warmup_iters) / span
    return min_lr + 0.5 * (1.0 + math.cos(math.pi * progress)) * (max_lr - min_lr)


def lr_wsd_schedule(
    it: float, max_lr: float, min_lr: float, warmup_iters: float, decay_iters: float, total_iters: float
) -> float:
    """Warmup-stable-decay: linear warmup to ``max_lr`` over ``warmup_iters``, constant
    ``max_lr``, then a linear decay to ``min_lr`` over the last ``decay_iters`` of
    ``total_iters``; ``min_lr`` after ``total_iters``."""
    if it < warmup_iters:
        return it / warmup_iters * max_lr
    decay_start = total_iters - decay_iters
    if it < decay_start:
        return max_lr
    if it >= total_iters or decay_iters <= 0:
        return min_lr
    frac = (it - decay_start) / decay_iters
    return max_lr + frac * (min_lr - max_lr)


SCHEDULES = ("cosine", "wsd")


def lr_at_progress(
    progress: float,
    schedule: str,
    max_lr: float,
    min_lr: float,
    warmup_fraction: float,
    decay_fraction: float,
) -> float:
    """The learning rate at ``progress`` in [0, 1] of a run (steps done / steps, or seconds
    spent / budget). Reaches ``min_lr`` exactly at ``progress == 1``."""
    progress = min(max(progress, 0.0), 1.0)
    if schedule == "cosine":
        return lr_cosine_schedule(progress, max_lr, min_lr, warmup_fraction, 1.0)
    if schedule == "wsd":
        return lr_wsd_schedule(progress, max_lr, min_lr, warmup_fraction, decay_fraction, 1.0)
    raise ValueError(f"unknown schedule {schedule!r}; choose one of {', '.join(SCHEDULES)}")
