"""The training loop: ``run_training(cfg) -> summary``, used by ``python -m train.train``.

Per optimizer step: set the scheduled learning rate, accumulate gradients over
``grad_accum_steps`` micro-batches (DDP synchronises only on the last one), clip, check the loss
is finite, step AdamW. Periodically: log, evaluate, checkpoint.

Time accounting: ``budget_seconds`` limits *training* time (batch loading, forward, backward,
optimizer, including any torch.compile warm-up in the first steps). Periodic evaluation and
checkpoint writes are paused out of that clock and reported separately (``eval_seconds``), so
a run's budget buys the same amount of training whatever its evaluation cadence. The run stops
before a step predicted (by the slowest of the last eight) to end past the budget, so it ends
within about one step of it, and the
learning rate follows ``train_seconds / budget_seconds``, reaching ``min_lr`` at the end.
"""

from __future__ import annotations

import collections
import contextlib
import enum
import math
import sys
import time
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel
from tqdm.auto import tqdm

from tritonlm.util.atomic import write_json_atomic
from tritonlm.util.cli import RunFailed
from tritonlm.util.runinfo import run_metadata

from .checkpoint import save_checkpoint, unwrap_model
from .config import VAL_SEED_OFFSET, TrainConfig
from .data import ShardedBatchSampler, TokenData
from .distributed import (DistInfo, any_rank, barrier, env_dist_info, init_distributed, mean_across_ranks,
                          rank_device, shutdown_distributed)
from .functional import clip_grad_norm, global_grad_norm
from .health import HealthMonitor
from .interrupt import StopRequest
from .metrics import MetricsLog, check_logger, plot_loss_curves, read_metrics
from .run_folder import RunFolder
from .schedule import lr_at_progress
from .setup import (RunState, autocast_context, build_model_and_optimizer, check_run_dir, load_datasets,
                    resume_from_checkpoint, start_run_dir, write_run_config)


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


