"""The run's progress, in one place: the counters a checkpoint carries and the loop's marks.

``RunState`` is the only mutable state of a run. Its saved part (``to_dict``: step, tokens,
training and evaluation seconds, best validation loss) goes into every checkpoint, so a resumed
run continues where it stopped; the rest (the steps of the latest evaluation and checkpoint,
the wall clock) lives only as long as the job.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from typing import Iterator


@dataclass
class RunState:
    """Counters that a checkpoint carries, and the marks the loop leaves as it goes."""

    step: int = 0
    tokens: int = 0
    train_seconds: float = 0.0  # training time (what budget_seconds limits)
    eval_seconds: float = 0.0  # evaluation + checkpoint time, outside the budget
    best_val_loss: float | None = None
    last_val_step: int | None = None  # the step of the latest validation loss (not saved)
    last_saved_step: int | None = None  # the step of this job's latest checkpoint (not saved)
    _wall_started: float = field(default_factory=time.perf_counter, repr=False)
    _wall_offset: float = field(default=0.0, repr=False)  # wall time before a resume

    def to_dict(self) -> dict:
        """The saved part, as a checkpoint stores it."""
        return {"step": self.step, "tokens": self.tokens, "train_seconds": self.train_seconds,
                "eval_seconds": self.eval_seconds, "best_val_loss": self.best_val_loss}

    @classmethod
    def from_saved(cls, step: int, saved: dict) -> "RunState":
        """The state a checkpoint saved at ``step`` (``saved`` is its ``to_dict``)."""
        return cls(step=int(step), tokens=int(saved.get("tokens", 0)),
                   train_seconds=float(saved.get("train_seconds", 0.0)),
                   eval_seconds=float(saved.get("eval_seconds", 0.0)),
                   best_val_loss=saved.get("best_val_loss"))

    def start_wall_clock(self) -> None:
        """Start the wall clock of this job, counting the time the run spent before a resume."""
        self._wall_offset = self.train_seconds + self.eval_seconds
        self._wall_started = time.perf_counter()

    def wall_seconds(self) -> float:
        """Wall-clock seconds of the run so far, the time before a resume included."""
        return self._wall_offset + time.perf_counter() - self._wall_started

    def advance(self, seconds: float, tokens: int) -> None:
        """Count one optimizer step that took ``seconds`` of training time and saw ``tokens``."""
        self.train_seconds += seconds
        self.step += 1
        self.tokens += tokens

    def record_val_loss(self, val_loss: float) -> None:
        """Note a validation loss measured at the current step."""
        self.best_val_loss = val_loss if self.best_val_loss is None else min(self.best_val_loss, val_loss)
        self.last_val_step = self.step

    @contextlib.contextmanager
    def outside_budget(self) -> Iterator[None]:
        """Time the block as evaluation (``eval_seconds``): the training clock is paused."""
        t0 = time.perf_counter()
        yield
        self.eval_seconds += time.perf_counter() - t0
