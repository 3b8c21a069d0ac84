"""Muon: momentum orthogonalised by Newton–Schulz, for the hidden matrices of a Transformer.

For each 2-D hidden weight W with gradient g, at learning rate lr and weight decay wd:

    m ← β m + (1 − β) g                              (momentum, an exponential average)
    u = (1 − β) g + β m  if nesterov  else  m          (Nesterov: look one step ahead)
    O = NS_k(u) ≈ U Vᵀ  where  u = U Σ Vᵀ              (the orthogonal polar factor)
    W ← W − lr · (0.2 · √max(rows, cols) · O + wd · W)

``NS_k`` is ``k`` steps of the quintic Newton–Schulz iteration ``X ← a X + (b A + c A²) X`` with
``A = X Xᵀ``, started from ``u / ‖u‖_F`` (so every singular value is in (0, 1]). Its coefficients
(3.4445, −4.7750, 2.0315) trade exactness for speed: five steps push every singular value into
roughly [0.7, 1.2] rather than to exactly 1, which is all the update needs. An orthogonal matrix
has entries of RMS 1/√max(rows, cols); the factor 0.2 · √max(rows, cols) brings the update to an
RMS of 0.2, close to AdamW's, so Muon's learning rate and weight decay start where AdamW's are.

Everything that is not a hidden matrix (embeddings, the LM head, norm gains, biases) is updated by
AdamW in the same optimizer: a parameter group with ``muon=False`` is an ``AdamW`` group, so one
``state_dict`` holds both and a checkpoint resumes either exactly. ``muon_parameter_groups``
splits a ``TransformerLM`` that way.
"""

from __future__ import annotations

import math
from typing import Iterable

import torch

from .optim import AdamW, parameter_groups

#: The quintic Newton–Schulz coefficients (a, b, c): the polynomial a x + b x³ + c x⁵ maps (0, 1]
#: towards 1 with the steepest slope at 0 that keeps five steps inside [0.7, 1.2].
QUINTIC = (3.4445, -4.7750, 2.0315)
#: The update's RMS after shape scaling, matched to AdamW's typical update.
UPDATE_RMS = 0.2


def newton_schulz(update: torch.Tensor, steps: int = 5, coefficients: tuple[float, float, float] = QUINTIC,
                  dtype: torch.dtype = torch.bfloat16) -> torch.Tensor:
    """The orthogonal polar factor of each matrix in ``update`` (..., rows, cols), approximately:
    ``steps`` iterations of ``X ← a X + (b A + c A²) X``, ``A = X Xᵀ``, in ``dtype``. Returns a
    tensor of ``update``'s shape and ``dtype``."""
    if update.ndim < 2:
        raise ValueError(f"newton_schulz orthogonalises matrices, got a tensor of shape {tuple(update.shape)}")
    a, b, c = coefficients
    x = update.to(dtype)
    tall = x.shape[-2] > x.shape[-1]
    if tall:  # iterate on the wide orientation: A = X Xᵀ is then the smaller Gram matrix
        x = x.mT
    norm = torch.linalg.matrix_norm(x.to(torch.promote_types(dtype, torch.float32)), keepdim=True)
    x = x / (norm.to(dtype) + 1e-7)  # every singular value <= 1
    for _ in range(steps):
        gram = x @ x.mT  # (..., rows, rows)
        x = a * x + (b * gram + c * gram @ gram) @ x
    return x.mT if tall else x


def shape_scale(rows: int, cols: int) -> float:
    """The factor that brings an orthogonal (rows, cols) matrix to an entry RMS of ``UPDATE_RMS``."""
    return UPDATE_RMS * math.sqrt(max(rows, cols))


