"""Everything a run needs before its first step: run folder, data, model, optimizer, resume.

Kept apart from the step loop (``train.loop``) so each reads on its own.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import torch

from tritonlm.model import TransformerLM
from tritonlm.util.atomic import remove_stale_temporaries, write_json_atomic
from tritonlm.util.cli import UserError
from tritonlm.util.runinfo import run_metadata

from .checkpoint import check_compatible, read_checkpoint, restore_rng_state, unwrap_model
from .config import TrainConfig
from .data import TokenData, load_tokens
from .distributed import DistInfo
from .optim import AdamW, parameter_groups
from .run_folder import RunFolder


class RunFolderError(RuntimeError, UserError):
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


def check_run_dir(cfg: TrainConfig) -> Path:
    """The run folder ``out_dir``, checked but not touched: a folder (not a file), with a
    checkpoint to ``--resume`` from, and not a finished run unless ``--overwrite``."""
    run_dir = Path(cfg.out_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise RunFolderError(f"--out_dir {run_dir} is a file, not a folder; choose another --out_dir")
    checkpoint = RunFolder(run_dir).checkpoint
    if cfg.resume and not checkpoint.exists():
        raise RunFolderError(f"--resume: no checkpoint at {checkpoint}; start without --resume")
    if not cfg.resume and checkpoint.exists() and not cfg.overwrite:
        raise RunFolderError(
            f"{run_dir} already holds a run ({checkpoint.name}); continue it with --resume, "
            "replace it with --overwrite, or choose another --out_dir"
        )
    return run_dir


class RunLock:
    """Exclusive use of a run folder by one job: an ``fcntl`` lock on ``RUN/.lock`` (which holds
    the job's pid), released when the job ends, or by the system when its process dies."""

    def __init__(self, run_dir: Path):
        self.path = run_dir / ".lock"
        self._file = open(self.path, "a+")
        try:
            fcntl.flock(self._file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._file.seek(0)
            holder = self._file.read().strip() or "unknown"
            self._file.close()
            raise RunFolderError(f"{run_dir} is in use by another job (pid {holder}); wait for it to end, or choose "
                                 "another --out_dir") from None
        self._file.seek(0)
        self._file.truncate()
        self._file.write(str(os.getpid()))
        self._file.flush()

    def release(self) -> None:
        if not self._file.closed:
            self.path.unlink(missing_ok=True)
            self._file.close()  # closing the file releases the lock


def start_run_dir(cfg: TrainConfig, run_dir: Path, info: DistInfo) -> RunLock | None:
    """Create the run folder and lock it for this job (on the main rank), and clean up what an
    earlier job's crash left there; called once the inputs are known to be good."""
    if not info.is_main:
        return None
    run_dir.mkdir(parents=True, exist_ok=True)
    lock = RunLock(run_dir)
    remove_stale_temporaries(run_dir)
    return lock


def write_run_config(cfg: TrainConfig, run_dir: Path, info: DistInfo) -> None:
    """``config.json``: the configuration and metadata of the run, once it has started."""
    if info.is_main:
        write_json_atomic(RunFolder(run_dir).config, {"config": cfg.to_dict(), "metadata": run_metadata()})


def load_datasets(cfg: TrainConfig) -> tuple[TokenData, TokenData | None]:
    """Memory-map the token files and check their vocabulary fits the model."""
    if not cfg.train_data:
        raise ValueError("train_data is not set: pass --train_data=PATH to a token file (python -m tokenizer.encode)")
    datasets = [load_tokens(cfg.train_data), load_tokens(cfg.val_data) if cfg.val_data else None]
    for data in (d for d in datasets if d is not None):  # not filter(None, ...): an empty file is falsy
        if data.vocab_size > cfg.model.vocab_size:
            raise ValueError(
                f"{data.path} was written for a vocabulary of {data.vocab_size} but "
                f"model.vocab_size is {cfg.model.vocab_size}; set --model.vocab_size={data.vocab_size}"
            )
        if len(data) <= cfg.model.context_length:
            raise ValueError(f"{data.path} has {len(data)} tokens, too few for context_length "
                             f"{cfg.model.context_length}: it needs at least {cfg.model.context_length + 1}; "
                             "encode more text or lower --model.context_length")
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
                           cfg: TrainConfig | None = None, world_size: int = 1) -> tuple[RunState, dict]:
    """Load model, optimizer and RNG states; return the run counters and the sampler state.
    Training settings that differ from the checkpoint's are reported (the run then no longer
    reproduces an uninterrupted one, which may be intended, e.g. a longer ``max_iters``), and so
    is another number of data-parallel ranks: the run goes on, with the global batch (ranks x
    batch_size x grad_accum_steps) of the new layout."""
    path = RunFolder(run_dir).checkpoint
    payload = read_checkpoint(path)
    check_compatible(path, payload, unwrap_model(model))
    saved_cfg = payload.get("extra", {}).get("train_config")
    if cfg is not None and saved_cfg:
        changes = changed_settings(saved_cfg, cfg.to_dict())
        if changes:
            listed = ", ".join(f"{k}: {a!r} -> {b!r}" for k, (a, b) in changes.items())
            print(f"note: resuming {run_dir} with changed settings ({listed})", file=sys.stderr)
    saved_world = payload.get("extra", {}).get("world_size", 1)
    if saved_world != world_size:
        print(f"note: resuming {run_dir}, saved by {saved_world} data-parallel rank(s), on {world_size}: the global "
              f"batch changes by x{world_size / saved_world:g} from here on", file=sys.stderr)
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
