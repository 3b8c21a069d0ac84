"""What the recipe sweep and the speedrun report share: their command-line data options, the one
data preparation for all their trials, and their figures (curves, table, raw metrics)."""

from __future__ import annotations

import argparse
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from tritonlm.train.presentation import format_duration, parse_duration
from tritonlm.util.plotting import pyplot, save_figure
from tritonlm.train.recipes import Recipe
from tritonlm.train.run_folder import RunFolder

from .data import PreparedData, prepare_data


def add_data_arguments(parser: argparse.ArgumentParser, default_out: str) -> None:
    """The options every study takes: its data (as the leaderboard takes it), budget and folders."""
    parser.add_argument("--train-data", default=None, help="training text or token file (default: generated stories)")
    parser.add_argument("--val-data", default=None, help="validation text or token file")
    parser.add_argument("--tokenizer", default=None, help="use this tokenizer folder instead of training one")
    parser.add_argument("--budget", default=None, help="training budget of every trial, e.g. 7m, 90s (the recipe's by default)")
    parser.add_argument("--seeds", type=int, default=1, help="runs per entry, seeds 0..N-1")
    parser.add_argument("--out", default=default_out, help="folder of the trials' run folders (rerun to continue)")
    parser.add_argument("--results", default=None, help="folder of the results: JSON, Markdown, plot, raw metrics "
                                                        "(default: --out)")


@dataclass(frozen=True)
class Study:
    """A study's settings: the budget of every trial, the one prepared corpus, the folder of the
    run folders (``out``) and the folder of the results."""

    budget: float
    data: PreparedData
    out: Path
    results: Path


def open_study(args: argparse.Namespace, recipe: Recipe) -> Study:
    """The budget (``--budget`` or the recipe's), the token files every trial reads (the recipe's
    data settings; cached) and the two folders, created."""
    budget = parse_duration(args.budget) if args.budget else recipe.train.budget_seconds
    if not budget:
        raise ValueError(f"recipe {recipe.name} has no time budget; pass --budget")
    if args.seeds < 1:
        raise ValueError(f"--seeds must be at least 1, got {args.seeds}")
    if recipe.leaderboard is None:
        raise ValueError(f"recipe {recipe.name} has no data settings (it is not a leaderboard recipe)")
    data = prepare_data(args.train_data, args.val_data, recipe.leaderboard, args.tokenizer)
    results = Path(args.results or args.out)
    results.mkdir(parents=True, exist_ok=True)
    return Study(budget, data, Path(args.out), results)


def copy_raw_metrics(records: Sequence[dict], out: Path, results: Path) -> None:
    """Each trial's metrics.jsonl into ``results`` as ``NAME-seedK.metrics.jsonl``: the raw data
    behind the plot and the table."""
    for record in records:
        folder = out / f"{record['name']}-seed{record['seed']}"
        shutil.copyfile(RunFolder(folder).metrics, results / f"{record['name']}-seed{record['seed']}.metrics.jsonl")


def plot_study(records: Sequence[dict], floor: float | None, path: Path, title: str,
               reference: tuple[str, float] | None = None) -> Path:
    """Periodic validation loss against training minutes, one line per trial, one colour per
    entry, the entropy floor (and an optional reference loss) drawn across."""
    fig, ax = pyplot().subplots(figsize=(8, 4.8))
    names = list(dict.fromkeys(r["name"] for r in records))
    for record in records:
        colour = f"C{names.index(record['name']) % 10}"
        minutes = [s / 60 for s, _ in record["val_curve"]]
        losses = [loss for _, loss in record["val_curve"]]
        label = record["name"] if record["seed"] == min(r["seed"] for r in records if r["name"] == record["name"]) else None
        ax.plot(minutes, losses, "-", color=colour, lw=1.2, alpha=0.85, label=label)
    if floor is not None:
        ax.axhline(floor, ls="--", color="black", lw=1, label=f"entropy floor = {floor:.3f}")
    if reference is not None:
        ax.axhline(reference[1], ls=":", color="grey", lw=1, label=f"{reference[0]} = {reference[1]:.3f}")
    finite = [loss for r in records for _, loss in r["val_curve"]]
    if finite:
        low = min(finite + ([floor] if floor is not None else []))
        ax.set_ylim(low - 0.05, min(max(finite), low + 1.0))  # the end of the runs, where they differ
    ax.set_xlabel("training minutes (periodic evaluation excluded)")
    ax.set_ylabel("validation loss (nats/token)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return save_figure(fig, path, dpi=110)


def describe_budget(budget: float, seeds: int) -> str:
    return f"{format_duration(budget)} of training per run, {seeds} seed(s)"