class Muon(AdamW):
    """Muon for the parameter groups with ``muon=True`` (the default: every parameter must then be
    a matrix), AdamW (``optim.AdamW``) for groups with ``muon=False``.

    ``lr`` and ``weight_decay`` apply to both kinds of group unless a group sets its own; ``betas``
    and ``eps`` are AdamW's; ``momentum``, ``nesterov``, ``ns_steps`` and ``ns_dtype`` are Muon's.
    """

    def __init__(self, params: Iterable[torch.nn.Parameter] | Iterable[dict], lr: float = 2e-3,
                 momentum: float = 0.95, nesterov: bool = True, ns_steps: int = 5,
                 ns_dtype: torch.dtype = torch.bfloat16, betas: tuple[float, float] = (0.9, 0.95),
                 eps: float = 1e-8, weight_decay: float = 0.0, foreach: bool | None = None):
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"Muon: momentum must be in [0, 1), got {momentum}")
        if not isinstance(ns_steps, int) or ns_steps < 1:
            raise ValueError(f"Muon: ns_steps must be a positive integer, got {ns_steps!r}")
        self._muon_defaults = dict(muon=True, momentum=momentum, nesterov=nesterov, ns_steps=ns_steps)
        self.ns_dtype = ns_dtype
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, foreach=foreach)

    def add_param_group(self, param_group: dict) -> None:
        for key, value in self._muon_defaults.items():
            param_group.setdefault(key, value)
        super().add_param_group(param_group)
        if param_group["muon"]:
            for p in param_group["params"]:
                if p.ndim != 2:
                    raise ValueError(
                        f"Muon orthogonalises matrices, but a muon group holds a parameter of shape "
                        f"{tuple(p.shape)}; put vectors, embeddings and the LM head in a group with "
                        "muon=False (train.muon.muon_parameter_groups does this for a TransformerLM)")

    def _step_group(self, group: dict) -> None:
        if not group["muon"]:
            super()._step_group(group)
            return
        params = [p for p in group["params"] if p.grad is not None]
        by_shape: dict[tuple, list[torch.nn.Parameter]] = {}
        for p in params:
            by_shape.setdefault((p.device, p.dtype, tuple(p.shape)), []).append(p)
        for same_shape in by_shape.values():
            self._muon_update(same_shape, group)

    @torch.no_grad()
    def _muon_update(self, params: list[torch.nn.Parameter], group: dict) -> None:
        """One Muon step for matrices of one shape, orthogonalised together as a batch."""
        beta, lr, decay = group["momentum"], group["lr"], group["weight_decay"]
        grads = [p.grad for p in params]
        buffers = []
        for p in params:
            state = self.state[p]
            if "momentum_buffer" not in state:
                state["momentum_buffer"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            buffers.append(state["momentum_buffer"])
        torch._foreach_lerp_(buffers, grads, 1.0 - beta)  # m = β m + (1 − β) g
        if group["nesterov"]:
            updates = torch._foreach_lerp(grads, buffers, beta)  # u = (1 − β) g + β m
        else:
            updates = buffers
        orthogonal = newton_schulz(torch.stack(updates), group["ns_steps"], dtype=self.ns_dtype)  # (n, rows, cols)
        rows, cols = params[0].shape
        if decay != 0.0:
            torch._foreach_mul_(params, 1.0 - lr * decay)  # decoupled decay, from the weights before the step
        torch._foreach_add_(params, list(orthogonal.to(params[0].dtype).unbind(0)), alpha=-lr * shape_scale(rows, cols))


def hidden_matrices(model: torch.nn.Module) -> list[torch.nn.Parameter]:
    """The 2-D weights inside the Transformer blocks (``model.layers``): attention projections and
    FFN matrices. Embeddings and the LM head act on tokens, not on hidden states, and stay with AdamW."""
    return [p for p in model.layers.parameters() if p.ndim == 2 and p.requires_grad]


def muon_parameter_groups(model: torch.nn.Module, weight_decay: float, muon_lr_scale: float = 1.0,
                          decay_norms_and_embeddings: bool = False) -> list[dict]:
    """Muon's group (the hidden matrices, with ``lr_scale`` = ``muon_lr_scale``) followed by the
    AdamW groups of ``optim.parameter_groups`` for every other parameter."""
    matrices = hidden_matrices(model)
    taken = {id(p) for p in matrices}
    rest = parameter_groups(model, weight_decay, decay_norms_and_embeddings)
    adamw_groups = [{**g, "params": [p for p in g["params"] if id(p) not in taken], "muon": False} for g in rest]
    groups = [{"params": matrices, "weight_decay": weight_decay, "muon": True, "lr_scale": muon_lr_scale}]
    return groups + [g for g in adamw_groups if g["params"]]
