"""Resuming a run: the checkpoint's model, optimizer and RNG states, counters and data position.

The one place a resume reads the run folder; what a resumed run may change (and is told about)
is decided here too.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from .checkpoint import check_compatible, read_checkpoint, restore_rng_state, unwrap_model
from .config import TrainConfig
from .run_folder import RunFolder
from .run_state import RunState

# Settings a resumed run may change without changing what it computes.
_RESUME_NEUTRAL = frozenset({"resume", "overwrite", "progress", "logger", "wandb_project", "wandb_mode",
                             "log_interval", "checkpoint_interval", "eval_interval", "out_dir"})


def changed_settings(saved: dict, current: dict) -> dict[str, tuple]:
    """Training settings that differ from the checkpoint's (model fields are checked apart)."""
    keys = (set(saved) | set(current)) - _RESUME_NEUTRAL - {"model"}
    return {k: (saved.get(k), current.get(k)) for k in sorted(keys) if saved.get(k) != current.get(k)}


def resume_from_checkpoint(run_dir: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                           cfg: TrainConfig | None = None, world_size: int = 1) -> tuple[RunState, dict]:
    """Load model, optimizer and RNG states; return the run counters and the sampler state.
    Training settings that differ from the checkpoint's are reported (the run then no longer
    reproduces an uninterrupted one, which may be intended, e.g. a longer ``max_iters``), and so
    is another number of data-parallel ranks: the run goes on, with the global batch (ranks x
    batch_size x grad_accum_steps) of the new layout."""
    path = RunFolder(run_dir).checkpoint
    payload = read_checkpoint(path)
    check_compatible(path, payload, unwrap_model(model))
    extra = payload.get("extra", {})
    saved_cfg = extra.get("train_config")
    if cfg is not None and saved_cfg:
        changes = changed_settings(saved_cfg, cfg.to_dict())
        if changes:
            listed = ", ".join(f"{k}: {a!r} -> {b!r}" for k, (a, b) in changes.items())
            print(f"note: resuming {run_dir} with changed settings ({listed})", file=sys.stderr)
    saved_world = extra.get("world_size", 1)
    if saved_world != world_size:
        print(f"note: resuming {run_dir}, saved by {saved_world} data-parallel rank(s), on {world_size}: the global "
              f"batch changes by x{world_size / saved_world:g} from here on", file=sys.stderr)
    unwrap_model(model).load_state_dict(payload["model"])
    optimizer.load_state_dict(payload["optimizer"])
    restore_rng_state(payload["rng"])
    return RunState.from_saved(payload["iteration"], extra.get("run_state", {})), extra.get("sampler", {})
