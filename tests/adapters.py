"""The CS336 assignment 1 adapters, answered by tritonlm.

The course's tests call the student's code only through these functions (same names, same
arguments, same state-dict keys), so with this file beside them the course's test suite runs
against tritonlm unchanged. How to run it is in docs/cs336.md; ``tests/test_adapters.py`` checks
every adapter here against PyTorch built-ins, tiktoken and the exact BPE reference files.

Each adapter builds the tritonlm module the test names, loads the given weights into it and
runs it on the CPU reference path (``kernels="torch"``): the course's numbers are float32
references, and the Triton kernels are tested against the same references in ``tests/``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import IO, Any, BinaryIO

import numpy as np
import torch
from torch import Tensor

from tritonlm.model.attention import MultiHeadSelfAttention
from tritonlm.model.functional import scaled_dot_product_attention, silu, softmax
from tritonlm.model.layers import Embedding, Linear, RMSNorm, RotaryPositionalEmbedding, SwiGLU
from tritonlm.model.transformer import TransformerBlock, TransformerLM
from tritonlm.tokenizer import Tokenizer, train_bpe
from tritonlm.train.checkpoint import load_checkpoint, save_checkpoint
from tritonlm.train.data import get_batch
from tritonlm.train.functional import clip_grad_norm, cross_entropy
from tritonlm.train.optim import AdamW
from tritonlm.train.schedule import lr_cosine_schedule

KERNELS = "torch"  # the PyTorch reference of every op: what the course's float32 snapshots hold

FileLike = str | os.PathLike | BinaryIO | IO[bytes]


def _loaded(module: torch.nn.Module, weights: dict[str, Tensor]) -> torch.nn.Module:
    """``module`` holding exactly ``weights`` (strict: a missing or extra key is an error)."""
    module.load_state_dict(weights, strict=True)
    return module.eval()


# ------------------------------------------------------------------------------------ layers
def run_linear(d_in: int, d_out: int, weights: Tensor, in_features: Tensor) -> Tensor:
    return _loaded(Linear(d_in, d_out), {"weight": weights})(in_features)


def run_embedding(vocab_size: int, d_model: int, weights: Tensor, token_ids: Tensor) -> Tensor:
    return _loaded(Embedding(vocab_size, d_model), {"weight": weights})(token_ids)


def run_swiglu(d_model: int, d_ff: int, w1_weight: Tensor, w2_weight: Tensor, w3_weight: Tensor,
               in_features: Tensor) -> Tensor:
    weights = {"w1.weight": w1_weight, "w2.weight": w2_weight, "w3.weight": w3_weight}
    return _loaded(SwiGLU(d_model, d_ff), weights)(in_features)


def run_scaled_dot_product_attention(Q: Tensor, K: Tensor, V: Tensor, mask: Tensor | None = None) -> Tensor:
    return scaled_dot_product_attention(Q, K, V, mask=None if mask is None else mask.bool())


def _attention(d_model: int, num_heads: int, max_seq_len: int | None, theta: float | None) -> MultiHeadSelfAttention:
    return MultiHeadSelfAttention(d_model, num_heads, max_seq_len=max_seq_len, theta=theta, kernels=KERNELS)


def _projections(q: Tensor, k: Tensor, v: Tensor, o: Tensor) -> dict[str, Tensor]:
    return {"q_proj.weight": q, "k_proj.weight": k, "v_proj.weight": v, "output_proj.weight": o}


def run_multihead_self_attention(d_model: int, num_heads: int, q_proj_weight: Tensor, k_proj_weight: Tensor,
                                 v_proj_weight: Tensor, o_proj_weight: Tensor, in_features: Tensor) -> Tensor:
    layer = _loaded(_attention(d_model, num_heads, None, None),
                    _projections(q_proj_weight, k_proj_weight, v_proj_weight, o_proj_weight))
    return layer(in_features)


def run_multihead_self_attention_with_rope(d_model: int, num_heads: int, max_seq_len: int, theta: float,
                                           q_proj_weight: Tensor, k_proj_weight: Tensor, v_proj_weight: Tensor,
                                           o_proj_weight: Tensor, in_features: Tensor,
                                           token_positions: Tensor | None = None) -> Tensor:
    layer = _loaded(_attention(d_model, num_heads, max_seq_len, theta),
                    _projections(q_proj_weight, k_proj_weight, v_proj_weight, o_proj_weight))
    return layer(in_features, token_positions)


def run_rope(d_k: int, theta: float, max_seq_len: int, in_query_or_key: Tensor, token_positions: Tensor) -> Tensor:
    return RotaryPositionalEmbedding(theta, d_k, max_seq_len)(in_query_or_key, token_positions)


def run_transformer_block(d_model: int, num_heads: int, d_ff: int, max_seq_len: int, theta: float,
                          weights: dict[str, Tensor], in_features: Tensor) -> Tensor:
    block = TransformerBlock(d_model, num_heads, d_ff, max_seq_len, theta, kernels=KERNELS)
    return _loaded(block, weights)(in_features)


def run_transformer_lm(vocab_size: int, context_length: int, d_model: int, num_layers: int, num_heads: int,
                       d_ff: int, rope_theta: float, weights: dict[str, Tensor], in_indices: Tensor) -> Tensor:
    model = TransformerLM(vocab_size, context_length, d_model, num_layers, num_heads, d_ff, rope_theta,
                          kernels=KERNELS)
    return _loaded(model, weights)(in_indices)


def run_rmsnorm(d_model: int, eps: float, weights: Tensor, in_features: Tensor) -> Tensor:
    return _loaded(RMSNorm(d_model, eps, kernels=KERNELS), {"weight": weights})(in_features)


def run_silu(in_features: Tensor) -> Tensor:
    return silu(in_features)


def run_softmax(in_features: Tensor, dim: int) -> Tensor:
    return softmax(in_features, dim=dim)


# ---------------------------------------------------------------------------------- training
def run_get_batch(dataset: np.ndarray, batch_size: int, context_length: int, device: str) -> tuple[Tensor, Tensor]:
    return get_batch(dataset, batch_size, context_length, device)


def run_cross_entropy(inputs: Tensor, targets: Tensor) -> Tensor:
    return cross_entropy(inputs, targets, backend=KERNELS)


def run_gradient_clipping(parameters: Iterable[torch.nn.Parameter], max_l2_norm: float) -> None:
    clip_grad_norm(list(parameters), max_l2_norm)


def get_adamw_cls() -> type[torch.optim.Optimizer]:
    return AdamW


def run_get_lr_cosine_schedule(it: int, max_learning_rate: float, min_learning_rate: float, warmup_iters: int,
                               cosine_cycle_iters: int) -> float:
    return lr_cosine_schedule(it, max_learning_rate, min_learning_rate, warmup_iters, cosine_cycle_iters)


def run_save_checkpoint(model: torch.nn.Module, optimizer: torch.optim.Optimizer, iteration: int,
                        out: FileLike) -> None:
    """Save to a path (atomically), or to an open binary file (through a temporary file)."""
    if isinstance(out, (str, os.PathLike)):
        save_checkpoint(model, optimizer, iteration, out)
        return
    with tempfile.TemporaryDirectory() as folder:
        path = save_checkpoint(model, optimizer, iteration, Path(folder) / "checkpoint.pt")
        with open(path, "rb") as saved:
            shutil.copyfileobj(saved, out)


def run_load_checkpoint(src: FileLike, model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> int:
    if isinstance(src, (str, os.PathLike)):
        return load_checkpoint(src, model, optimizer)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "checkpoint.pt"
        with open(path, "wb") as copy:
            shutil.copyfileobj(src, copy)
        return load_checkpoint(path, model, optimizer)


# --------------------------------------------------------------------------------- tokenizer
def get_tokenizer(vocab: dict[int, bytes], merges: list[tuple[bytes, bytes]],
                  special_tokens: list[str] | None = None) -> Any:
    return Tokenizer(vocab, merges, special_tokens)


def run_train_bpe(input_path: str | os.PathLike, vocab_size: int, special_tokens: list[str],
                  **kwargs: Any) -> tuple[dict[int, bytes], list[tuple[bytes, bytes]]]:
    """``train_bpe``; ``kwargs`` pass through (``num_workers``, ``chunk_bytes``, ``progress``)."""
    return train_bpe(input_path, vocab_size, special_tokens, **kwargs)
