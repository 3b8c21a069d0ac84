"""``python -m train.experiments loss-split --runs RUN ...``: where a trained model's loss is.

A run's validation loss is the mean over its target tokens; this splits that mean over two
questions about each target:

- **how common it is** in the run's training data: *rare* (fewer than 100 per million training
  tokens), *middle* (100 to 1,000) or *common* (1,000 or more);
- **whether it is a repeat**: the token already occurred earlier in the same context window, so
  attention could copy it, or it is the first in the window.

Each of the six cells gets its share of the positions, its mean loss and its *contribution*
(share x mean loss); the contributions add up to the run's loss on the windows. A tokenizer that
turns the rare words of a corpus (the invented names of the generated stories) into whole tokens
of their own shows up here: if the model cannot yet copy a rare token it has just read, the
repeated rare cell holds a large part of the loss.

The windows are the first ``--windows`` non-overlapping context-length windows of the run's
validation file; the frequencies come from the first 8M tokens of its training file (both named
in the run's config.json). Writes ``<out>/<name>/loss_split.json``, ``loss_split.md`` and
``loss_split.png``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from tritonlm.tokenizer.tokenfile import open_tokens
from tritonlm.train.presentation import markdown_table
from tritonlm.train.checkpoint import read_checkpoint
from tritonlm.train.run_folder import (RunFolder, checkpoint_path, find_tokenizer_dir, load_tokenizer,
                                       model_from_checkpoint)
from tritonlm.util.atomic import write_json_atomic, write_text_atomic
from tritonlm.util.plotting import pyplot, save_figure
from tritonlm.util.runinfo import run_metadata

RARITY_EDGES = (100.0, 1000.0)  # per million training tokens
RARITY_NAMES = ("rare", "middle", "common")
FREQUENCY_SAMPLE = 8_000_000  # training tokens counted
CELLS = tuple((rarity, repeat) for rarity in RARITY_NAMES for repeat in (True, False))


def cell_label(rarity: str, repeat: bool) -> str:
    return f"{rarity}, {'repeat' if repeat else 'first in window'}"


def per_million(train_tokens: np.ndarray, vocab_size: int, sample: int = FREQUENCY_SAMPLE) -> np.ndarray:
    """Occurrences of every id per million tokens, over the first ``sample`` training tokens."""
    head = np.asarray(train_tokens[:sample]).astype(np.int64)
    if len(head) == 0:
        raise ValueError("the training file holds no tokens: frequencies need some")
    return np.bincount(head, minlength=vocab_size) * (1e6 / len(head))


def rarity_class(frequency: np.ndarray) -> np.ndarray:
    """0 (rare), 1 (middle) or 2 (common) for each frequency per million."""
    return np.searchsorted(np.asarray(RARITY_EDGES), frequency, side="right")


def repeats(windows: np.ndarray) -> np.ndarray:
    """For windows of ``context + 1`` ids (B, T+1): whether target ``j`` (id ``j + 1``) already
    occurs among ids ``0..j`` of its window; (B, T) booleans."""
    out = np.empty((windows.shape[0], windows.shape[1] - 1), dtype=bool)
    positions = np.arange(windows.shape[1])
    for row, ids in enumerate(windows):
        _, inverse = np.unique(ids, return_inverse=True)
        first = np.full(inverse.max() + 1, windows.shape[1])
        np.minimum.at(first, inverse, positions)
        out[row] = first[inverse[1:]] < positions[1:]
    return out


def validation_windows(val_tokens: np.ndarray, context: int, count: int) -> np.ndarray:
    """The first ``count`` non-overlapping windows of ``context + 1`` ids: (count, context + 1)."""
    available = (len(val_tokens) - 1) // context
    if available < 1:
        raise ValueError(f"the validation file holds {len(val_tokens)} tokens, fewer than one window of {context + 1}")
    count = min(count, available)
    starts = np.arange(count) * context
    return np.stack([np.asarray(val_tokens[s:s + context + 1]).astype(np.int64) for s in starts])


@torch.no_grad()
def token_losses(model: torch.nn.Module, windows: np.ndarray, batch_size: int = 16) -> np.ndarray:
    """The model's loss (nats) on every target of every window, in float32: (B, T)."""
    ids = torch.from_numpy(windows)
    out = []
    for start in range(0, len(ids), batch_size):
        chunk = ids[start:start + batch_size]
        logits = model(chunk[:, :-1]).float()  # (b, T, vocab)
        out.append(F.cross_entropy(logits.transpose(1, 2), chunk[:, 1:], reduction="none"))
    return torch.cat(out).numpy()


def split(losses: np.ndarray, rarity: np.ndarray, repeated: np.ndarray) -> list[dict]:
    """One row per cell: its share of positions, mean loss (None when empty) and contribution."""
    rows = []
    for index, (name, repeat) in enumerate(CELLS):
        mask = (rarity == RARITY_NAMES.index(name)) & (repeated == repeat)
        share = float(mask.mean())
        mean = float(losses[mask].mean()) if mask.any() else None
        rows.append({"cell": cell_label(name, repeat), "rarity": name, "repeat": repeat, "share": share,
                     "mean_loss": mean, "contribution": share * mean if mean is not None else 0.0})
    return rows


