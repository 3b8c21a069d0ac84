"""The training loop: ``run_training(cfg) -> summary``, used by ``python -m train.train``.

``Trainer.run`` is the loop, top to bottom; each piece it calls lives in a module of its own:
``step.TrainStep`` (one optimizer step: the scheduled learning rate, gradients accumulated over
``grad_accum_steps`` micro-batches, clipping, the update), ``evaluation.Evaluator`` (validation
loss), ``checkpointing.Checkpointer`` (healthy checkpoints), ``run_log.RunLog`` (records,
progress bar, summary) and ``run_state.RunState`` (the run's counters, the only state). A run
starts in ``run_start`` (check, lock), builds in ``build`` and resumes in ``resume``.

Time accounting: ``budget_seconds`` limits *training* time (batch loading, forward, backward,
optimizer, including any torch.compile warm-up in the first steps). Periodic evaluation and
checkpoint writes are paused out of that clock and reported separately (``eval_seconds``), so
a run's budget buys the same amount of training whatever its evaluation cadence. The run stops
before a step predicted (by the slowest of the last eight) to end past the budget, so it ends
within about one step of it, and the learning rate follows ``train_seconds / budget_seconds``,
reaching ``min_lr`` at the end.
"""

from __future__ import annotations

import collections
import enum
import math
import time
from typing import Iterable

import torch

from tritonlm.util.cli import RunFailed

from .build import build_model_and_optimizer, load_datasets
from .checkpointing import Checkpointer
from .config import TrainConfig
from .data import ShardedBatchSampler
from .distributed import (DistInfo, any_rank, env_dist_info, init_distributed, rank_device,
                          shutdown_distributed)
from .evaluation import Evaluator
from .interrupt import StopRequest
from .metrics_log import check_logger
from .resume import resume_from_checkpoint
from .run_folder import RunFolder
from .run_log import Hook, RunLog
from .run_start import check_run_dir, find_run_tokenizer, record_tokenizer, start_run_dir, write_run_config
from .run_state import RunState
from .step import TrainStep, scheduled_lr

__all__ = ["NonFiniteLossError", "StopReason", "Trainer", "run_training"]


class NonFiniteLossError(RuntimeError, RunFailed):
    """The loss or gradient norm became NaN/inf; the last good checkpoint is kept."""


class StopReason(enum.Enum):
    """Why a run stopped: a signal (interrupted, resumable) or the end it was given."""

    SIGNAL = "signal"
    MAX_ITERS = "max_iters"
    BUDGET = "budget"

    @property
    def interrupted(self) -> bool:
        return self is StopReason.SIGNAL


def run_training(cfg: TrainConfig, hooks: Iterable[Hook] = ()) -> dict:
    """Train as ``cfg`` says and return the summary (also written to ``out_dir/summary.json``).

    Runs data-parallel when launched by torchrun (WORLD_SIZE > 1). ``hooks`` are called with
    every metrics record (train and validation) on every rank. Raises ``NonFiniteLossError``
    when the loss diverges.
    """
    info = env_dist_info()
    device = rank_device(cfg.device, info)
    owns_group = info.enabled and not torch.distributed.is_initialized()
    init_distributed(info, device)
    try:
        trainer = Trainer(cfg, info, device, list(hooks))
        try:
            return trainer.run()
        finally:
            trainer.close()
    finally:
        if owns_group:
            shutdown_distributed()


