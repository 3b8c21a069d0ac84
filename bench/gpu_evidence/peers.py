"""The peers each Triton op is timed against: the plain eager formula (written with ordinary torch
ops, differentiated by autograd), ``torch.compile`` of that formula, the torch built-in, and
Liger-Kernel when it is importable.

Each function here has the signature of the corresponding ``kernels`` entry point.
"""

from __future__ import annotations

import importlib.util
from typing import Callable

import torch
import torch.nn.functional as F

EPS = 1e-5


def rmsnorm_formula(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    xf = x.float()
    return (xf * torch.rsqrt(xf.square().mean(-1, keepdim=True) + EPS) * w.float()).to(x.dtype)


def softmax_formula(x: torch.Tensor) -> torch.Tensor:
    xf = x.float()
    e = (xf - xf.amax(-1, keepdim=True)).exp()
    return (e / e.sum(-1, keepdim=True)).to(x.dtype)


def attention_formula(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Causal attention through the full (seq x seq) float32 score matrix."""
    seq = q.shape[-2]
    scores = (q.float() @ k.float().transpose(-2, -1)) * q.shape[-1] ** -0.5
    mask = torch.ones(seq, seq, dtype=torch.bool, device=q.device).triu(1)
    probs = scores.masked_fill(mask, float("-inf")).softmax(-1)
    return (probs @ v.float()).to(q.dtype)


def cross_entropy_formula(logits: torch.Tensor, targets: torch.Tensor, softcap: float = 0.0,
                          z_loss: float = 0.0) -> torch.Tensor:
    x = logits.float()
    if softcap:
        x = softcap * torch.tanh(x / softcap)
    lse = x.logsumexp(-1)
    loss = lse - x.gather(-1, targets[:, None]).squeeze(-1)
    if z_loss:
        loss = loss + z_loss * lse.square()
    return loss.mean()


def linear_cross_entropy_formula(hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor,
                                 softcap: float = 0.0, z_loss: float = 0.0) -> torch.Tensor:
    return cross_entropy_formula(F.linear(hidden, weight), targets, softcap, z_loss)


def sdpa(backend_name: str) -> Callable:
    """Causal ``F.scaled_dot_product_attention`` pinned to one backend (FLASH_ATTENTION, CUDNN_ATTENTION...)."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    backend = getattr(SDPBackend, backend_name)

    def run(q, k, v):
        with sdpa_kernel(backend):
            return F.scaled_dot_product_attention(q, k, v, is_causal=True)

    return run


def compiled(fn: Callable, smoke: bool) -> Callable:
    """``torch.compile(fn, dynamic=False)``: inductor on the GPU; ``aot_eager`` in CPU smoke runs
    (inductor's C++ compile would spend the smoke budget on compilation).

    Static shapes: each case gets a graph specialised to its shape, as a user compiling for one
    shape would, never the dynamic-shape graph that a second shape of the same function would
    otherwise recompile into. Dynamo keeps compiled graphs per function, not per wrapper, so the
    kernel stage also resets it before each case (``torch._dynamo.reset()``); the compilation
    then happens in that case's warm-up, outside every timing."""
    return torch.compile(fn, backend="aot_eager" if smoke else "inductor", dynamic=False)


def liger_available() -> bool:
    return importlib.util.find_spec("liger_kernel") is not None


def liger(op: str, **options) -> Callable | str:
    """Liger-Kernel's implementation of ``op``, or the reason it is not timed."""
    if not torch.cuda.is_available():
        return "skipped: Liger-Kernel needs a CUDA GPU"
    if not liger_available():
        return "skipped: liger_kernel is not importable"
    from liger_kernel.transformers import functional as lf

    if op == "rmsnorm":
        return lambda x, w: lf.liger_rms_norm(x, w, EPS, in_place=False)
    if op == "cross_entropy":
        return lambda x, t: lf.liger_cross_entropy(x, t, softcap=options.get("softcap") or None,
                                                   lse_square_scale=options.get("z_loss", 0.0))
    if op == "linear_cross_entropy":
        return lambda h, w, t: lf.liger_fused_linear_cross_entropy(h, w, t, softcap=options.get("softcap") or None,
                                                                   lse_square_scale=options.get("z_loss", 0.0))
    if op == "softmax" and hasattr(lf, "liger_softmax"):
        return lambda x: lf.liger_softmax(x)
    return f"skipped: Liger-Kernel has no {op}"
