"""Checkpoints: model, optimizer, iteration, configs, RNG states and run metadata in one file.

Writes are atomic (temp file in the same folder, fsync, ``os.replace``), so a crash or a kill
during a save leaves the previous checkpoint intact. Loading checks that the checkpoint was
made for a model of the same configuration and names the fields that differ.
"""

from __future__ import annotations

import dataclasses
import os
import pickle
import random
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tritonlm.util.atomic import atomic_path
from tritonlm.util.cli import UserError
from tritonlm.util.runinfo import run_metadata

FORMAT_VERSION = 1
# Config fields that change how a model computes, not what its weights are.
_WEIGHT_NEUTRAL_FIELDS = frozenset({"kernels"})


class CheckpointError(RuntimeError, UserError):
    """A checkpoint that cannot be read, or that does not fit the model it is loaded into."""


def model_config_dict(model: torch.nn.Module) -> dict | None:
    """The model's configuration as a plain dict (``model.config`` dataclass), if it has one."""
    config = getattr(model, "config", None)
    if dataclasses.is_dataclass(config):
        return dataclasses.asdict(config)
    if isinstance(config, dict):
        return dict(config)
    return None


def unwrap_model(model: torch.nn.Module) -> torch.nn.Module:
    """The plain module behind DDP (``.module``) and ``torch.compile`` (``._orig_mod``) wrappers."""
    while True:
        if hasattr(model, "_orig_mod"):
            model = model._orig_mod
        elif isinstance(model, torch.nn.parallel.DistributedDataParallel):
            model = model.module
        else:
            return model


def capture_rng_state() -> dict:
    """Python, numpy and torch (and CUDA) RNG states, as types ``torch.load`` reads safely."""
    np_state = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": (np_state[0], torch.from_numpy(np_state[1].copy()), *np_state[2:]),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict) -> None:
    random.setstate(_as_tuples(state["python"]))
    name, keys, *rest = state["numpy"]
    np.random.set_state((name, keys.numpy(), *rest))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _as_tuples(value):
    """``random.setstate`` needs tuples where a round trip may have produced lists."""
    if isinstance(value, (list, tuple)):
        return tuple(_as_tuples(v) for v in value)
    return value


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> Path:
    """``torch.save`` to a temp file beside ``path``, flushed to disk, then renamed over it."""
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        torch.save(obj, f)
    return Path(path)


def save_checkpoint(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer | None,
    iteration: int,
    out: str | os.PathLike,
    **extra: Any,
) -> Path:
    """Write model and optimizer state, ``iteration``, the model config, RNG states and
    ``run_metadata()`` to ``out`` atomically. ``extra`` keywords (e.g. the training config,
    data-sampler state) are stored as given and returned by ``read_checkpoint``."""
    model = unwrap_model(model)
    payload = {
        "format_version": FORMAT_VERSION,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "iteration": int(iteration),
        "model_config": model_config_dict(model),
        "rng": capture_rng_state(),
        "metadata": run_metadata(),
        "extra": extra,
    }
    try:
        return atomic_torch_save(payload, out)
    except OSError as e:
        raise CheckpointError(f"could not write the checkpoint {out} ({e}); the previous checkpoint, if any, is "
                              "intact: free some space (or fix the folder) and resume") from e


def read_checkpoint(src: str | os.PathLike) -> dict:
    """Load a checkpoint file into a dict (on the CPU), with a clear error if it is unreadable."""
    src = Path(src)
    if not src.is_file():
        raise CheckpointError(f"checkpoint {src} does not exist")
    try:
        payload = torch.load(src, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile, ValueError, OSError) as e:
        raise CheckpointError(
            f"checkpoint {src} is corrupt or truncated and cannot be read ({type(e).__name__}: "
            f"{str(e).splitlines()[0] if str(e) else 'no detail'}); resume from an earlier checkpoint"
        ) from e
    if not isinstance(payload, dict) or "model" not in payload or "iteration" not in payload:
        raise CheckpointError(f"{src} is not a tritonlm checkpoint (no model state / iteration)")
    return payload


def config_mismatch(saved: dict | None, current: dict | None) -> dict[str, tuple[Any, Any]]:
    """Fields whose values differ between two model configs: ``{field: (saved, current)}``."""
    if saved is None or current is None:
        return {}
    keys = (set(saved) | set(current)) - _WEIGHT_NEUTRAL_FIELDS
    return {k: (saved.get(k), current.get(k)) for k in sorted(keys) if saved.get(k) != current.get(k)}


def check_compatible(src: Path, payload: dict, model: torch.nn.Module) -> None:
    mismatch = config_mismatch(payload.get("model_config"), model_config_dict(model))
    if mismatch:
        fields = ", ".join(f"{k}: checkpoint={a!r} model={b!r}" for k, (a, b) in mismatch.items())
        raise CheckpointError(
            f"checkpoint {src} was saved from a model with a different config ({fields}); "
            "build the model from the checkpoint's config to load it"
        )
    own = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    saved = {k: tuple(v.shape) for k, v in payload["model"].items()}
    if own != saved:
        missing, unexpected = sorted(set(own) - set(saved)), sorted(set(saved) - set(own))
        shapes = [f"{k}: checkpoint {saved[k]} vs model {own[k]}" for k in sorted(set(own) & set(saved)) if own[k] != saved[k]]
        raise CheckpointError(
            f"checkpoint {src} does not fit this model: missing {missing[:5]}, unexpected "
            f"{unexpected[:5]}, shape mismatches {shapes[:5]}"
        )


def load_checkpoint(
    src: str | os.PathLike,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    restore_rng: bool = False,
) -> int:
    """Restore ``model`` (and ``optimizer``) from ``src`` and return the saved iteration.

    Raises ``CheckpointError`` naming the mismatching config fields when the checkpoint was made
    for a different model. With ``restore_rng`` the python/numpy/torch RNG states are restored
    too (what an exact resume needs).
    """
    src = Path(src)
    payload = read_checkpoint(src)
    model = unwrap_model(model)
    check_compatible(src, payload, model)
    model.load_state_dict(payload["model"])
    if optimizer is not None:
        if payload.get("optimizer") is None:
            raise CheckpointError(f"checkpoint {src} holds no optimizer state")
        optimizer.load_state_dict(payload["optimizer"])
    if restore_rng:
        restore_rng_state(payload["rng"])
    return int(payload["iteration"])
