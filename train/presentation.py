"""Presentation shared by the leaderboard and the experiments: durations, MFU, the validation
curve of a metrics log, Markdown tables and loss plots.

Everything here reads plain Python data (a run's metrics records) and writes files atomically,
so the leaderboard and the experiments report the same way.
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path
from typing import Any, Iterable, Sequence

from tritonlm.util.plotting import pyplot, save_figure
from tritonlm.util.runinfo import device_peaks


def parse_duration(text: str | float | int) -> float:
    """``"90m"``, ``"1.5h"``, ``"300s"``, ``"45"`` (seconds) or ``"1h30m"`` -> seconds."""
    if isinstance(text, (int, float)):
        seconds = float(text)
    else:
        text = str(text).strip().lower()
        if not re.fullmatch(r"(?:[0-9]*\.?[0-9]+\s*[hms]?\s*)+", text):
            raise ValueError(f"cannot read duration {text!r}; write e.g. 90m, 1.5h, 300s or 45")
        parts = re.findall(r"([0-9]*\.?[0-9]+)\s*([hms]?)", text)
        scale = {"h": 3600.0, "m": 60.0, "s": 1.0, "": 1.0}
        seconds = sum(float(n) * scale[u] for n, u in parts)
    if not seconds > 0 or math.isinf(seconds):
        raise ValueError(f"a budget must be a positive, finite duration, got {text!r}")
    return seconds


def format_duration(seconds: float) -> str:
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s"


def run_length(budget_seconds: float | None, max_iters: int | None) -> str:
    """How long a run trains, as its config says: a time budget, a number of steps, or both
    (it stops at whichever comes first)."""
    parts = ([f"{format_duration(budget_seconds)} of training"] if budget_seconds else []) + (
        [f"{max_iters:,} steps"] if max_iters else [])
    return " or ".join(parts) or "no limit"


def peak_flops(device_name: str) -> float | None:
    """The dense bf16 peak of a known GPU, or None (CPU or an unknown device: no MFU)."""
    peaks = device_peaks(device_name)
    return peaks[0] if peaks else None


def model_flops_utilization(train_flops_per_token: float, tokens_per_second: float, device_name: str) -> float | None:
    """MFU = achieved model FLOP/s (forward + backward, from the accounting) / device peak."""
    peak = peak_flops(device_name)
    if peak is None or not tokens_per_second > 0:
        return None
    return train_flops_per_token * tokens_per_second / peak


# -- metrics -------------------------------------------------------------------------------------
def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def _x_of(record: dict, x_axis: str) -> float:
    """Training minutes (``elapsed_s``), or millions of tokens seen (``x_axis="tokens"``)."""
    return record.get("tokens", 0) / 1e6 if x_axis == "tokens" else record.get("elapsed_s", 0.0) / 60.0


def val_curve(metrics: Iterable[dict], x_axis: str = "minutes") -> tuple[list[float], list[float]]:
    """(x, val loss) of the records that carry a validation loss; x is training minutes
    (``elapsed_s``) or millions of tokens seen (``x_axis="tokens"``)."""
    xs, losses = [], []
    for record in metrics:
        if _finite(record.get("val_loss")):
            xs.append(_x_of(record, x_axis))
            losses.append(float(record["val_loss"]))
    return xs, losses


def best_val_loss(metrics: Iterable[dict]) -> float | None:
    losses = val_curve(metrics)[1]
    return min(losses) if losses else None


# -- Markdown ------------------------------------------------------------------------------------
def fmt(value: Any, digits: int = 4) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        if value != 0 and (abs(value) >= 1e6 or abs(value) < 1e-3):
            return f"{value:.3g}"
        return f"{value:.{digits}g}" if abs(value) < 1000 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value).replace("|", "\\|")


def markdown_table(rows: Sequence[dict], columns: Sequence[str], headers: Sequence[str] | None = None) -> str:
    """A GitHub Markdown table of ``rows`` (dicts) restricted to ``columns``."""
    headers = list(headers or columns)
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    for row in rows:
        lines.append("| " + " | ".join(fmt(row.get(c)) for c in columns) + " |")
    return "\n".join(lines)


def flat_items(data: dict, prefix: str = "") -> list[tuple[str, Any]]:
    """``{"model": {"d_model": 8}}`` -> ``[("model.d_model", 8)]`` (the CLI flag names)."""
    items = []
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            items.extend(flat_items(value, name + "."))
        else:
            items.append((name, value))
    return items


# -- plots ---------------------------------------------------------------------------------------
def _loss_curves(metrics: Sequence[dict], x_axis: str, reference_lines: dict[str, float] | None):
    """A figure with the train (when logged) and validation losses against ``x_axis`` and
    horizontal reference lines; (figure, axes, validation losses)."""
    fig, ax = pyplot().subplots(figsize=(7, 4.2))
    xs, losses = val_curve(metrics, x_axis)
    train = [(_x_of(r, x_axis), r["train_loss"]) for r in metrics if _finite(r.get("train_loss"))]
    if train:
        ax.plot(*zip(*train), color="tab:blue", alpha=0.35, lw=1, label="train loss")
    ax.plot(xs, losses, "o-", color="tab:orange", ms=3, label="validation loss")
    for i, (label, value) in enumerate((reference_lines or {}).items()):
        ax.axhline(value, ls="--", color=f"C{i + 2}", lw=1, label=f"{label} = {value:.3f}")
    return fig, ax, losses


def plot_val_loss_vs_minutes(
    metrics: Sequence[dict], out: str | os.PathLike, title: str, reference_lines: dict[str, float] | None = None
) -> Path:
    """Validation (and train, when logged) loss against wall-clock minutes, with horizontal
    reference lines such as the unigram entropy of the validation set."""
    fig, ax, _ = _loss_curves(metrics, "minutes", reference_lines)
    _finish(ax, "training minutes (periodic evaluation excluded)", "loss (nats/token)", title)
    return save_figure(fig, out, dpi=110)


def plot_val_loss_vs_tokens(
    metrics: Sequence[dict], out: str | os.PathLike, title: str, goal_tokens: int | None = None,
    reference_lines: dict[str, float] | None = None,
) -> Path:
    """Validation (and train) loss against millions of tokens seen, the x axis drawn out to
    ``goal_tokens`` when given, so a run stopped part of the way shows how far it got."""
    fig, ax, losses = _loss_curves(metrics, "tokens", reference_lines)
    if goal_tokens:
        ax.axvline(goal_tokens / 1e6, ls=":", color="gray", lw=1, label=f"goal: {goal_tokens / 1e6:.1f}M tokens")
        ax.set_xlim(0, goal_tokens / 1e6 * 1.02)
    lows = [v for v in (*losses, *(reference_lines or {}).values()) if _finite(v)]
    if losses and lows:  # the first evaluation (at log(vocab)) would flatten the rest of the curve
        low = min(lows)
        ax.set_ylim(low - 0.1, min(max(losses), low + 3.0) + 0.1)
    _finish(ax, "tokens seen (millions)", "loss (nats/token)", title)
    return save_figure(fig, out, dpi=110)


def plot_overlay(
    curves: dict[str, tuple[Sequence[float], Sequence[float]]], out: str | os.PathLike, title: str,
    xlabel: str = "training minutes", ylabel: str = "validation loss (nats/token)", ylim: tuple | None = None,
) -> Path:
    """One line per run (label -> (x, y)), e.g. the val curves of a learning-rate sweep."""
    fig, ax = pyplot().subplots(figsize=(7.5, 4.5))
    for label, (x, y) in curves.items():
        if len(x):
            ax.plot(x, y, "o-", ms=2.5, lw=1.2, label=label)
    if ylim is None:
        finite = [v for _, y in curves.values() for v in y if _finite(v)]
        if finite:
            low = min(finite)
            ylim = (low - 0.1, min(max(finite), low + 4.0) + 0.1)
    if ylim:
        ax.set_ylim(*ylim)
    _finish(ax, xlabel, ylabel, title)
    return save_figure(fig, out, dpi=110)


def _finish(ax, xlabel: str, ylabel: str, title: str) -> None:
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)
