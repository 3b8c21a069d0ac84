"""Mean cross-entropy over token positions, and the LM head fused with it."""

from __future__ import annotations

import torch

from ._backend import resolve_backend


def cross_entropy_reference(
    logits: torch.Tensor, targets: torch.Tensor, ignore_index: int = -100
) -> torch.Tensor:
    """Mean of ``logsumexp(logits) - logits[target]`` over positions whose target is not ignored.

    ``logits`` is (..., vocab) and ``targets`` (...); stable for large logits (max subtracted),
    computed in float32.
    """
    logits = logits.reshape(-1, logits.shape[-1]).float()  # (tokens, vocab)
    targets = targets.reshape(-1)  # (tokens,)
    keep = targets != ignore_index
    safe_targets = torch.where(keep, targets, torch.zeros_like(targets))
    row_max = logits.amax(dim=-1, keepdim=True)
    lse = (logits - row_max).exp().sum(dim=-1).log() + row_max.squeeze(-1)
    target_logit = logits.gather(-1, safe_targets[:, None]).squeeze(-1)
    losses = torch.where(keep, lse - target_logit, torch.zeros_like(lse))
    return losses.sum() / keep.sum()


def linear_cross_entropy_reference(
    hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, ignore_index: int = -100
) -> torch.Tensor:
    """Cross-entropy of ``hidden @ weight.T`` (the LM head), materialising the full logits."""
    return cross_entropy_reference(torch.matmul(hidden, weight.t()), targets, ignore_index)


def cross_entropy(
    logits: torch.Tensor, targets: torch.Tensor, ignore_index: int = -100, backend: str = "auto"
) -> torch.Tensor:
    if resolve_backend(backend, logits.device) == "triton":
        raise NotImplementedError("the Triton cross-entropy kernel is being written")
    return cross_entropy_reference(logits, targets, ignore_index)


def linear_cross_entropy(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    targets: torch.Tensor,
    ignore_index: int = -100,
    backend: str = "auto",
) -> torch.Tensor:
    if resolve_backend(backend, hidden.device) == "triton":
        raise NotImplementedError("the Triton fused linear cross-entropy is being written")
    return linear_cross_entropy_reference(hidden, weight, targets, ignore_index)
