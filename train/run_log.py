"""What a run tells: each record to the hooks, ``metrics.jsonl`` (and its mirrors) and the
progress bar; warnings; and ``summary.json`` with the loss plots at the end.

Hooks hear every record on every rank; the files are written by the main rank only. The record
formats are documented in ``train.metrics_log``.
"""

from __future__ import annotations

import contextlib
import math
import sys
from typing import Callable, Iterator

import numpy as np
import torch
from tqdm.auto import tqdm

from tritonlm.util.atomic import write_json_atomic
from tritonlm.util.runinfo import run_metadata

from .config import TrainConfig
from .distributed import DistInfo
from .metrics_log import MetricsLog, plot_loss_curves, read_metrics
from .run_folder import RunFolder
from .run_state import RunState

Hook = Callable[[dict], None]


def _record(kind: str, state: RunState, **fields) -> dict:
    """A metrics record: where the run stands (step, tokens, training and wall seconds), then ``fields``."""
    return {"kind": kind, "step": state.step, "tokens": state.tokens, "elapsed_s": round(state.train_seconds, 4),
            "wall_s": round(state.wall_seconds(), 4), **fields}


class RunLog:
    """The run's records, from the header written at the start to the summary at the end."""

    def __init__(self, cfg: TrainConfig, info: DistInfo, device: torch.device, folder: RunFolder,
                 hooks: list[Hook], state: RunState):
        self.cfg, self.info, self.device, self.folder, self.hooks = cfg, info, device, folder, hooks
        self._interval_start = (state.tokens, state.train_seconds)  # since the last logged step
        self._bar: tqdm | None = None
        self.metrics: MetricsLog | None = None
        if info.is_main:
            self.metrics = MetricsLog(folder.root, cfg.logger, state.step if cfg.resume else None,
                                      cfg.to_dict(), cfg.wandb_project, cfg.wandb_mode)
            self.metrics.log({"kind": "resume" if cfg.resume else "run", "step": state.step,
                              "config": cfg.to_dict(), "metadata": run_metadata()})

    def train_step(self, state: RunState, loss: float, grad_norm: float, lr: float) -> None:
        """A step's record: to the hooks and the progress bar, and every ``log_interval`` steps
        to the metrics file (with the throughput since the last logged step)."""
        record = _record("train", state, lr=lr, train_loss=loss, grad_norm=grad_norm)
        tokens, seconds = state.tokens - self._interval_start[0], state.train_seconds - self._interval_start[1]
        record["tokens_per_s"] = tokens / seconds if seconds > 0 else 0.0
        for hook in self.hooks:
            hook(record)
        self._update_bar(state, loss, lr)
        if self.cfg.log_interval and state.step % self.cfg.log_interval == 0:
            if self.metrics is not None:
                self.metrics.log(record)
            self._interval_start = (state.tokens, state.train_seconds)

    def validation(self, state: RunState, val_loss: float) -> None:
        """A validation loss's record: to the metrics file and the hooks."""
        record = _record("val", state, val_loss=val_loss)
        if self.metrics is not None:
            self.metrics.log(record)
        for hook in self.hooks:
            hook(record)

    def warning(self, step: int, message: str) -> None:
        """A warning: to the metrics file and stderr (once, from the main rank)."""
        if self.metrics is not None:
            self.metrics.log({"kind": "warning", "step": step, "message": message})
        if self.info.is_main:
            print(f"warning: {message}", file=sys.stderr)

    @contextlib.contextmanager
    def progress_bar(self, state: RunState) -> Iterator[None]:
        """A tqdm bar (main rank, ``progress`` on) over the budget's seconds or ``max_iters``
        steps, open while the block runs."""
        if self.cfg.progress and self.info.is_main:
            if self.cfg.budget_seconds is not None:
                self._bar = tqdm(total=int(math.ceil(self.cfg.budget_seconds)), unit="s", desc="train (budget)",
                                 initial=int(state.train_seconds), dynamic_ncols=True)
            else:
                self._bar = tqdm(total=self.cfg.max_iters, initial=state.step, unit="step", desc="train",
                                 dynamic_ncols=True)
        try:
            yield
        finally:
            if self._bar is not None:
                self._bar.close()
                self._bar = None

    def _update_bar(self, state: RunState, loss: float, lr: float) -> None:
        bar = self._bar
        if bar is None:
            return
        bar.update(1 if self.cfg.budget_seconds is None else 0)
        if self.cfg.budget_seconds is not None:
            bar.n = min(int(state.train_seconds), bar.total)
            bar.refresh()
        bar.set_postfix(loss=f"{loss:.3f}", lr=f"{lr:.2e}", refresh=False)

    def summary(self, status: str, message: str, state: RunState, parameters: int) -> dict:
        """The run's summary (``status`` completed, interrupted or diverged), written to
        ``summary.json`` by the main rank and returned on every rank."""
        records = read_metrics(self.folder.metrics) if self.info.is_main else []
        train = [r["train_loss"] for r in records if r.get("kind") == "train"]
        vals = [r for r in records if r.get("kind") == "val"]
        summary = {
            "status": status, "message": message, "steps": state.step, "tokens": state.tokens,
            "train_seconds": round(state.train_seconds, 3), "eval_seconds": round(state.eval_seconds, 3),
            "wall_seconds": round(state.wall_seconds(), 3),
            "tokens_per_s": state.tokens / state.train_seconds if state.train_seconds else 0.0,
            "final_train_loss": float(np.mean(train[-10:])) if train else None,
            "final_val_loss": vals[-1]["val_loss"] if vals else None,
            "best_val_loss": state.best_val_loss,
            "parameters": parameters,
            "world_size": self.info.world_size, "device": str(self.device),
            "checkpoint": str(self.folder.checkpoint),
            "config": self.cfg.to_dict(), "metadata": run_metadata(),
        }
        if self.info.is_main:
            write_json_atomic(self.folder.summary, summary)
        return summary

    def close(self, plot: bool = True) -> None:
        """Close the metrics file (and its mirrors), then plot the loss curves unless ``plot`` is off."""
        if self.metrics is not None:
            self.metrics.close()
            if plot:
                plot_loss_curves(read_metrics(self.metrics.path), self.folder.root)
