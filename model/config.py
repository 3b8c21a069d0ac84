"""Typed, validated configuration of the Transformer LM and of its kernel backends.

A ``ModelConfig`` describes one architecture completely (sizes, ablation switches, kernel
choice); everything the model decides is decided here, once, at construction. ``KernelPlan``
turns the ``kernels`` string ("auto", "torch", "triton", "triton,attention=torch") into one
backend per fused op and resolves it for a device.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, fields
from typing import Any

import torch

from tritonlm.kernels import BACKENDS, resolve_backend

NORM_CHOICES = ("pre", "post", "none")
POSITION_CHOICES = ("rope", "none")
FFN_CHOICES = ("swiglu", "silu", "relu2")
KERNEL_OPS = ("rmsnorm", "softmax", "attention", "cross_entropy")


def default_d_ff(d_model: int, ffn: str = "swiglu") -> int:
    """Hidden size of the FFN: about 8/3 d_model rounded to a multiple of 64 for SwiGLU (same
    parameter count as a 4x two-matrix FFN), exactly 4 d_model for the two-matrix FFNs (SiLU, ReLU²)."""
    if ffn in ("silu", "relu2"):
        return 4 * d_model
    return max(64, int(round(8 * d_model / 3 / 64)) * 64)


@dataclass(frozen=True)
class KernelPlan:
    """One backend per fused op: each "torch", "triton" or "auto" (requested) or, after
    ``resolve``, "torch" or "triton" (what will run)."""

    rmsnorm: str = "auto"
    softmax: str = "auto"
    attention: str = "auto"
    cross_entropy: str = "auto"

    @classmethod
    def parse(cls, spec: str) -> "KernelPlan":
        """Parse "BACKEND[,op=BACKEND...]"; a leading bare backend is the default for every op."""
        if not isinstance(spec, str) or not spec.strip():
            raise ValueError(f"kernels must be a non-empty string like 'auto' or 'triton,attention=torch', got {spec!r}")
        default, overrides = "auto", {}
        for i, part in enumerate(p.strip() for p in spec.split(",")):
            if "=" not in part:
                if i != 0:
                    raise ValueError(f"kernels={spec!r}: a bare backend ({part!r}) may only come first")
                default = _checked_backend(part, spec)
                continue
            op, backend = (s.strip() for s in part.split("=", 1))
            if op not in KERNEL_OPS:
                raise ValueError(f"kernels={spec!r}: unknown op {op!r}; ops are {', '.join(KERNEL_OPS)}")
            if op in overrides:
                raise ValueError(f"kernels={spec!r}: op {op!r} is given twice")
            overrides[op] = _checked_backend(backend, spec)
        return cls(**{op: overrides.get(op, default) for op in KERNEL_OPS})

    def resolve(self, device: torch.device | str) -> "KernelPlan":
        """The backends that will run on ``device`` ("auto" becomes triton on CUDA, else torch);
        an explicit "triton" that cannot run there raises RuntimeError naming the reason."""
        device = torch.device(device)
        if device.type == "meta":  # shape-only models (accounting) never run a kernel
            return KernelPlan(**{op: "torch" for op in KERNEL_OPS})
        return KernelPlan(**{op: resolve_backend(getattr(self, op), device) for op in KERNEL_OPS})

    def __str__(self) -> str:
        return ",".join(f"{op}={getattr(self, op)}" for op in KERNEL_OPS)


def _checked_backend(backend: str, spec: str) -> str:
    if backend not in BACKENDS:
        raise ValueError(f"kernels={spec!r}: unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    return backend


@dataclass
class ModelConfig:
    """Everything that defines a TransformerLM. Defaults reproduce the docs/architecture.md baseline
    (pre-norm, RoPE, SwiGLU, untied embeddings, no QK-norm, no soft-capping, truncated-normal
    initialisation everywhere)."""

    vocab_size: int = 10_000
    context_length: int = 256
    d_model: int = 512
    num_layers: int = 4
    num_heads: int = 16
    d_ff: int | None = None  # None: default_d_ff(d_model, ffn)
    rope_theta: float = 10_000.0
    norm: str = "pre"  # pre | post | none
    positions: str = "rope"  # rope | none
    ffn: str = "swiglu"  # swiglu | silu | relu2 (w2 relu(w1 x)^2)
    tie_embeddings: bool = False
    qk_norm: bool = False
    logit_softcap: float = 0.0  # 0 = off; else logits = cap * tanh(logits / cap)
    zero_init_output: bool = False  # attention output_proj and FFN w2 start at zero (each block starts as identity)
    kernels: str = "auto"
    norm_eps: float = field(default=1e-5)

    def __post_init__(self) -> None:
        if self.d_ff is None:
            self.d_ff = default_d_ff(self.d_model, self.ffn)
        self._check_sizes()
        self._check_choices()
        KernelPlan.parse(self.kernels)  # raises with the offending part named

    def _check_sizes(self) -> None:
        for name in ("vocab_size", "context_length", "d_model", "num_layers", "num_heads", "d_ff"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"ModelConfig.{name} must be a positive integer, got {value!r}")
        if self.d_model % self.num_heads:
            raise ValueError(
                f"d_model={self.d_model} is not divisible by num_heads={self.num_heads}; "
                f"pick num_heads among the divisors of d_model"
            )
        if self.positions == "rope" and self.head_dim % 2:
            raise ValueError(
                f"RoPE rotates pairs of dimensions, so the head dimension must be even; "
                f"d_model / num_heads = {self.head_dim}"
            )
        if not self.rope_theta > 0:
            raise ValueError(f"rope_theta must be positive, got {self.rope_theta}")
        if self.logit_softcap < 0:
            raise ValueError(f"logit_softcap must be >= 0 (0 = off), got {self.logit_softcap}")
        if not self.norm_eps > 0:
            raise ValueError(f"norm_eps must be positive, got {self.norm_eps}")

    def _check_choices(self) -> None:
        for name, choices in (("norm", NORM_CHOICES), ("positions", POSITION_CHOICES), ("ffn", FFN_CHOICES)):
            if getattr(self, name) not in choices:
                raise ValueError(f"ModelConfig.{name}={getattr(self, name)!r} is not one of {', '.join(choices)}")

    @property
    def head_dim(self) -> int:
        return self.d_model // self.num_heads

    @property
    def kernel_plan(self) -> KernelPlan:
        return KernelPlan.parse(self.kernels)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ModelConfig":
        """Inverse of ``to_dict``; unknown keys are an error naming them (a checkpoint from a
        different code version should not load silently)."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown ModelConfig field(s) {unknown}; known fields: {sorted(known)}")
        return cls(**data)
