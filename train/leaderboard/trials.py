"""Budget-matched trials on one prepared corpus: what the recipe sweep and the speedrun report
are made of.

A trial is one training config run for the same wall-clock budget on the same token files as
every other trial of its study, then evaluated on every validation token. Its record (final loss,
gap to the entropy floor, tokens, throughput, the periodic validation curve) is kept in its run
folder as ``trial.json``, so a study that stops part-way is rerun with the same command and
continues: finished trials are read back, an interrupted one resumes from its checkpoint.
"""

from __future__ import annotations

import json
import math
import shutil
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from tritonlm.tokenizer.tokenfile import open_tokens
from tritonlm.train.config import TrainConfig
from tritonlm.train.data import padded_vocab_size
from tritonlm.train.loop import run_training
from tritonlm.train.metrics_log import read_metrics
from tritonlm.train.run_folder import RunFolder, load_model
from tritonlm.util.atomic import write_json_atomic
from tritonlm.util.cli import apply_overrides

from .data import PreparedData
from .evaluate import evaluate_full

TRIAL_FILE = "trial.json"


@dataclass(frozen=True)
class Trial:
    """One run of a study: ``name`` (a label), the ``seed`` and the training config's overrides."""

    name: str
    config: TrainConfig
    seed: int = 0

    @property
    def folder_name(self) -> str:
        return f"{self.name}-seed{self.seed}"


def trial_config(base: TrainConfig, data: PreparedData, out_dir: Path, seed: int, budget: float,
                 overrides: dict[str, str] | None = None) -> TrainConfig:
    """``base`` with ``overrides``, pointed at the study's token files and run folder, for ``budget``
    seconds of training (no step limit) from ``seed``."""
    settings = {**(overrides or {}), "train_data": str(data.train_tokens), "val_data": str(data.val_tokens),
                "out_dir": str(out_dir), "seed": str(seed), "budget_seconds": str(budget), "max_iters": "none"}
    settings.setdefault("model.vocab_size", str(padded_vocab_size(data.vocab_size)))
    return apply_overrides(base, settings)


def run_trial(trial: Trial, data: PreparedData, eval_batch_size: int = 32) -> dict:
    """Train ``trial.config`` (or read back its finished record), evaluate it on the whole
    validation set, and return the record (also written to ``trial.json`` in its folder)."""
    cfg = trial.config
    folder = Path(cfg.out_dir)
    saved = _finished_record(folder, cfg)
    if saved is not None:
        print(f"{trial.folder_name}: finished before, final val loss {saved['final_val_loss']:.4f} (reused)")
        return saved
    resumable = RunFolder(folder).checkpoint.exists()
    if resumable and not _same_config(folder, cfg):
        raise ValueError(f"{folder} holds a run of another configuration than trial {trial.folder_name}; move it "
                         "away (or choose another --out) to train this one")
    if folder.exists() and not resumable:
        shutil.rmtree(folder)  # a start that never reached its first checkpoint: nothing to keep
    cfg = apply_overrides(cfg, {"resume": str(resumable).lower()})
    print(f"{trial.folder_name}: {'resuming' if resumable else 'training'} -> {folder}")
    summary = run_training(cfg)
    if summary.get("status") != "completed":
        raise RuntimeError(f"{trial.folder_name} stopped ({summary.get('status')}); rerun the same command to resume it")
    model = load_model(folder, cfg.device, cfg.model.kernels)
    device = next(model.parameters()).device
    val_tokens, _ = open_tokens(data.val_tokens)
    final = evaluate_full(model, val_tokens, cfg, eval_batch_size, device)
    curve = [(r["elapsed_s"], r["val_loss"]) for r in read_metrics(RunFolder(folder).metrics)
             if r.get("kind") == "val" and _finite(r.get("val_loss"))]
    floor = data.val_entropy_floor
    record = {
        "name": trial.name, "seed": trial.seed, "final_val_loss": final["val_loss"], "val_tokens": final["val_tokens"],
        "gap_to_floor": final["val_loss"] - floor if floor is not None else None, "entropy_floor": floor,
        "tokens": summary["tokens"], "steps": summary["steps"], "train_seconds": summary["train_seconds"],
        "tokens_per_s": summary["tokens_per_s"], "val_curve": curve, "config": cfg.to_dict(),
        "metadata": summary["metadata"],
    }
    write_json_atomic(folder / TRIAL_FILE, record)
    return record


def _finished_record(folder: Path, cfg: TrainConfig) -> dict | None:
    path = folder / TRIAL_FILE
    if not path.exists():
        return None
    record = json.loads(path.read_text())
    return record if _comparable(record["config"]) == _comparable(cfg.to_dict()) else None  # else: retrained


def _same_config(folder: Path, cfg: TrainConfig) -> bool:
    """Whether the run in ``folder`` was started with ``cfg`` (so resuming it continues this trial)."""
    saved = RunFolder(folder).saved_config()
    return saved is not None and _comparable(saved) == _comparable(cfg.to_dict())


def _comparable(config: dict) -> str:
    """A config as JSON, completed with the defaults of fields added since it was saved, without
    the switches that do not change what is trained."""
    full = TrainConfig.from_dict(config).to_dict()
    ignored = {"resume", "overwrite", "progress"}
    return json.dumps({k: v for k, v in full.items() if k not in ignored}, sort_keys=True, default=str)


def time_to_reach(curve: Sequence[tuple[float, float]], target: float) -> float | None:
    """The first training second at which the validation curve reaches ``target`` (linear between
    evaluations), or None if it never does."""
    previous = None
    for seconds, loss in curve:
        if loss <= target:
            if previous is None or previous[1] == loss:
                return seconds
            (s0, l0) = previous
            return s0 + (l0 - target) / (l0 - loss) * (seconds - s0)
        previous = (seconds, loss)
    return None


def spread(values: Sequence[float]) -> dict:
    """Median, minimum and maximum of ``values`` (the honest summary of a few noisy runs)."""
    values = [v for v in values if v is not None]
    if not values:
        return {"median": None, "min": None, "max": None, "n": 0}
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "n": len(values)}


def summarise_runs(runs: Sequence[dict]) -> dict:
    """Final loss, gap to the floor, tokens and tokens/s of some runs, each as ``spread``."""
    return {key: spread([r[key] for r in runs]) for key in ("final_val_loss", "gap_to_floor", "tokens", "tokens_per_s")}


def format_spread(summary: dict, show=lambda v: f"{v:.3f}") -> str:
    """``median [min–max]``, each value written by ``show`` (just the median for one run; "n/a"
    for none)."""
    if not summary["n"]:
        return "n/a"
    if summary["n"] == 1:
        return show(summary["median"])
    return f"{show(summary['median'])} [{show(summary['min'])}–{show(summary['max'])}]"


def format_count(value: float) -> str:
    """1,910,000 -> "1.91M", 65,536 -> "65.5k", 512 -> "512"."""
    if abs(value) >= 1e6:
        return f"{value / 1e6:.2f}M"
    if abs(value) >= 1e3:
        return f"{value / 1e3:.1f}k"
    return f"{value:.0f}"


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)