class Trainer:
    """One run of the loop: built from its config (and checkpoint, on ``--resume``), then ``run``."""

    def __init__(self, cfg: TrainConfig, info: DistInfo, device: torch.device, hooks: list[Hook]):
        self.cfg, self.info, self.device = cfg, info, device
        # Every input is checked before anything is written: a bad start leaves no trace.
        run_dir = check_run_dir(cfg)
        check_logger(cfg.logger)
        self.folder = RunFolder(run_dir)
        train_data, val_data = load_datasets(cfg)
        tokenizer_dir = find_run_tokenizer(cfg, train_data)
        self.model, optimizer = build_model_and_optimizer(cfg, device)
        sampler = ShardedBatchSampler(train_data, cfg.batch_size, cfg.model.context_length,
                                      seed=cfg.seed, rank=info.rank, world_size=info.world_size)
        self.lock = start_run_dir(run_dir, info)  # this job's folder from here on
        try:
            self.state = RunState()
            if cfg.resume:
                self.state, sampler_state = resume_from_checkpoint(run_dir, self.model, optimizer, cfg,
                                                                   info.world_size)
                sampler.load_state_dict(sampler_state)
            write_run_config(cfg, run_dir, info)
            record_tokenizer(tokenizer_dir, run_dir, info)
            self.step = TrainStep(self.model, optimizer, sampler, cfg, info, device)  # DDP after the resume
            self.evaluate = Evaluator(self.model, val_data, cfg, info, device) if val_data is not None else None
            self.checkpointer = Checkpointer(self.folder, self.model, optimizer, sampler, cfg, info)
            self.log = RunLog(cfg, info, device, self.folder, hooks, self.state)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Give the run folder back (release its lock)."""
        if self.lock is not None:
            self.lock.release()

    def run(self) -> dict:
        """Step until a signal, ``max_iters`` or the budget says stop; evaluate and checkpoint every
        ``eval_interval`` and ``checkpoint_interval`` steps; then finish (see ``_finish``)."""
        cfg, state = self.cfg, self.state
        state.start_wall_clock()
        if state.step == 0 and cfg.eval_interval:
            self._evaluate()
        recent_steps = collections.deque([0.0], maxlen=8)  # the slowest predicts the next step
        with StopRequest() as signals, self.log.progress_bar(state):
            while (stop := self._stop_reason(max(recent_steps), signals)) is None:
                t0 = time.perf_counter()
                lr = scheduled_lr(cfg, state)
                loss, grad_norm = self.step(lr)
                recent_steps.append(time.perf_counter() - t0)
                state.advance(recent_steps[-1], self.step.tokens_per_step)
                if not (math.isfinite(loss) and math.isfinite(grad_norm)):
                    self._diverged(loss, grad_norm)
                self.checkpointer.observe(state.step, loss, grad_norm)
                self.log.train_step(state, loss, grad_norm, lr)
                if cfg.eval_interval and state.step % cfg.eval_interval == 0:
                    self._evaluate()
                if cfg.checkpoint_interval and state.step % cfg.checkpoint_interval == 0:
                    self._checkpoint()
        return self._finish(*stop)

    def _stop_reason(self, step_seconds: float, signals: StopRequest) -> tuple[StopReason, str] | None:
        """Why to stop before the next step (and its detail), or None. Every rank reaches the
        same answer: a signal may reach only some ranks and each rank has its own clock, so the
        flags are combined across ranks before deciding."""
        cfg, state = self.cfg, self.state
        # the next step predicted by the slowest of the last few (robust to jitter)
        over_budget = cfg.budget_seconds is not None and state.train_seconds + step_seconds >= cfg.budget_seconds
        signalled, over_budget = any_rank([signals.requested, over_budget], self.info, self.device)
        if signalled:
            return StopReason.SIGNAL, signals.signal_name or "a signal on another rank"
        if cfg.max_iters is not None and state.step >= cfg.max_iters:
            return StopReason.MAX_ITERS, StopReason.MAX_ITERS.value
        if over_budget:  # the next step would end past the budget
            return StopReason.BUDGET, StopReason.BUDGET.value
        return None

    def _evaluate(self) -> None:
        """The validation loss (when there is validation data), timed outside the budget."""
        if self.evaluate is None:
            return
        with self.state.outside_budget():
            val_loss = self.evaluate()
            self.state.record_val_loss(val_loss)
            self.log.validation(self.state, val_loss)

    def _checkpoint(self) -> None:
        """A checkpoint (or the warning that the run looked unhealthy), timed outside the budget."""
        with self.state.outside_budget():
            skipped = self.checkpointer.save(self.state)
            if skipped:
                self.log.warning(self.state.step, skipped)

    def _diverged(self, loss: float, grad_norm: float) -> None:
        """Stop on a non-finite loss or gradient norm: summary ``diverged``, the last good checkpoint kept."""
        message = (f"loss became non-finite at step {self.state.step} (loss={loss}, grad_norm={grad_norm}); "
                   f"stopping. {self.checkpointer.last_good(self.state)}. Lower --max_lr, raise --warmup_fraction "
                   "or set --grad_clip.")
        if self.info.is_main:
            self.log.summary("diverged", message, self.state, self._parameters())
            self.log.close(plot=False)
        raise NonFiniteLossError(message)

    def _finish(self, reason: StopReason, detail: str) -> dict:
        """A completed run is evaluated once more (unless it just was); every run checkpoints,
        writes its summary and plots its loss curves."""
        status = "interrupted" if reason.interrupted else "completed"
        if status == "completed" and self.state.last_val_step != self.state.step:
            self._evaluate()
        self._checkpoint()
        summary = self.log.summary(status, f"stopped: {detail}", self.state, self._parameters())
        self.log.close()
        return summary

    def _parameters(self) -> int:
        return sum(p.numel() for p in self.model.parameters())