def rare_repeat_examples(run_dir: Path, targets: np.ndarray, rarity: np.ndarray, repeated: np.ndarray,
                         count: int = 12) -> list[str]:
    """The most frequent rare repeated targets, decoded by the run's tokenizer (none without one)."""
    folder = find_tokenizer_dir(run_dir)
    if folder is None:
        return []
    ids, counts = np.unique(targets[(rarity == 0) & repeated], return_counts=True)
    tokenizer = load_tokenizer(folder)
    return [tokenizer.decode([int(i)]) for i in ids[np.argsort(-counts, kind="stable")][:count]]


def run_data(run_dir: Path) -> tuple[str, str]:
    """The training and validation files a run names in its config.json."""
    folder = RunFolder(run_dir)
    config = folder.saved_config()
    if config is None:
        raise FileNotFoundError(f"{folder.config} is missing: loss-split needs a run folder written by training")
    if not config.get("val_data"):
        raise ValueError(f"{folder.config} names no val_data: the run has no validation file to split")
    return config["train_data"], config["val_data"]


def measure_run(run_dir: str | Path, windows: int) -> dict:
    """The split of one run's loss on its first ``windows`` validation windows."""
    run_dir = Path(run_dir)
    train_path, val_path = run_data(run_dir)
    checkpoint = checkpoint_path(run_dir)
    payload = read_checkpoint(checkpoint)  # read once: the model and the step it was saved at
    model = model_from_checkpoint(payload, checkpoint, "cpu", "torch")
    train_tokens, _ = open_tokens(train_path)
    val_tokens, _ = open_tokens(val_path)
    frequency = per_million(train_tokens, model.config.vocab_size)
    batch = validation_windows(val_tokens, model.config.context_length, windows)
    losses = token_losses(model, batch)
    rarity = rarity_class(frequency[batch[:, 1:]])
    repeated = repeats(batch)
    return {"run": run_dir.name, "path": str(run_dir), "step": int(payload["iteration"]), "vocab_size": model.config.vocab_size,
            "context_length": model.config.context_length, "windows": len(batch), "positions": int(losses.size),
            "mean_loss": float(losses.mean()), "cells": split(losses, rarity, repeated),
            "rare_repeat_examples": rare_repeat_examples(run_dir, batch[:, 1:], rarity, repeated)}


def plot(results: list[dict], out: Path) -> None:
    """One bar per run, stacked from the six cells' contributions."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8, 1.2 + 0.7 * len(results)))
    names = [r["run"] for r in results]
    left = np.zeros(len(results))
    colours = plt.get_cmap("tab20").colors
    for index, (rarity, repeat) in enumerate(CELLS):
        widths = np.array([r["cells"][index]["contribution"] for r in results])
        ax.barh(names, widths, left=left, color=colours[index], label=cell_label(rarity, repeat),
                hatch=None if repeat else "//", edgecolor="white")
        left += widths
    ax.set_xlabel("contribution to the validation loss (nats/token)")
    ax.invert_yaxis()
    ax.legend(fontsize=7, ncol=3, loc="upper center", bbox_to_anchor=(0.5, -0.35 if len(results) < 3 else -0.2))
    save_figure(fig, out)


def write_outputs(out_dir: Path, results: list[dict]) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out_dir / "loss_split.json", {"metadata": run_metadata(), "rarity_edges_per_million": RARITY_EDGES,
                                                    "runs": results})
    plot(results, out_dir / "loss_split.png")
    lines = ["## Where the validation loss is: rare tokens and repeats", "",
             f"Targets split by how common they are in training (rare: under {RARITY_EDGES[0]:g} per million "
             f"tokens; middle: to {RARITY_EDGES[1]:g}; common: above) and by whether they already occurred in "
             "the window; contribution = share x mean loss (the contributions add up to the loss).", ""]
    for r in results:
        lines += [f"### {r['run']}", "",
                  f"Vocab {r['vocab_size']:,}, context {r['context_length']}, checkpoint of step {r['step']:,}, "
                  f"{r['windows']} windows ({r['positions']:,} targets), loss {r['mean_loss']:.3f}.", ""]
        rows = [{**c, "share": f"{c['share']:.3f}",
                 "mean_loss": "-" if c["mean_loss"] is None else f"{c['mean_loss']:.3f}",
                 "contribution": f"{c['contribution']:.3f}"} for c in r["cells"]]
        lines += [markdown_table(rows, ("cell", "share", "mean_loss", "contribution"),
                                 ("targets", "share", "mean loss", "contribution")), ""]
        if r["rare_repeat_examples"]:
            lines += ["The most frequent rare repeats: " + ", ".join(f"`{t}`" for t in r["rare_repeat_examples"]) + ".", ""]
    lines += ["![contributions](loss_split.png)", ""]
    write_text_atomic(out_dir / "loss_split.md", "\n".join(lines))


def run(run_dirs: list[str], out_dir: Path, windows: int = 256) -> list[dict]:
    """Split every run's loss and write the tables and plot to ``out_dir``."""
    if not run_dirs:
        raise ValueError("loss-split needs at least one run folder: --runs RUN [RUN ...]")
    results = [measure_run(r, windows) for r in run_dirs]
    write_outputs(out_dir, results)
    for r in results:
        worst = max(r["cells"], key=lambda c: c["contribution"])
        print(f"{r['run']}: loss {r['mean_loss']:.3f}; largest part {worst['cell']} "
              f"({worst['share']:.1%} of targets, {worst['contribution']:.3f} nats/token)")
    return results
