"""How an ablation's gap to the baseline changes with training: the measured side of "why does
our gap differ from the published one".

For a step-based ablation sweep run at several seeds, each ablation run is paired with the
baseline run of the same seed (same initialisation of the shared weights, same batches), and
their validation losses are subtracted at every periodic evaluation (same step, same tokens)
and on the whole validation set at the end. Per ablation: the mean and standard deviation of
the paired gap over seeds, along training and at the end. A gap that shrinks as tokens grow
says that part of a short run's gap is speed of learning, not capacity, which is what separates
a few-hundred-step ablation from a published one at billions of tokens.

Writes ``gaps.json``, ``gaps.md`` and ``gaps.png`` into the sweep folder.
"""

from __future__ import annotations

import math
import statistics
from pathlib import Path

from tritonlm.train.metrics_log import read_metrics
from tritonlm.train.experiments.seeds import setting_of
from tritonlm.train.presentation import markdown_table
from tritonlm.util.atomic import write_json_atomic, write_text_atomic
from tritonlm.util.plotting import pyplot, save_figure

FRACTIONS = (0.25, 0.5, 1.0)  # points of training the table reports (of the evaluations' tokens)
COLUMNS = ["group", "seeds", *(f"at_{int(f * 100)}" for f in FRACTIONS), "final_mean", "final_std"]
HEADERS = ["ablation", "seed pairs", *(f"gap at {int(f * 100)}% of tokens" for f in FRACTIONS),
           "gap, whole val set (mean)", "std over seeds"]


def val_points(metrics: list[dict]) -> tuple[list[int], list[float]]:
    """(tokens seen, val loss) of every finite periodic evaluation of a run."""
    points = [(m["tokens"], m["val_loss"]) for m in metrics
              if m.get("kind") == "val" and m.get("val_loss") is not None and math.isfinite(m["val_loss"])]
    return [t for t, _ in points], [v for _, v in points]


def _seed(result: dict, base_seed: int) -> int:
    return result.get("overrides", {}).get("seed", base_seed)


def _mean_std(values: list[float]) -> tuple[float | None, float | None]:
    if not values:
        return None, None
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else None


def paired_gaps(curves: dict[str, dict[int, tuple[list, list]]], finals: dict[str, dict[int, float]],
                baseline: str) -> list[dict]:
    """Per group other than ``baseline``: the gap curve (mean and std over seed pairs, at the
    evaluation points both runs of a pair share) and the final whole-set gap.

    ``curves``: group -> seed -> (tokens, val losses); ``finals``: group -> seed -> final loss."""
    rows = []
    for group, by_seed in curves.items():
        if group == baseline:
            continue
        pairs = [s for s in by_seed if s in curves[baseline]]
        gaps_at: dict[float, list[float]] = {}
        for s in pairs:
            base = dict(zip(*curves[baseline][s]))
            for tokens, loss in zip(*by_seed[s]):
                if tokens in base:
                    gaps_at.setdefault(tokens, []).append(loss - base[tokens])
        points = sorted(t for t, g in gaps_at.items() if len(g) == len(pairs))  # every pair evaluated there
        final = [finals[group][s] - finals[baseline][s] for s in pairs
                 if s in finals.get(group, {}) and s in finals.get(baseline, {})]
        final_mean, final_std = _mean_std(final)
        rows.append({"group": group, "seeds": len(pairs), "tokens": points,
                     "mean": [statistics.fmean(gaps_at[t]) for t in points],
                     "std": [statistics.stdev(gaps_at[t]) if len(gaps_at[t]) > 1 else None for t in points],
                     "final_gaps": final, "final_mean": final_mean, "final_std": final_std})
    for row in rows:
        for fraction in FRACTIONS:
            row[f"at_{int(fraction * 100)}"] = _at_fraction(row, fraction)
    return rows


def _at_fraction(row: dict, fraction: float) -> float | None:
    """The mean gap at the first evaluation at or after ``fraction`` of the last one's tokens."""
    if not row["tokens"]:
        return None
    target = fraction * row["tokens"][-1]
    i = next(i for i, t in enumerate(row["tokens"]) if t >= target)
    return row["mean"][i]


def write_gaps(out_dir: Path, run_dirs: dict[str, Path], results: list[dict], base_seed: int, title: str) -> list[dict]:
    """``gaps.json``/``.md``/``.png`` of a finished ablation sweep (the baseline is its first
    group); ``run_dirs``: run name -> folder. Runs that did not complete are left out."""
    curves: dict[str, dict[int, tuple[list, list]]] = {}
    finals: dict[str, dict[int, float]] = {}
    for r in results:
        if r["status"] != "completed":
            continue
        group, seed = setting_of(r), _seed(r, base_seed)
        metrics = read_metrics(run_dirs[r["name"]] / "metrics.jsonl")
        curves.setdefault(group, {})[seed] = val_points(metrics)
        if r.get("full_val_loss") is not None:
            finals.setdefault(group, {})[seed] = r["full_val_loss"]
    baseline = setting_of(results[0])
    if baseline not in curves:
        return []
    rows = paired_gaps(curves, finals, baseline)
    write_json_atomic(out_dir / "gaps.json", {"title": title, "baseline": baseline, "groups": rows})
    table = markdown_table(rows, COLUMNS, HEADERS)
    write_text_atomic(out_dir / "gaps.md", f"### Gap to the baseline over training ({baseline})\n\n"
                      "Each ablation's validation loss minus the baseline's of the same seed, at the same tokens, "
                      "averaged over seed pairs.\n\n" + table + "\n\n![gap to the baseline](gaps.png)\n")
    _plot(rows, out_dir / "gaps.png", f"{title}: gap to {baseline}")
    return rows


def _plot(rows: list[dict], out: Path, title: str) -> Path:
    fig, ax = pyplot().subplots(figsize=(7.5, 4.5))
    for i, row in enumerate(rows):
        x = [t / 1e6 for t in row["tokens"]]
        ax.plot(x, row["mean"], "o-", ms=2.5, lw=1.2, color=f"C{i}", label=row["group"])
        spread = [(m - s, m + s) for m, s in zip(row["mean"], row["std"]) if s is not None]
        if len(spread) == len(x):
            ax.fill_between(x, *zip(*spread), color=f"C{i}", alpha=0.15)
    ax.axhline(0.0, color="black", lw=0.8)
    ax.set_xlabel("tokens seen (millions)")
    ax.set_ylabel("val loss minus baseline's (nats/token)")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return save_figure(fig, out, dpi=110)
