"""Run records: metrics JSONL, optional TensorBoard / W&B mirrors, and loss-curve plots.

``metrics.jsonl`` holds one JSON object per line: ``{"kind": "train", "step", "tokens",
"elapsed_s" (training time), "wall_s" (since start, incl. evaluation), "lr", "train_loss",
"grad_norm", "tokens_per_s"}`` and ``{"kind": "val", "step", "tokens", "elapsed_s", "wall_s",
"val_loss"}``, ``{"kind": "warning", "step", "message"}`` (e.g. a checkpoint skipped because the
run showed signs of diverging), after a ``{"kind": "run" | "resume", "step", "config", "metadata"}`` header
written when the run starts or resumes. On resume the lines after the checkpoint's step are dropped, so a resumed run's
file reads exactly like an uninterrupted one's.
"""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path
from typing import Any

from tritonlm.util.cli import UserError
from tritonlm.util.plotting import pyplot, save_figure

from .run_folder import RunFolder


def read_metrics(path: str | os.PathLike) -> list[dict]:
    """The records of a metrics.jsonl file.

    A last line without its newline is a write cut short by a crash or a kill: it is dropped,
    so a run can be resumed and reported. A malformed line anywhere else is corruption and
    raises, naming the line.
    """
    path = Path(path)
    if not path.exists():
        return []
    text = path.read_text()
    lines = text.split("\n")
    if lines and lines[-1].strip():
        try:
            json.loads(lines[-1])
        except json.JSONDecodeError:
            lines.pop()  # an unfinished final write
    records = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}: line {number} is not valid JSON ({e}); the metrics file is corrupt") from None
    return records


class MetricsLog:
    """Appends records to ``metrics.jsonl`` and mirrors scalars to an external logger."""

    def __init__(self, run_dir: Path, logger: str = "none", resume_step: int | None = None,
                 config: dict | None = None, wandb_project: str = "tritonlm", wandb_mode: str = "offline"):
        self.path = RunFolder(run_dir).metrics
        if resume_step is None:
            self.path.write_text("")
        else:
            self._truncate_after(resume_step)
        self._file = open(self.path, "a")
        self._external = make_external_logger(logger, Path(run_dir), config or {}, wandb_project, wandb_mode)

    def _truncate_after(self, step: int) -> None:
        kept = [r for r in read_metrics(self.path) if r.get("step", 0) <= step]
        self.path.write_text("".join(json.dumps(r) + "\n" for r in kept))

    def log(self, record: dict) -> None:
        self._file.write(json.dumps(record) + "\n")
        self._file.flush()
        if self._external is not None:
            self._external.log(record)

    def close(self) -> None:
        self._file.close()
        if self._external is not None:
            self._external.close()


def make_external_logger(kind: str, run_dir: Path, config: dict, project: str, mode: str):
    if kind == "none":
        return None
    if kind == "tensorboard":
        return TensorBoardLogger(run_dir)
    if kind == "wandb":
        return WandbLogger(run_dir, config, project, mode)
    raise ValueError(f"unknown logger {kind!r}; choose none, tensorboard or wandb")


class LoggerUnavailable(RuntimeError, UserError):
    """A metrics logger whose package is not installed."""


LOGGER_PACKAGES = {"tensorboard": "tensorboard", "wandb": "wandb"}  # --logger -> the package it needs


def check_logger(kind: str) -> None:
    """Refuse a logger that cannot run here before the run starts (nothing written yet)."""
    if kind in LOGGER_PACKAGES:
        require_package(LOGGER_PACKAGES[kind], LOGGER_PACKAGES[kind], kind)


def require_package(module: str, pip_name: str, option: str) -> None:
    if importlib.util.find_spec(module) is None:
        raise LoggerUnavailable(
            f"logger={option!r} needs the {pip_name} package, which is not installed: "
            f"`pip install {pip_name}`, or use --logger=none (metrics.jsonl is always written)"
        )


class TensorBoardLogger:
    def __init__(self, run_dir: Path):
        require_package("tensorboard", "tensorboard", "tensorboard")
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(run_dir / "tensorboard"))

    def log(self, record: dict) -> None:
        kind, step = record.get("kind", "train"), record["step"]
        for key, value in record.items():
            if key not in ("kind", "step") and isinstance(value, (int, float)) and not isinstance(value, bool):
                self.writer.add_scalar(f"{kind}/{key}", value, step)

    def close(self) -> None:
        self.writer.close()


class WandbLogger:
    def __init__(self, run_dir: Path, config: dict, project: str, mode: str):
        require_package("wandb", "wandb", "wandb")
        import wandb

        self.run = wandb.init(project=project, dir=str(run_dir), config=config, mode=mode,
                              name=run_dir.name, resume="allow")

    def log(self, record: dict) -> None:
        kind = record.get("kind", "train")
        scalars = {f"{kind}/{k}": v for k, v in record.items() if k not in ("kind", "step") and isinstance(v, (int, float))}
        self.run.log(scalars, step=record["step"])

    def close(self) -> None:
        self.run.finish()


def plot_loss_curves(records: list[dict], run_dir: str | os.PathLike, title: str = "") -> list[Path]:
    """``loss_vs_steps.png`` and ``loss_vs_time.png``: train loss (raw and smoothed) and val loss."""
    folder = RunFolder(run_dir)
    train = [r for r in records if r.get("kind") == "train"]
    val = [r for r in records if r.get("kind") == "val"]
    paths = []
    for x_key, x_label, path in (("step", "optimizer step", folder.loss_vs_steps_plot),
                                 ("elapsed_s", "training time (s)", folder.loss_vs_time_plot)):
        fig, ax = pyplot().subplots(figsize=(7, 4.2))
        if train:
            xs, ys = [r[x_key] for r in train], [r["train_loss"] for r in train]
            ax.plot(xs, ys, color="tab:blue", alpha=0.3, lw=0.8)
            ax.plot(xs, smooth(ys), color="tab:blue", lw=1.6, label="train (smoothed)")
        if val:
            ax.plot([r[x_key] for r in val], [r["val_loss"] for r in val], "o-", color="tab:orange", ms=3, label="validation")
        ax.set_xlabel(x_label)
        ax.set_ylabel("cross-entropy (nats/token)")
        ax.set_title(title or folder.root.name)
        ax.grid(alpha=0.3)
        if train or val:
            ax.legend()
        paths.append(save_figure(fig, path))
    return paths


def smooth(values: list[float], weight: float = 0.9) -> list[float]:
    """Bias-corrected exponential moving average (as TensorBoard's smoothing)."""
    out, avg = [], 0.0
    for i, v in enumerate(values, start=1):
        avg = weight * avg + (1 - weight) * v
        out.append(avg / (1 - weight**i))
    return out
