"""Divergence detection: is the run's state healthy enough to be checkpointed?

A loss turns NaN only at the end of a divergence; by then the weights may have been blowing up
for many steps. Saving such weights would make "the last good checkpoint" useless, so each
checkpoint is written only if nothing alarming was seen since the previous one: a non-finite
loss or gradient norm, a gradient norm far above its recent median, or a loss far above its
recent level; and the weights themselves are finite.
"""

from __future__ import annotations

import collections
import math
import statistics

import torch

HISTORY = 50  # recent steps the medians are taken over
MIN_HISTORY = 10  # steps seen before the relative tests apply
GRAD_NORM_FACTOR = 100.0  # a gradient norm this many times its recent median is an explosion
LOSS_FACTOR = 1.5  # a loss this far above its recent median (and by at least LOSS_MARGIN) is a blow-up
LOSS_MARGIN = 1.0  # nats


class HealthMonitor:
    """Watches the training loss and gradient norm step by step; ``check`` says whether the
    state may be saved now (and why not), then starts watching afresh."""

    def __init__(self) -> None:
        self.losses: collections.deque[float] = collections.deque(maxlen=HISTORY)
        self.norms: collections.deque[float] = collections.deque(maxlen=HISTORY)
        self.alarm: str | None = None  # the first alarming sign since the last check

    def observe(self, step: int, loss: float, grad_norm: float) -> None:
        alarm = self._alarm(loss, grad_norm)
        if alarm and self.alarm is None:
            self.alarm = f"step {step}: {alarm}"
        if math.isfinite(loss) and math.isfinite(grad_norm):
            self.losses.append(loss)
            self.norms.append(grad_norm)

    def _alarm(self, loss: float, grad_norm: float) -> str | None:
        if not (math.isfinite(loss) and math.isfinite(grad_norm)):
            return f"non-finite loss {loss} or gradient norm {grad_norm}"
        if len(self.norms) < MIN_HISTORY:
            return None
        norm_median, loss_median = statistics.median(self.norms), statistics.median(self.losses)
        if norm_median > 0 and grad_norm > GRAD_NORM_FACTOR * norm_median:
            return f"gradient norm {grad_norm:.3g} is {grad_norm / norm_median:.0f}x its recent median"
        if loss > LOSS_FACTOR * loss_median and loss > loss_median + LOSS_MARGIN:
            return f"loss {loss:.3f} is far above its recent median {loss_median:.3f}"
        return None

    def check(self, model: torch.nn.Module) -> str | None:
        """None when the state is healthy to save, else the reason it is not. Resets the watch."""
        alarm, self.alarm = self.alarm, None
        if alarm:
            return alarm
        if not all(bool(torch.isfinite(p).all()) for p in model.parameters()):
            return "the weights hold non-finite values"
        return None
