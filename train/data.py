"""Random language-modelling batches from token arrays or memory-mapped token files.

``get_batch`` is the docs/architecture.md function: start indices uniform over ``0 .. len - context - 1``,
targets shifted by one, int64 tensors on the requested device. ``TokenData`` wraps a token file
(its header gives dtype and vocab size) so that ids outside the vocabulary are reported as a
clear error instead of an out-of-range index deep inside an embedding kernel.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from tritonlm.tokenizer.tokenfile import open_tokens
from tritonlm.util.cli import UserError


class DeviceUnavailable(RuntimeError, UserError):
    """A device was asked for that this machine does not have."""


class TokenIdError(ValueError):
    """A batch contains an id that the model's vocabulary cannot represent."""


@dataclass(frozen=True)
class TokenData:
    """Token ids (usually a read-only memmap) with the vocabulary size they were written for."""

    ids: np.ndarray
    vocab_size: int | None = None
    path: Path | None = None
    tokenizer: dict | None = None  # the record of the tokenizer that made the ids (``Tokenizer.record``)

    def __len__(self) -> int:
        return len(self.ids)


def load_tokens(path: str | os.PathLike) -> TokenData:
    """Memory-map a token file written by ``tokenizer.tokenfile`` (or ``python -m tokenizer.encode``)."""
    ids, info = open_tokens(path)
    return TokenData(ids=ids, vocab_size=info.vocab_size, path=Path(path), tokenizer=info.tokenizer)


def padded_vocab_size(vocab_size: int, multiple: int = 64) -> int:
    """A model vocabulary for data of ``vocab_size``: rounded up to a multiple of 64 (faster
    matmuls; the extra rows are never a target, so they only learn to be unlikely)."""
    return -(-vocab_size // multiple) * multiple


def resolve_device(device: str | torch.device) -> torch.device:
    """``torch.device(device)``, raising a clear error when that device is not available here;
    ``"auto"`` (a training config's default) is the GPU when there is one, else the CPU."""
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(device)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceUnavailable(f"device {device} requested but CUDA is not available; use device='cpu'")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise DeviceUnavailable(
                f"device {device} requested but only {torch.cuda.device_count()} CUDA device(s) exist"
            )
    elif device.type == "mps":
        if not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
            raise DeviceUnavailable(f"device {device} requested but MPS is not available; use device='cpu'")
    elif device.type != "cpu":
        raise DeviceUnavailable(f"device {device} is not supported here; use 'cpu' or 'cuda'")
    return device


def sample_starts(
    num_tokens: int, batch_size: int, context_length: int, rng: np.random.Generator | None = None
) -> np.ndarray:
    """``batch_size`` start indices uniform over ``0 .. num_tokens - context_length - 1``."""
    if batch_size <= 0 or context_length <= 0:
        raise ValueError(f"batch_size and context_length must be positive, got {batch_size}, {context_length}")
    high = num_tokens - context_length  # exclusive: the last start still has a target after it
    if high <= 0:
        raise ValueError(
            f"dataset has {num_tokens} tokens, too few for context_length {context_length} "
            f"(needs at least {context_length + 1})"
        )
    if rng is None:
        return np.random.randint(0, high, size=batch_size)
    return rng.integers(0, high, size=batch_size)


def batch_from_starts(
    dataset: np.ndarray | TokenData, starts: np.ndarray, context_length: int, device: str | torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs ``ids[s : s+ctx]`` and targets ``ids[s+1 : s+ctx+1]`` for each start ``s``."""
    device = resolve_device(device)
    ids, vocab_size = (dataset.ids, dataset.vocab_size) if isinstance(dataset, TokenData) else (dataset, None)
    windows = starts[:, None] + np.arange(context_length + 1)  # (batch, ctx + 1)
    tokens = np.asarray(ids[windows]).astype(np.int64)  # gathers only the rows needed from a memmap
    if tokens.size and (tokens.min() < 0 or (vocab_size is not None and tokens.max() >= vocab_size)):
        bad = int(tokens.min() if tokens.min() < 0 else tokens.max())
        where = f" in {dataset.path}" if isinstance(dataset, TokenData) and dataset.path else ""
        raise TokenIdError(
            f"token id {bad}{where} is outside the vocabulary [0, {vocab_size}); the file was "
            "written by a different tokenizer or is corrupt: re-encode it"
        )
    batch = torch.from_numpy(tokens)
    if device.type == "cuda":
        batch = batch.pin_memory().to(device, non_blocking=True)
    else:
        batch = batch.to(device)
    return batch[:, :-1], batch[:, 1:]  # (batch, ctx) each


def get_batch(
    dataset: np.ndarray | TokenData,
    batch_size: int,
    context_length: int,
    device: str | torch.device,
    rng: np.random.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """A random batch ``(inputs, targets)``, both int64 of shape (batch_size, context_length).

    ``dataset`` is a 1-D integer array (a ``np.memmap`` works without reading the whole file) or
    a ``TokenData``, whose vocabulary size is checked. ``rng`` defaults to numpy's global state.
    """
    device = resolve_device(device)
    ids = dataset.ids if isinstance(dataset, TokenData) else dataset
    if np.ndim(ids) != 1:
        raise ValueError(f"dataset must be a 1-D array of token ids, got shape {np.shape(ids)}")
    starts = sample_starts(len(ids), batch_size, context_length, rng)
    return batch_from_starts(dataset, starts, context_length, device)


class ShardedBatchSampler:
    """Draws global batches from one seeded stream and hands each rank its own slice.

    Every rank holds the same generator state, so a run on N processes with per-rank batch B
    sees exactly the sequences a single process with batch N*B sees (the DDP test relies on
    it), and the state saved by rank 0 resumes every rank.
    """

    def __init__(self, dataset: TokenData, batch_size: int, context_length: int, seed: int,
                 rank: int = 0, world_size: int = 1):
        self.dataset, self.batch_size, self.context_length = dataset, batch_size, context_length
        self.rank, self.world_size = rank, world_size
        self.rng = np.random.default_rng(seed)

    def next_batch(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        starts = sample_starts(len(self.dataset), self.batch_size * self.world_size, self.context_length, self.rng)
        mine = starts[self.rank * self.batch_size : (self.rank + 1) * self.batch_size]
        return batch_from_starts(self.dataset, mine, self.context_length, device)

    def state_dict(self) -> dict:
        return {"bit_generator": self.rng.bit_generator.state}

    def load_state_dict(self, state: dict) -> None:
        self.rng.bit_generator.state = state["bit_generator"]
