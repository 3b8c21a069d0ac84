"""RMSNorm: ``x / sqrt(mean(x^2) + eps) * weight`` over the last dimension."""

from __future__ import annotations

import torch

from ._backend import resolve_backend


def rmsnorm_reference(x: torch.Tensor, weight: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """From-scratch PyTorch RMSNorm, computed in float32 and returned in ``x.dtype``."""
    xf = x.float()
    inv_rms = torch.rsqrt(xf.pow(2).mean(dim=-1, keepdim=True) + eps)
    return (xf * inv_rms * weight.float()).to(x.dtype)


def rmsnorm(x: torch.Tensor, weight: torch.Tensor, eps: float = 1e-5, backend: str = "auto") -> torch.Tensor:
    if resolve_backend(backend, x.device) == "triton":
        raise NotImplementedError("the Triton RMSNorm kernel is being written")
    return rmsnorm_reference(x, weight, eps)
