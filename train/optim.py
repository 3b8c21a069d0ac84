"""AdamW with decoupled weight decay (Loshchilov & Hutter), written from scratch.

Semantics (docs/architecture.md): m and v start at zero and the step count t at 1;
``lr_t = lr * sqrt(1 - b2^t) / (1 - b1^t)``; ``p -= lr_t * m / (sqrt(v) + eps)``; then the
decoupled decay ``p -= lr * weight_decay * p``. Each parameter group may carry its own ``lr``
and ``weight_decay`` (the loop writes the scheduled ``lr`` into every group each step).
"""

from __future__ import annotations

import copy
import math
from typing import Iterable

import torch

from tritonlm.model.layers import Embedding


class AdamW(torch.optim.Optimizer):
    def __init__(
        self,
        params: Iterable[torch.nn.Parameter] | Iterable[dict],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.01,
        foreach: bool | None = None,
    ):
        if lr < 0:
            raise ValueError(f"AdamW: lr must be >= 0, got {lr}")
        if not all(0.0 <= b < 1.0 for b in betas) or len(betas) != 2:
            raise ValueError(f"AdamW: betas must be two numbers in [0, 1), got {betas}")
        if eps < 0:
            raise ValueError(f"AdamW: eps must be >= 0, got {eps}")
        if weight_decay < 0:
            raise ValueError(f"AdamW: weight_decay must be >= 0, got {weight_decay}")
        defaults = dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay)
        super().__init__(params, defaults)
        # Batch the element-wise updates of same-device tensors into one launch per op. None:
        # on CUDA only (where launches dominate); on the CPU one tensor at a time stays in cache
        # across its five updates, which measured twice as fast.
        self.foreach = foreach

    def load_state_dict(self, state_dict: dict) -> None:
        """Load a copy: the moment buffers are updated in place, so they must not be shared
        with the optimizer (or file) the state came from."""
        super().load_state_dict(copy.deepcopy(state_dict))

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            self._step_group(group)
        return loss

    def _step_group(self, group: dict) -> None:
        """Update the parameters of one group that have a gradient (a subclass may update some
        groups its own way, as ``muon.Muon`` does)."""
        hyper = (group["lr"], *group["betas"], group["eps"], group["weight_decay"])
        params = [p for p in group["params"] if p.grad is not None]
        if any(p.grad.is_sparse for p in params):
            raise RuntimeError(f"{type(self).__name__} does not support sparse gradients")
        for bucket in self._buckets(params):
            self._update(bucket, *hyper)

    def _buckets(self, params: list[torch.nn.Parameter]) -> list[list[torch.nn.Parameter]]:
        """Parameters that share device, dtype and step count (one fused update each), after
        creating the state of new ones: m, v = 0 and step = 0."""
        buckets: dict[tuple, list] = {}
        for p in params:
            state = self.state[p]
            if not state:
                state["step"] = 0
                state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            batched = self.foreach if self.foreach is not None else p.device.type == "cuda"
            key = (p.device, p.dtype, state["step"]) if batched else (id(p),)
            buckets.setdefault(key, []).append(p)
        return list(buckets.values())

    def _update(self, params, lr, beta1, beta2, eps, weight_decay) -> None:
        """The docs/architecture.md update of a bucket of parameters at the same step t."""
        states = [self.state[p] for p in params]
        for state in states:
            state["step"] += 1
        t = states[0]["step"]
        grads = [p.grad for p in params]
        ms = [s["exp_avg"] for s in states]
        vs = [s["exp_avg_sq"] for s in states]
        lr_t = lr * math.sqrt(1.0 - beta2**t) / (1.0 - beta1**t)
        torch._foreach_lerp_(ms, grads, 1.0 - beta1)  # m = b1 m + (1 - b1) g
        torch._foreach_mul_(vs, beta2)
        torch._foreach_addcmul_(vs, grads, grads, value=1.0 - beta2)  # v = b2 v + (1 - b2) g^2
        denominators = torch._foreach_sqrt(vs)
        torch._foreach_add_(denominators, eps)
        torch._foreach_addcdiv_(params, ms, denominators, value=-lr_t)  # p -= lr_t m / (sqrt(v) + eps)
        if weight_decay != 0.0:
            torch._foreach_mul_(params, 1.0 - lr * weight_decay)  # decoupled decay


def spared_parameters(model: torch.nn.Module) -> set[int]:
    """Ids of the parameters weight decay should usually spare, by structure, not by name:
    vectors (norm gains, biases) and the tables of embedding modules."""
    spared = {id(p) for p in model.parameters() if p.ndim < 2}
    for module in model.modules():
        if isinstance(module, (torch.nn.Embedding, Embedding)):
            spared.update(id(p) for p in module.parameters(recurse=False))
    return spared


def parameter_groups(
    model: torch.nn.Module, weight_decay: float, decay_norms_and_embeddings: bool = True
) -> list[dict]:
    """Optimizer groups: one with ``weight_decay``, and, unless ``decay_norms_and_embeddings``,
    a second with zero decay for norm gains, biases and embedding tables.

    A tied embedding/LM-head matrix is one parameter; it is listed once (named parameters are
    deduplicated by torch) and decays unless embeddings are spared.
    """
    spared = set() if decay_norms_and_embeddings else spared_parameters(model)
    decay, no_decay = [], []
    for param in model.parameters():
        if param.requires_grad:
            (no_decay if id(param) in spared else decay).append(param)
    groups = [{"params": decay, "weight_decay": weight_decay}]
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0})
    return groups
