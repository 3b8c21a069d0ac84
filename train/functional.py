"""Loss and gradient utilities of the training loop, written from scratch.

``cross_entropy`` delegates to the kernels package (one implementation of the maths in the
project, with a Triton path on GPUs); ``clip_grad_norm`` is the global-L2-norm clipping of
docs/architecture.md.
"""

from __future__ import annotations

from typing import Iterable

import torch

from tritonlm.kernels import cross_entropy as _kernel_cross_entropy

CLIP_EPS = 1e-6


def cross_entropy(
    logits: torch.Tensor, targets: torch.Tensor, ignore_index: int = -100, backend: str = "auto"
) -> torch.Tensor:
    """Mean over positions of ``logsumexp(logits) - logits[target]``.

    ``logits`` is (..., vocab) and ``targets`` the matching (...) integer tensor; positions whose
    target equals ``ignore_index`` are left out of the mean. Stable for large logits (the row
    maximum is subtracted) and accumulated in float32 whatever the input dtype.
    """
    if logits.shape[:-1] != targets.shape:
        raise ValueError(
            f"cross_entropy: logits {tuple(logits.shape)} must be targets {tuple(targets.shape)} "
            "plus a trailing vocab dimension"
        )
    return _kernel_cross_entropy(logits, targets, ignore_index=ignore_index, backend=backend)


def global_grad_norm(parameters: Iterable[torch.nn.Parameter]) -> torch.Tensor:
    """L2 norm of all gradients taken together, as a float32 scalar tensor (no host sync)."""
    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        return torch.zeros((), dtype=torch.float32)
    norms = [torch.linalg.vector_norm(g.detach(), dtype=torch.float32) for g in grads]  # one pass each
    device = norms[0].device
    return torch.linalg.vector_norm(torch.stack([n.to(device) for n in norms]))


def clip_grad_norm(
    parameters: Iterable[torch.nn.Parameter] | torch.Tensor, max_l2_norm: float
) -> torch.Tensor:
    """Scale all gradients by ``max / (norm + 1e-6)`` when their global L2 norm exceeds ``max``.

    Returns the norm measured before clipping (a float32 scalar tensor). The decision is made on
    the device with ``torch.where`` so a training step does not wait for the host.
    """
    if isinstance(parameters, torch.Tensor):
        parameters = [parameters]
    params = [p for p in parameters if p.grad is not None]
    if max_l2_norm <= 0:
        raise ValueError(f"max_l2_norm must be positive, got {max_l2_norm}")
    norm = global_grad_norm(params)
    if not params:
        return norm
    scale = torch.where(norm > max_l2_norm, max_l2_norm / (norm + CLIP_EPS), torch.ones_like(norm))
    for p in params:
        p.grad.detach().mul_(scale.to(device=p.grad.device, dtype=p.grad.dtype))
    return norm
