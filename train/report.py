"""Reports of leaderboard runs and experiment sweeps: budgets, MFU, JSON, Markdown, plots.

Everything here reads plain Python data (a run's metrics JSONL, a report dict) and writes
files atomically, so the leaderboard and the experiments share one way of reporting.
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path
from typing import Any, Iterable, Sequence

from util.atomic import write_json_atomic, write_text_atomic
from util.plotting import pyplot, save_figure
from util.runinfo import device_peaks


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


def val_curve(metrics: Iterable[dict], x_axis: str = "minutes") -> tuple[list[float], list[float]]:
    """(x, val loss) of the records that carry a validation loss; x is training minutes
    (``elapsed_s``) or millions of tokens seen (``x_axis="tokens"``)."""
    xs, losses = [], []
    for record in metrics:
        if _finite(record.get("val_loss")):
            xs.append(record.get("tokens", 0) / 1e6 if x_axis == "tokens" else record.get("elapsed_s", 0.0) / 60.0)
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
def plot_val_loss_vs_minutes(
    metrics: Sequence[dict], out: str | os.PathLike, title: str, reference_lines: dict[str, float] | None = None
) -> Path:
    """Validation (and train, when logged) loss against wall-clock minutes, with horizontal
    reference lines such as the unigram entropy of the validation set."""
    fig, ax = pyplot().subplots(figsize=(7, 4.2))
    minutes, losses = val_curve(metrics)
    train = [(r.get("elapsed_s", 0.0) / 60.0, r["train_loss"]) for r in metrics if _finite(r.get("train_loss"))]
    if train:
        ax.plot(*zip(*train), color="tab:blue", alpha=0.35, lw=1, label="train loss")
    ax.plot(minutes, losses, "o-", color="tab:orange", ms=3, label="validation loss")
    for i, (label, value) in enumerate((reference_lines or {}).items()):
        ax.axhline(value, ls="--", color=f"C{i + 2}", lw=1, label=f"{label} = {value:.3f}")
    _finish(ax, "training minutes (periodic evaluation excluded)", "loss (nats/token)", title)
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


# -- leaderboard reports ---------------------------------------------------------------------------
IMPROVEMENT_FLAGS = {
    "model.tie_embeddings": "weight tying (lm_head shares the embedding matrix)",
    "model.qk_norm": "QK-norm (RMSNorm on queries and keys per head)",
    "z_loss": "z-loss weight (penalises log(Z)^2 of the softmax normaliser)",
    "model.logit_softcap": "logit soft-capping (cap * tanh(logits / cap); 0 = off)",
    "schedule": "learning-rate schedule (cosine, or wsd = warmup-stable-decay)",
    "model.kernels": "kernel backends (Triton or PyTorch reference, per op)",
    "dtype": "precision (bf16 autocast on CUDA)",
    "compile": "torch.compile (CUDA only)",
}


def compute_plan(train_config) -> dict:
    """Accounting figures of a training config: parameters, FLOPs per token, tokens per step."""
    from model.accounting import count_parameters, parameter_counts, training_flops

    cfg = train_config.model
    params = count_parameters(cfg)
    embedding = parameter_counts(cfg)["token_embeddings"]
    lm_head = parameter_counts(cfg)["lm_head"]
    return {
        "parameters": params,
        "non_embedding_parameters": params - embedding - lm_head,
        "train_flops_per_token": training_flops(cfg) / cfg.context_length,
        "tokens_per_step": train_config.tokens_per_step_per_rank,
    }


def describe_plan(job, assumed_mfu: float = 0.4, device_name: str = "H100 SXM") -> str:
    """What ``--dry-run`` prints: the resolved options and the accounting behind the sizing."""
    plan = compute_plan(job.train)
    budget = job.train.budget_seconds
    lines = [f"preset {job.preset}; budget {format_duration(budget)}; run folder {job.out_dir}", ""]
    lines += [f"  {k} = {v!r}" for k, v in flat_items(_as_dict(job.options))]
    lines += [f"  {k} = {v!r}" for k, v in flat_items(job.train.to_dict())]
    lines += ["", f"parameters {plan['parameters']:,} ({plan['non_embedding_parameters']:,} non-embedding)",
              f"training FLOPs per token {plan['train_flops_per_token']:.3g} (forward + backward, model.accounting)",
              f"tokens per optimizer step {plan['tokens_per_step']:,}"]
    peak = peak_flops(device_name)
    if peak:
        tokens_per_s = assumed_mfu * peak / plan["train_flops_per_token"]
        tokens = tokens_per_s * budget
        lines += [f"at {assumed_mfu:.0%} MFU on an {device_name} ({peak / 1e12:.0f} TFLOP/s bf16 dense): "
                  f"{tokens_per_s:,.0f} tokens/s, {tokens:.3g} tokens in the budget = "
                  f"{tokens / plan['parameters']:.1f} tokens per parameter "
                  f"(compute-optimal is about 20), {tokens / plan['tokens_per_step']:,.0f} steps"]
    return "\n".join(lines)


def _as_dict(obj) -> dict:
    import dataclasses

    return dataclasses.asdict(obj) if dataclasses.is_dataclass(obj) else dict(obj)


def build_report(job, train, data, summary: dict, final: dict, entropy: float, samples: list[dict],
                 timings: dict) -> dict:
    """The report of a leaderboard run as a JSON-ready dict (report.json)."""
    from util.runinfo import run_metadata

    plan = compute_plan(train)
    metadata = run_metadata()
    tokens_per_s = summary.get("tokens_per_s") or 0.0
    on_gpu = str(summary.get("device", "")).startswith("cuda")
    flat = dict(flat_items(train.to_dict()))
    return {
        "preset": job.preset,
        "status": summary.get("status"),
        "final_val_loss": final["val_loss"],
        "val_unigram_entropy": entropy,
        "val_loss_below_unigram_entropy": entropy - final["val_loss"],
        "val_tokens": final["val_tokens"],
        "last_periodic_val_loss": summary.get("final_val_loss"),
        "final_train_loss": summary.get("final_train_loss"),
        "tokens_seen": summary.get("tokens"),
        "steps": summary.get("steps"),
        "budget_seconds": train.budget_seconds,
        "training_seconds": summary.get("train_seconds"),
        "tokens_per_second": tokens_per_s,
        "mfu": model_flops_utilization(plan["train_flops_per_token"], tokens_per_s, metadata["device"]) if on_gpu else None,
        **plan,
        "timings_seconds": {"training": summary.get("train_seconds"), "periodic_eval_and_checkpoints": summary.get("eval_seconds"), **timings},
        "improvements": {key: flat.get(key) for key in IMPROVEMENT_FLAGS},
        "data": data.to_dict(),
        "options": _as_dict(job.options),
        "config": train.to_dict(),
        "flags": job.flags,
        "samples": samples,
        "device": metadata["device"],
        "metadata": metadata,
    }


def render_report(report: dict) -> str:
    """report.md: headline figures, the curve, improvements, data, samples, config, provenance."""
    timings = report["timings_seconds"]
    headline = [
        {"what": "final validation loss (whole val set, nats/token)", "value": report["final_val_loss"]},
        {"what": "unigram entropy of the val set (nats/token)", "value": report["val_unigram_entropy"]},
        {"what": "validation tokens evaluated", "value": report["val_tokens"]},
        {"what": "tokens seen in training", "value": report["tokens_seen"]},
        {"what": "optimizer steps", "value": report["steps"]},
        {"what": "training time / budget", "value": f"{format_duration(report['training_seconds'] or 0)} / {format_duration(report['budget_seconds'])}"},
        {"what": "whole command wall-clock", "value": format_duration(timings["total"])},
        {"what": "throughput (tokens/s)", "value": report["tokens_per_second"]},
        {"what": "MFU (model FLOPs / bf16 peak)", "value": f"{report['mfu']:.1%}" if report["mfu"] else "— (no GPU)"},
        {"what": "parameters (non-embedding)", "value": f"{report['parameters']:,} ({report['non_embedding_parameters']:,})"},
        {"what": "device", "value": report["device"]},
    ]
    improvements = [{"flag": f"--{k}", "value": v, "what": IMPROVEMENT_FLAGS[k]} for k, v in report["improvements"].items()]
    data = [{"key": k, "value": v} for k, v in report["data"].items()]
    meta = report["metadata"]
    parts = [
        f"# Leaderboard run ({report['preset']} preset)", "",
        f"Status: **{report['status']}**. Final validation loss **{report['final_val_loss']:.4f}** vs unigram "
        f"entropy {report['val_unigram_entropy']:.4f} of the same tokens "
        f"({report['val_loss_below_unigram_entropy']:+.3f} nats below).", "",
        markdown_table(headline, ["what", "value"]), "",
        "![validation loss against minutes](val_loss_vs_minutes.png)", "",
        "## Options of the recipe", "", markdown_table(improvements, ["flag", "value", "what"]), "",
        "## Data", "", markdown_table(data, ["key", "value"]), "",
        "## Samples", "",
    ]
    for sample in report["samples"]:
        parts += [f"**Prompt** `{sample['prompt']!r}` (temperature {sample['temperature']}, top-p {sample['top_p']}):", "",
                  "> " + sample["text"].replace("\n", "\n> "), ""]
    flags = [{"flag": k, "value": v} for k, v in report["flags"].items()]
    config = [{"key": k, "value": v} for k, v in flat_items(report["config"])]
    options = [{"key": k, "value": v} for k, v in report["options"].items()]
    parts += [
        "## Command and flags", "", f"`{meta['command']}`", "", markdown_table(flags, ["flag", "value"]), "",
        "## Leaderboard options", "", markdown_table(options, ["key", "value"]), "",
        "## Training configuration", "", markdown_table(config, ["key", "value"]), "",
        "## Provenance", "",
        markdown_table([{"key": "git SHA", "value": meta["git_sha"]}, {"key": "date", "value": meta["date"]},
                        {"key": "host", "value": meta["host"]}, {"key": "platform", "value": meta["platform"]},
                        *({"key": k, "value": v} for k, v in meta["versions"].items())], ["key", "value"]), "",
    ]
    return "\n".join(parts)


def write_run_report(run_dir: str | os.PathLike, report: dict, metrics: Sequence[dict]) -> None:
    """report.json, report.md, samples.md and val_loss_vs_minutes.png in the run folder."""
    run_dir = Path(run_dir)
    write_json_atomic(run_dir / "report.json", report)
    write_text_atomic(run_dir / "report.md", render_report(report))
    write_text_atomic(run_dir / "samples.md", "\n\n".join(f"## {s['prompt']!r}\n\n{s['text']}" for s in report["samples"]) + "\n")
    final = [{"elapsed_s": report["training_seconds"] or 0.0, "val_loss": report["final_val_loss"]}]
    plot_val_loss_vs_minutes(
        [*metrics], run_dir / "val_loss_vs_minutes.png",
        f"{report['preset']} preset: final val loss {report['final_val_loss']:.3f} (whole val set)",
        {"unigram entropy of val set": report["val_unigram_entropy"], "final val loss (whole set)": final[0]["val_loss"]},
    )