class LossModule(torch.nn.Module):
    """``forward(ids, targets) -> loss``: lets DDP and torch.compile wrap ``model.loss``."""

    def __init__(self, model: torch.nn.Module, z_loss: float):
        super().__init__()
        self.model, self.z_loss = model, z_loss

    def forward(self, ids: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return self.model.loss(ids, targets, z_loss=self.z_loss)


def run_training(cfg: TrainConfig, hooks: Iterable[Callable[[dict], None]] = ()) -> dict:
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
    def __init__(self, cfg: TrainConfig, info: DistInfo, device: torch.device, hooks: list):
        self.cfg, self.info, self.device, self.hooks = cfg, info, device, hooks
        # Every input is checked before anything is written: a bad start leaves no trace.
        self.run_dir = check_run_dir(cfg)
        check_logger(cfg.logger)
        self.folder = RunFolder(self.run_dir)
        self.train_data, self.val_data = load_datasets(cfg)
        self.model, self.optimizer = build_model_and_optimizer(cfg, device)
        self.sampler = ShardedBatchSampler(self.train_data, cfg.batch_size, cfg.model.context_length,
                                           seed=cfg.seed, rank=info.rank, world_size=info.world_size)
        self.lock = start_run_dir(cfg, self.run_dir, info)  # this job's folder from here on
        try:
            self._start(cfg, info, device)
        except BaseException:
            self.close()
            raise

    def _start(self, cfg: TrainConfig, info: DistInfo, device: torch.device) -> None:
        self.state = RunState()
        if cfg.resume:
            self.state, sampler_state = resume_from_checkpoint(self.run_dir, self.model, self.optimizer, cfg,
                                                               info.world_size)
            self.sampler.load_state_dict(sampler_state)
        write_run_config(cfg, self.run_dir, info)
        self.ddp: DistributedDataParallel | None = None  # set by _wrap when data-parallel
        self.loss_fn = self._wrap(LossModule(self.model, cfg.z_loss))
        self.autocast = autocast_context(cfg, device)
        self.tokens_per_step = cfg.tokens_per_step_per_rank * info.world_size
        self.stop_reason: StopReason | None = None
        self.stop_detail = ""  # the signal's name, or the reason's
        self.last_val_step: int | None = None  # the step of the latest validation loss
        self.health = HealthMonitor()  # only a healthy state is checkpointed
        self.last_saved_step: int | None = None
        self.wall_started = time.perf_counter()
        self.wall_offset = self.state.train_seconds + self.state.eval_seconds  # wall time before a resume
        self.metrics = None
        if info.is_main:
            self.metrics = MetricsLog(self.run_dir, cfg.logger, self.state.step if cfg.resume else None,
                                      cfg.to_dict(), cfg.wandb_project, cfg.wandb_mode)
            self.metrics.log({"kind": "resume" if cfg.resume else "run", "step": self.state.step,
                              "config": cfg.to_dict(), "metadata": run_metadata()})

    def close(self) -> None:
        """Give the run folder back (release its lock)."""
        if self.lock is not None:
            self.lock.release()

    def _wrap(self, module: torch.nn.Module) -> torch.nn.Module:
        if self.info.enabled:
            ids = [self.device.index] if self.device.type == "cuda" else None
            module = self.ddp = DistributedDataParallel(module, device_ids=ids)
        if self.cfg.compile and self.device.type == "cuda":
            module = torch.compile(module)
        return module

    # ------------------------------------------------------------------------------ the loop
    def run(self) -> dict:
        cfg, state = self.cfg, self.state
        recent_steps = collections.deque([0.0], maxlen=8)
        self.wall_started = time.perf_counter()
        if state.step == 0 and self.val_data is not None and cfg.eval_interval:
            self._timed_outside_budget(self._evaluate)
        bar = self._progress_bar()
        interval_start = (state.step, state.train_seconds)
        try:
            with StopRequest() as stop:
                while True:
                    self.stop_reason, self.stop_detail = self._stop_reason(max(recent_steps), stop)
                    if self.stop_reason is not None:
                        break
                    t0 = time.perf_counter()
                    loss, grad_norm, lr = self._train_step()
                    step_seconds = time.perf_counter() - t0
                    recent_steps.append(step_seconds)
                    state.train_seconds += step_seconds
                    state.step += 1
                    state.tokens += self.tokens_per_step
                    self._check_finite(loss, grad_norm)
                    self.health.observe(state.step, loss, grad_norm)
                    interval_start = self._after_step(loss, grad_norm, lr, interval_start, bar)
        finally:
            if bar is not None:
                bar.close()
        return self._finish("interrupted" if self.stop_reason.interrupted else "completed")

    def _wall(self) -> float:
        """Wall-clock seconds of the run so far, the time before a resume included."""
        return self.wall_offset + time.perf_counter() - self.wall_started

    def _stop_reason(self, step_seconds: float, stop: StopRequest) -> tuple[StopReason | None, str]:
        """Why to stop before the next step (and its detail), or (None, ""). Every rank reaches
        the same answer: a signal may reach only some ranks and each rank has its own clock, so
        the flags are combined across ranks before deciding."""
        cfg, state = self.cfg, self.state
        # predict the next step by the slowest of the last few (robust to jitter)
        over_budget = cfg.budget_seconds is not None and state.train_seconds + step_seconds >= cfg.budget_seconds
        signalled, over_budget = any_rank([stop.requested, over_budget], self.info, self.device)
        if signalled:
            return StopReason.SIGNAL, stop.signal_name or "a signal on another rank"
        if cfg.max_iters is not None and state.step >= cfg.max_iters:
            return StopReason.MAX_ITERS, StopReason.MAX_ITERS.value
        if over_budget:  # the next step would end past the budget
            return StopReason.BUDGET, StopReason.BUDGET.value
        return None, ""

    def _progress(self) -> float:
        if self.cfg.budget_seconds is not None:
            return self.state.train_seconds / self.cfg.budget_seconds
        return self.state.step / max(1, self.cfg.max_iters - 1)

    def _train_step(self) -> tuple[float, float, float]:
        cfg = self.cfg
        lr = lr_at_progress(self._progress(), cfg.schedule, cfg.max_lr, cfg.min_lr,
                            cfg.warmup_fraction, cfg.decay_fraction)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.optimizer.zero_grad(set_to_none=True)
        total = torch.zeros((), device=self.device)
        for micro in range(cfg.grad_accum_steps):
            ids, targets = self.sampler.next_batch(self.device)
            last = micro == cfg.grad_accum_steps - 1
            sync = contextlib.nullcontext() if (self.ddp is None or last) else self.ddp.no_sync()
            with sync:
                with self.autocast():
                    loss = self.loss_fn(ids, targets)
                (loss / cfg.grad_accum_steps).backward()
            total += loss.detach().float()
        params = [p for p in self.model.parameters() if p.grad is not None]
        grad_norm = clip_grad_norm(params, cfg.grad_clip) if cfg.grad_clip > 0 else global_grad_norm(params)
        loss = mean_across_ranks(total / cfg.grad_accum_steps, self.info)
        loss_value, norm_value = float(loss.item()), float(grad_norm.item())
        if math.isfinite(loss_value) and math.isfinite(norm_value):
            self.optimizer.step()  # never apply a non-finite update
        return loss_value, norm_value, lr

    def _check_finite(self, loss: float, grad_norm: float) -> None:
        if math.isfinite(loss) and math.isfinite(grad_norm):
            return
        checkpoint = self.folder.checkpoint
        kept = (f"the last good checkpoint is {checkpoint} (step {self.last_saved_step})" if self.last_saved_step is not None
                else f"the last good checkpoint is {checkpoint}" if checkpoint.exists() else "no checkpoint was written yet")
        message = (f"loss became non-finite at step {self.state.step} (loss={loss}, grad_norm={grad_norm}); "
                   f"stopping. {kept}. Lower --max_lr, raise --warmup_fraction or set --grad_clip.")
        if self.info.is_main:
            self._write_summary("diverged", message)
            self.metrics.close()
        raise NonFiniteLossError(message)

    def _after_step(self, loss, grad_norm, lr, interval_start, bar) -> tuple[int, float]:
        cfg, state = self.cfg, self.state
        record = {"kind": "train", "step": state.step, "tokens": state.tokens,
                  "elapsed_s": round(state.train_seconds, 4), "wall_s": round(self._wall(), 4),
                  "lr": lr, "train_loss": loss, "grad_norm": grad_norm}
        steps, seconds = state.step - interval_start[0], state.train_seconds - interval_start[1]
        record["tokens_per_s"] = steps * self.tokens_per_step / seconds if seconds > 0 else 0.0
        for hook in self.hooks:
            hook(record)
        if bar is not None:
            bar.update(1 if cfg.budget_seconds is None else 0)
            if cfg.budget_seconds is not None:
                bar.n = min(int(state.train_seconds), bar.total)
                bar.refresh()
            bar.set_postfix(loss=f"{loss:.3f}", lr=f"{lr:.2e}", refresh=False)
        logged = cfg.log_interval and state.step % cfg.log_interval == 0
        if logged and self.metrics is not None:
            self.metrics.log(record)
        if cfg.eval_interval and state.step % cfg.eval_interval == 0 and self.val_data is not None:
            self._timed_outside_budget(self._evaluate)
        if cfg.checkpoint_interval and state.step % cfg.checkpoint_interval == 0:
            self._timed_outside_budget(self._save)
        return (state.step, state.train_seconds) if logged else interval_start

    def _timed_outside_budget(self, fn: Callable[[], None]) -> None:
        t0 = time.perf_counter()
        fn()
        self.state.eval_seconds += time.perf_counter() - t0

    # ------------------------------------------------------------------ evaluation, checkpoints
    @torch.no_grad()
    def _evaluate(self) -> float:
        """Mean loss over ``eval_iters`` fixed validation batches (the same ones every time)."""
        cfg = self.cfg
        sampler = ShardedBatchSampler(self.val_data, cfg.batch_size, cfg.model.context_length,
                                      seed=cfg.seed + VAL_SEED_OFFSET, rank=self.info.rank,
                                      world_size=self.info.world_size)
        self.model.eval()
        total = torch.zeros((), device=self.device)
        for _ in range(cfg.eval_iters):
            ids, targets = sampler.next_batch(self.device)
            with self.autocast():
                total += self.model.loss(ids, targets).float()
        self.model.train()
        val_loss = float(mean_across_ranks(total / cfg.eval_iters, self.info).item())
        state = self.state
        state.best_val_loss = val_loss if state.best_val_loss is None else min(state.best_val_loss, val_loss)
        record = {"kind": "val", "step": state.step, "tokens": state.tokens,
                  "elapsed_s": round(state.train_seconds, 4), "wall_s": round(self._wall(), 4), "val_loss": val_loss}
        if self.metrics is not None:
            self.metrics.log(record)
        for hook in self.hooks:
            hook(record)
        self.last_val_step = state.step
        return val_loss

    def _save(self) -> None:
        """Checkpoint the run, unless it showed signs of diverging since the last checkpoint (the
        same decision on every rank: the losses and norms are already reduced across ranks)."""
        unhealthy = self.health.check(unwrap_model(self.model))
        if unhealthy:
            message = f"checkpoint at step {self.state.step} skipped, the previous one is kept: {unhealthy}"
            if self.metrics is not None:
                self.metrics.log({"kind": "warning", "step": self.state.step, "message": message})
            if self.info.is_main:
                print(f"warning: {message}", file=sys.stderr)
            return
        if self.info.is_main:
            save_checkpoint(self.model, self.optimizer, self.state.step, self.folder.checkpoint,
                            train_config=self.cfg.to_dict(), run_state=self.state.to_dict(),
                            sampler=self.sampler.state_dict(), world_size=self.info.world_size)
        self.last_saved_step = self.state.step
        barrier(self.info)

    # --------------------------------------------------------------------------------- the end
    def _finish(self, status: str) -> dict:
        state = self.state
        if self.val_data is not None and self.last_val_step != state.step and status == "completed":
            self._timed_outside_budget(self._evaluate)
        self._timed_outside_budget(self._save)
        summary = self._write_summary(status, f"stopped: {self.stop_detail}")
        if self.metrics is not None:
            self.metrics.close()
            plot_loss_curves(read_metrics(self.metrics.path), self.run_dir)
        return summary

    def _write_summary(self, status: str, message: str) -> dict:
        state, cfg = self.state, self.cfg
        records = read_metrics(self.folder.metrics) if self.info.is_main else []
        train = [r["train_loss"] for r in records if r.get("kind") == "train"]
        vals = [r for r in records if r.get("kind") == "val"]
        summary = {
            "status": status, "message": message, "steps": state.step, "tokens": state.tokens,
            "train_seconds": round(state.train_seconds, 3), "eval_seconds": round(state.eval_seconds, 3),
            "wall_seconds": round(self._wall(), 3),
            "tokens_per_s": state.tokens / state.train_seconds if state.train_seconds else 0.0,
            "final_train_loss": float(np.mean(train[-10:])) if train else None,
            "final_val_loss": vals[-1]["val_loss"] if vals else None,
            "best_val_loss": state.best_val_loss,
            "parameters": sum(p.numel() for p in self.model.parameters()),
            "world_size": self.info.world_size, "device": str(self.device),
            "checkpoint": str(self.folder.checkpoint),
            "config": cfg.to_dict(), "metadata": run_metadata(),
        }
        if self.info.is_main:
            write_json_atomic(self.folder.summary, summary)
        return summary

    def _progress_bar(self):
        if not (self.cfg.progress and self.info.is_main):
            return None
        if self.cfg.budget_seconds is not None:
            return tqdm(total=int(math.ceil(self.cfg.budget_seconds)), unit="s", desc="train (budget)",
                        initial=int(self.state.train_seconds), dynamic_ncols=True)
        return tqdm(total=self.cfg.max_iters, initial=self.state.step, unit="step", desc="train", dynamic_ncols=True)
