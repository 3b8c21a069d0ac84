"""One optimizer step: the scheduled learning rate, gradients accumulated over micro-batches
(DDP synchronises only on the last one), clipping, and the update unless the loss is not finite.

Also the pieces the step is made of and that others reuse: ``LossModule`` (what DDP and
``torch.compile`` wrap) and ``autocast_context`` (the run's mixed precision).
"""

from __future__ import annotations

import contextlib
import math
from typing import Callable, ContextManager

import torch
from torch.nn.parallel import DistributedDataParallel

from .config import TrainConfig
from .data import ShardedBatchSampler
from .distributed import DistInfo, mean_across_ranks
from .functional import clip_grad_norm, global_grad_norm
from .run_state import RunState
from .schedule import lr_at_progress


class LossModule(torch.nn.Module):
    """``forward(ids, targets) -> loss``: lets DDP and torch.compile wrap ``model.loss``."""

    def __init__(self, model: torch.nn.Module, z_loss: float):
        super().__init__()
        self.model, self.z_loss = model, z_loss

    def forward(self, ids: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return self.model.loss(ids, targets, z_loss=self.z_loss)


def autocast_context(cfg: TrainConfig, device: torch.device) -> Callable[[], ContextManager]:
    """bf16 autocast on CUDA (dtype auto|bf16) or on the CPU when bf16 is asked for; else none."""
    use_bf16 = cfg.dtype == "bf16" or (cfg.dtype == "auto" and device.type == "cuda")
    if not use_bf16:
        return contextlib.nullcontext
    return lambda: torch.autocast(device_type=device.type, dtype=torch.bfloat16)


def scheduled_lr(cfg: TrainConfig, state: RunState) -> float:
    """The learning rate of the next step: the schedule at the run's progress, which is training
    time over the budget in budget mode, else step over ``max_iters - 1``."""
    if cfg.budget_seconds is not None:
        progress = state.train_seconds / cfg.budget_seconds
    else:
        progress = state.step / max(1, cfg.max_iters - 1)
    return lr_at_progress(progress, cfg.schedule, cfg.max_lr, cfg.min_lr, cfg.warmup_fraction, cfg.decay_fraction)


class TrainStep:
    """``step(lr) -> (loss, grad_norm)``: one optimizer step on the next global batch.

    The loss is the mean over micro-batches and ranks, the gradient norm the one before clipping;
    both are plain floats, the same on every rank. A non-finite loss or norm is returned without
    updating the weights (the caller decides what to do about it).
    """

    def __init__(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer, sampler: ShardedBatchSampler,
                 cfg: TrainConfig, info: DistInfo, device: torch.device):
        self.model, self.optimizer, self.sampler = model, optimizer, sampler
        self.grad_accum_steps, self.grad_clip = cfg.grad_accum_steps, cfg.grad_clip
        self.info, self.device = info, device
        self.tokens_per_step = cfg.tokens_per_step_per_rank * info.world_size  # the global batch, in tokens
        self.autocast = autocast_context(cfg, device)
        self.ddp: DistributedDataParallel | None = None  # set when data-parallel
        self.loss_fn = self._wrap(LossModule(model, cfg.z_loss), cfg.compiles_on(device.type))

    def _wrap(self, module: torch.nn.Module, compiled: bool) -> torch.nn.Module:
        """DDP around the loss when data-parallel, and torch.compile around that when asked."""
        if self.info.enabled:
            ids = [self.device.index] if self.device.type == "cuda" else None
            module = self.ddp = DistributedDataParallel(module, device_ids=ids)
        if compiled:
            module = torch.compile(module)
        return module

    def __call__(self, lr: float) -> tuple[float, float]:
        for group in self.optimizer.param_groups:
            group["lr"] = lr * group.get("lr_scale", 1.0)  # a group may run at a multiple (Muon's)
        self.optimizer.zero_grad(set_to_none=True)
        total = torch.zeros((), device=self.device)
        for micro in range(self.grad_accum_steps):
            ids, targets = self.sampler.next_batch(self.device)
            last = micro == self.grad_accum_steps - 1
            sync = contextlib.nullcontext() if (self.ddp is None or last) else self.ddp.no_sync()
            with sync:
                with self.autocast():
                    loss = self.loss_fn(ids, targets)
                (loss / self.grad_accum_steps).backward()
            total += loss.detach().float()
        params = [p for p in self.model.parameters() if p.grad is not None]
        grad_norm = clip_grad_norm(params, self.grad_clip) if self.grad_clip > 0 else global_grad_norm(params)
        loss = mean_across_ranks(total / self.grad_accum_steps, self.info)
        loss_value, norm_value = float(loss.item()), float(grad_norm.item())
        if math.isfinite(loss_value) and math.isfinite(norm_value):
            self.optimizer.step()  # never apply a non-finite update
        return loss_value, norm_value
