"""Periodic evaluation: the mean loss over the same fixed validation batches every time.

The batches come from a seeded stream of their own (``seed + VAL_SEED_OFFSET``), restarted at
every evaluation, so successive values are comparable and the training stream is untouched.
"""

from __future__ import annotations

import torch

from tritonlm.corpora.settings import VAL_SEED_OFFSET

from .config import TrainConfig
from .data import ShardedBatchSampler, TokenData
from .distributed import DistInfo, mean_across_ranks
from .step import autocast_context


class Evaluator:
    """``evaluate() -> val_loss``: the model's mean loss over ``eval_iters`` validation batches,
    averaged across ranks (each rank takes its own share of every batch)."""

    def __init__(self, model: torch.nn.Module, data: TokenData, cfg: TrainConfig, info: DistInfo,
                 device: torch.device):
        self.model, self.data, self.info, self.device = model, data, info, device
        self.batch_size, self.context_length = cfg.batch_size, cfg.model.context_length
        self.seed, self.iters = cfg.seed + VAL_SEED_OFFSET, cfg.eval_iters
        self.autocast = autocast_context(cfg, device)

    @torch.no_grad()
    def __call__(self) -> float:
        sampler = ShardedBatchSampler(self.data, self.batch_size, self.context_length, seed=self.seed,
                                      rank=self.info.rank, world_size=self.info.world_size)
        self.model.eval()
        total = torch.zeros((), device=self.device)
        for _ in range(self.iters):
            ids, targets = sampler.next_batch(self.device)
            with self.autocast():
                total += self.model.loss(ids, targets).float()
        self.model.train()
        return float(mean_across_ranks(total / self.iters, self.info).item())
