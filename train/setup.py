"""Everything a run needs before its first step: run folder, data, model, optimizer, resume.

Kept apart from the step loop (``train.loop``) so each reads on its own.
"""

from __future__ import annotations

import contextlib
import sys
from dataclasses import dataclass
from pathlib import Path

import torch

from model import TransformerLM
from util.atomic import write_json_atomic
from util.runinfo import run_metadata

from .checkpoint import check_compatible, read_checkpoint, restore_rng_state, unwrap_model
from .config import TrainConfig
from .data import TokenData, load_tokens
from .distributed import DistInfo
from .optim import AdamW, parameter_groups
from .run_folder import RunFolder


class RunFolderError(RuntimeError):
    """An output folder that would be overwritten, or a resume without a run to resume."""


@dataclass
class RunState:
    """Counters that a checkpoint carries so a resumed run continues where it stopped."""

    step: int = 0
    tokens: int = 0
    train_seconds: float = 0.0  # training time (what budget_seconds limits)
    eval_seconds: float = 0.0  # evaluation + checkpoint time, outside the budget
    best_val_loss: float | None = None

    def to_dict(self) -> dict:
        return {"step": self.step, "tokens": self.tokens, "train_seconds": self.train_seconds,
                "eval_seconds": self.eval_seconds, "best_val_loss": self.best_val_loss}


def prepare_run_dir(cfg: TrainConfig, info: DistInfo) -> Path:
    """Create ``out_dir``; refuse to start afresh over an existing run unless ``overwrite``."""
    run_dir = Path(cfg.out_dir)
    checkpoint = RunFolder(run_dir).checkpoint
    if cfg.resume and not checkpoint.exists():
        raise RunFolderError(f"--resume: no checkpoint at {checkpoint}; start without --resume")
    if not cfg.resume and checkpoint.exists() and not cfg.overwrite:
        raise RunFolderError(
            f"{run_dir} already holds a run ({checkpoint.name}); continue it with --resume, "
            "replace it with --overwrite, or choose another --out_dir"
        )
    if info.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        write_json_atomic(RunFolder(run_dir).config, {"config": cfg.to_dict(), "metadata": run_metadata()})
    return run_dir


def load_datasets(cfg: TrainConfig) -> tuple[TokenData, TokenData | None]:
    """Memory-map the token files and check their vocabulary fits the model."""
    if not cfg.train_data:
        raise ValueError("train_data is not set: pass --train_data=PATH to a token file (python -m tokenizer.encode)")
    datasets = [load_tokens(cfg.train_data), load_tokens(cfg.val_data) if cfg.val_data else None]
    for data in filter(None, datasets):
        if data.vocab_size > cfg.model.vocab_size:
            raise ValueError(
                f"{data.path} was written for a vocabulary of {data.vocab_size} but "
                f"model.vocab_size is {cfg.model.vocab_size}; set --model.vocab_size={data.vocab_size}"
            )
        if len(data) <= cfg.model.context_length:
            raise ValueError(f"{data.path} has {len(data)} tokens, fewer than context_length + 1")
    return datasets[0], datasets[1]


def build_model_and_optimizer(cfg: TrainConfig, device: torch.device) -> tuple[TransformerLM, AdamW]:
    torch.manual_seed(cfg.seed)
    model = TransformerLM.from_config(cfg.model, device=device)
    groups = parameter_groups(model, cfg.weight_decay, cfg.decay_norms_and_embeddings)
    optimizer = AdamW(groups, lr=cfg.max_lr, betas=cfg.betas, eps=cfg.eps, weight_decay=cfg.weight_decay)
    return model, optimizer


# Settings a resumed run may change without changing what it computes.
_RESUME_NEUTRAL = frozenset({"resume", "overwrite", "progress", "logger", "wandb_project", "wandb_mode",
                             "log_interval", "checkpoint_interval", "eval_interval", "out_dir"})


def changed_settings(saved: dict, current: dict) -> dict[str, tuple]:
    """Training settings that differ from the checkpoint's (model fields are checked apart)."""
    keys = (set(saved) | set(current)) - _RESUME_NEUTRAL - {"model"}
    return {k: (saved.get(k), current.get(k)) for k in sorted(keys) if saved.get(k) != current.get(k)}


def resume_from_checkpoint(run_dir: Path, model: torch.nn.Module, optimizer: AdamW,
                           cfg: TrainConfig | None = None) -> tuple[RunState, dict]:
    """Load model, optimizer and RNG states; return the run counters and the sampler state.
    Training settings that differ from the checkpoint's are reported (the run then no longer
    reproduces an uninterrupted one, which may be intended, e.g. a longer ``max_iters``)."""
    path = RunFolder(run_dir).checkpoint
    payload = read_checkpoint(path)
    check_compatible(path, payload, unwrap_model(model))
    saved_cfg = payload.get("extra", {}).get("train_config")
    if cfg is not None and saved_cfg:
        changes = changed_settings(saved_cfg, cfg.to_dict())
        if changes:
            listed = ", ".join(f"{k}: {a!r} -> {b!r}" for k, (a, b) in changes.items())
            print(f"note: resuming {run_dir} with changed settings ({listed})", file=sys.stderr)
    unwrap_model(model).load_state_dict(payload["model"])
    optimizer.load_state_dict(payload["optimizer"])
    restore_rng_state(payload["rng"])
    extra = payload.get("extra", {})
    saved = extra.get("run_state", {})
    state = RunState(step=int(payload["iteration"]), tokens=int(saved.get("tokens", 0)),
                     train_seconds=float(saved.get("train_seconds", 0.0)),
                     eval_seconds=float(saved.get("eval_seconds", 0.0)),
                     best_val_loss=saved.get("best_val_loss"))
    return state, extra.get("sampler", {})


def autocast_context(cfg: TrainConfig, device: torch.device):
    """bf16 autocast on CUDA (dtype auto|bf16) or on the CPU when bf16 is asked for; else none."""
    use_bf16 = cfg.dtype == "bf16" or (cfg.dtype == "auto" and device.type == "cuda")
    if not use_bf16:
        return contextlib.nullcontext
    return lambda: torch.autocast(device_type=device.type, dtype=torch.bfloat16)
