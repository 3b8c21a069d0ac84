"""Parameterised building blocks, from scratch: Linear, Embedding, RMSNorm, the FFNs and RoPE.

Shapes and parameter names follow docs/architecture.md so that state dicts trained elsewhere load:
``Linear.weight`` is (out, in), ``Embedding.weight`` (vocab, d_model), ``RMSNorm.weight``
(d_model,), ``SwiGLU.w1/w2/w3`` (the two-matrix FFNs, ``SiLUFFN`` and ``ReLU2FFN``, have w1 and w2).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from tritonlm import kernels
from .config import KernelPlan
from .functional import silu, silu_gate


def trunc_normal_(weight: torch.Tensor, std: float) -> torch.Tensor:
    """In-place truncated normal N(0, std^2) cut at +-3 std (the docs/architecture.md initialisation)."""
    return nn.init.trunc_normal_(weight, mean=0.0, std=std, a=-3 * std, b=3 * std)


class KernelModule(nn.Module):
    """A module whose forward calls fused ops: the backend of each op is resolved once, from the
    requested ``kernels`` spec and the module's device, at construction and again whenever the
    module is moved (``.to``/``.cuda``), so forward never consults global state."""

    def _init_kernels(self, kernels_spec: str | KernelPlan, device: torch.device | str | None) -> None:
        self.requested_kernels = (
            kernels_spec if isinstance(kernels_spec, KernelPlan) else KernelPlan.parse(kernels_spec)
        )
        tensor = next(iter(self.parameters()), None)  # honours a torch.device(...) context too
        if device is None:
            device = tensor.device if tensor is not None else "cpu"
        self.kernel_plan = self.requested_kernels.resolve(device)

    def _apply(self, fn, *args, **kwargs):
        module = super()._apply(fn, *args, **kwargs)
        tensor = next(iter(self.parameters()), None)
        if tensor is not None:
            self.kernel_plan = self.requested_kernels.resolve(tensor.device)
        return module


class Linear(nn.Module):
    """``y = x W^T`` without bias; W is (out_features, in_features), init trunc-normal with
    std sqrt(2 / (in + out))."""

    def __init__(self, in_features: int, out_features: int, device=None, dtype=None):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.weight = nn.Parameter(torch.empty(out_features, in_features, device=device, dtype=dtype))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        trunc_normal_(self.weight, math.sqrt(2.0 / (self.in_features + self.out_features)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.matmul(x, self.weight.t())  # (..., in) @ (in, out) -> (..., out)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}"


class Embedding(nn.Module):
    """Lookup of rows of a (num_embeddings, embedding_dim) table, init trunc-normal std 1."""

    def __init__(self, num_embeddings: int, embedding_dim: int, device=None, dtype=None):
        super().__init__()
        self.num_embeddings, self.embedding_dim = num_embeddings, embedding_dim
        self.weight = nn.Parameter(torch.empty(num_embeddings, embedding_dim, device=device, dtype=dtype))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        trunc_normal_(self.weight, 1.0)

    def forward(self, token_ids: torch.Tensor) -> torch.Tensor:
        return self.weight[token_ids]  # (...,) -> (..., embedding_dim)

    def extra_repr(self) -> str:
        return f"num_embeddings={self.num_embeddings}, embedding_dim={self.embedding_dim}"


class RMSNorm(KernelModule):
    """``x / sqrt(mean(x^2) + eps) * weight`` over the last dim, in float32, returned in x's dtype.
    ``kernels`` picks the rmsnorm backend (see ModelConfig.kernels)."""

    def __init__(self, d_model: int, eps: float = 1e-5, device=None, dtype=None, kernels: str | KernelPlan = "auto"):
        super().__init__()
        self.d_model, self.eps = d_model, eps
        self.weight = nn.Parameter(torch.ones(d_model, device=device, dtype=dtype))
        self._init_kernels(kernels, device)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return kernels.rmsnorm(x, self.weight, self.eps, backend=self.kernel_plan.rmsnorm)

    def extra_repr(self) -> str:
        return f"{self.d_model}, eps={self.eps}, backend={self.kernel_plan.rmsnorm}"


class SwiGLU(nn.Module):
    """Gated FFN ``w2(silu(w1 x) * w3 x)``; w1, w3 are (d_ff, d_model), w2 (d_model, d_ff)."""

    def __init__(self, d_model: int, d_ff: int, device=None, dtype=None):
        super().__init__()
        self.w1 = Linear(d_model, d_ff, device=device, dtype=dtype)
        self.w2 = Linear(d_ff, d_model, device=device, dtype=dtype)
        self.w3 = Linear(d_model, d_ff, device=device, dtype=dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w2(silu_gate(self.w1(x), self.w3(x)))


class SiLUFFN(nn.Module):
    """Ungated FFN ablation ``w2(silu(w1 x))`` (d_ff is 4 d_model by default)."""

    def __init__(self, d_model: int, d_ff: int, device=None, dtype=None):
        super().__init__()
        self.w1 = Linear(d_model, d_ff, device=device, dtype=dtype)
        self.w2 = Linear(d_ff, d_model, device=device, dtype=dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w2(silu(self.w1(x)))


class ReLU2FFN(nn.Module):
    """Ungated FFN with a squared ReLU, ``w2(relu(w1 x)^2)`` (So et al., Primer; d_ff 4 d_model by
    default): two matrices, and an activation as cheap as a ReLU."""

    def __init__(self, d_model: int, d_ff: int, device=None, dtype=None):
        super().__init__()
        self.w1 = Linear(d_model, d_ff, device=device, dtype=dtype)
        self.w2 = Linear(d_ff, d_model, device=device, dtype=dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w2(torch.relu(self.w1(x)).square())


FFN_CLASSES = {"swiglu": SwiGLU, "silu": SiLUFFN, "relu2": ReLU2FFN}


class RotaryPositionalEmbedding(nn.Module):
    """RoPE: rotate consecutive pairs (x[2k], x[2k+1]) by ``pos * theta^(-2k/d_k)``.

    The cos/sin tables (max_seq_len, d_k/2) are non-persistent float32 buffers: they are not in
    the state dict, and they are rebuilt in float32 after a move or dtype cast so that a bf16
    model keeps exact angles.
    """

    def __init__(self, theta: float, d_k: int, max_seq_len: int, device=None):
        super().__init__()
        if d_k % 2:
            raise ValueError(f"RoPE needs an even dimension to rotate pairs, got d_k={d_k}")
        self.theta, self.d_k, self.max_seq_len = theta, d_k, max_seq_len
        cos, sin = self._tables(device)
        self.register_buffer("cos", cos, persistent=False)
        self.register_buffer("sin", sin, persistent=False)

    def _tables(self, device) -> tuple[torch.Tensor, torch.Tensor]:
        k = torch.arange(0, self.d_k, 2, device=device, dtype=torch.float64)
        inv_freq = self.theta ** (-k / self.d_k)  # (d_k/2,)
        positions = torch.arange(self.max_seq_len, device=device, dtype=torch.float64)
        angles = positions[:, None] * inv_freq[None, :]  # (max_seq_len, d_k/2)
        return angles.cos().float(), angles.sin().float()

    def _apply(self, fn, *args, **kwargs):
        module = super()._apply(fn, *args, **kwargs)
        if self.cos.dtype != torch.float32 and self.cos.device.type != "meta":
            self.cos, self.sin = self._tables(self.cos.device)
        return module

    def forward(self, x: torch.Tensor, token_positions: torch.Tensor | None = None) -> torch.Tensor:
        """Rotate ``x`` (..., seq, d_k) at ``token_positions`` (broadcastable to (..., seq);
        default 0..seq-1)."""
        seq = x.shape[-2]
        if token_positions is None:
            token_positions = torch.arange(seq, device=x.device)
        cos, sin = self.cos[token_positions], self.sin[token_positions]  # (..., seq, d_k/2)
        # each pair (x[2k], x[2k+1]) turned by its angle, in real arithmetic (compiles and fuses)
        even, odd = x.float().unflatten(-1, (self.d_k // 2, 2)).unbind(-1)  # (..., seq, d_k/2) each
        rotated = torch.stack((even * cos - odd * sin, even * sin + odd * cos), dim=-1)  # (..., seq, d_k/2, 2)
        return rotated.flatten(-2).to(x.dtype)  # (..., seq, d_k)

    def extra_repr(self) -> str:
        return f"theta={self.theta}, d_k={self.d_k}, max_seq_len={self.max_seq_len}"
