"""The run's checkpoints: written only when the run looks healthy, so the last one is good.

``Checkpointer`` watches every step's loss and gradient norm (``train.health``) and, when asked
to save, writes ``checkpoint.pt`` (model, optimizer, RNG, counters, data position; main rank)
unless the run showed signs of diverging since the previous checkpoint, which is then kept.
"""

from __future__ import annotations

import torch

from .checkpoint import save_checkpoint, unwrap_model
from .config import TrainConfig
from .data import ShardedBatchSampler
from .distributed import DistInfo, barrier
from .health import HealthMonitor
from .run_folder import RunFolder
from .run_state import RunState


class Checkpointer:
    """``observe`` every step; ``save(state)`` writes a checkpoint or says why it did not."""

    def __init__(self, folder: RunFolder, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                 sampler: ShardedBatchSampler, cfg: TrainConfig, info: DistInfo):
        self.path, self.model, self.optimizer, self.sampler = folder.checkpoint, model, optimizer, sampler
        self.train_config, self.info = cfg.to_dict(), info
        self.health = HealthMonitor()

    def observe(self, step: int, loss: float, grad_norm: float) -> None:
        self.health.observe(step, loss, grad_norm)

    def save(self, state: RunState) -> str | None:
        """Checkpoint the run and note the step in ``state``; or, when it showed signs of diverging
        since the last checkpoint, keep that one and return why. Every rank decides the same (the
        losses and norms are already reduced across ranks)."""
        unhealthy = self.health.check(unwrap_model(self.model))
        if unhealthy:
            return f"checkpoint at step {state.step} skipped, the previous one is kept: {unhealthy}"
        if self.info.is_main:
            save_checkpoint(self.model, self.optimizer, state.step, self.path, train_config=self.train_config,
                            run_state=state.to_dict(), sampler=self.sampler.state_dict(),
                            world_size=self.info.world_size)
        state.last_saved_step = state.step
        barrier(self.info)
        return None

    def last_good(self, state: RunState) -> str:
        """Where the last good checkpoint is, for a message about a run that went wrong."""
        if state.last_saved_step is not None:
            return f"the last good checkpoint is {self.path} (step {state.last_saved_step})"
        return f"the last good checkpoint is {self.path}" if self.path.exists() else "no checkpoint was written yet"
