"""Repeated runs: every setting of a sweep at several seeds, reduced to its mean and spread.

A sweep answers its question (which learning rate, which architecture) only where the difference
between two settings is larger than the run-to-run spread of each. ``with_seeds`` repeats every
run at n seeds (the first keeps the run's own name, so a sweep made with one seed grows in
place), and ``seed_groups`` turns the results into one row per setting: the mean, the sample
standard deviation, the minimum and the maximum of its headline loss over the seeds that
completed, whether its range overlaps the best setting's, its steps and its median throughput.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
from typing import Sequence

from tritonlm.train.presentation import markdown_table

GROUP_COLUMNS = ["group", "completed", "mean", "std", "min", "max", "gap_to_best", "overlaps_best"]
GROUP_HEADERS = ["setting", "seeds completed", "mean val loss", "std", "min", "max", "mean − best mean",
                 "range overlaps the best's"]


def with_seeds(runs: Sequence, seeds: int, first_seed: int = 0) -> list:
    """Each run of ``runs`` (``RunSpec``s) at seeds ``first_seed`` .. ``first_seed + seeds - 1``
    (the sweep's own seed first), grouped under the run's label."""
    if seeds < 1:
        raise ValueError(f"--seeds must be at least 1, got {seeds}")
    repeated = []
    for spec in runs:
        for k in range(seeds):
            seed = first_seed + k
            name = spec.name if k == 0 else f"{spec.name},seed={seed}"
            label = spec.label if seeds == 1 else f"{spec.label}, seed {seed}"
            overrides = spec.overrides if k == 0 else {**spec.overrides, "seed": seed}
            repeated.append(dataclasses.replace(spec, name=name, label=label, overrides=overrides,
                                                group=spec.group or spec.label))
    return repeated


def headline_loss(result: dict) -> float | None:
    """The loss a run is judged by: on the whole validation set when it was measured there,
    else the last periodic evaluation."""
    value = result.get("full_val_loss")
    return value if value is not None else result.get("final_val_loss")


def setting_of(result: dict) -> str:
    """The setting a run's result belongs to: its group, shared by its seeds (a result recorded
    before seeds existed has only its label)."""
    return result.get("group") or result["label"]


def seed_groups(results: Sequence[dict]) -> list[dict]:
    """One row per setting (in the sweep's order) over its completed seeds."""
    order: dict[str, list[dict]] = {}
    for r in results:
        order.setdefault(setting_of(r), []).append(r)
    rows = []
    for group, members in order.items():
        completed = [r for r in members if r["status"] == "completed"]
        losses = [headline_loss(r) for r in completed]
        losses = [v for v in losses if v is not None and math.isfinite(v)]
        rates = [r["tokens_per_s"] for r in members if r.get("tokens_per_s")]
        rows.append({
            "group": group, "runs": len(members), "completed": f"{len(losses)} of {len(members)}",
            "mean": statistics.fmean(losses) if losses else None,
            "std": statistics.stdev(losses) if len(losses) > 1 else None,
            "min": min(losses) if losses else None, "max": max(losses) if losses else None,
            "steps": (completed or members)[0].get("steps"),  # a diverged seed stops early: a completed one's count
            "tokens_per_s": statistics.median(rates) if rates else None,  # one slow neighbour moves no median
        })
    _compare_with_best(rows)
    return rows


def _compare_with_best(rows: list[dict]) -> None:
    """Each row's distance to the best mean, and whether its [min, max] overlaps the best's."""
    scored = [r for r in rows if r["mean"] is not None]
    if not scored:
        return
    best = min(scored, key=lambda r: r["mean"])
    for r in scored:
        r["gap_to_best"] = r["mean"] - best["mean"]
        r["overlaps_best"] = r["min"] <= best["max"] and best["min"] <= r["max"]


def groups_table(results: Sequence[dict]) -> str:
    """The Markdown table of ``seed_groups``."""
    return markdown_table(seed_groups(results), GROUP_COLUMNS, GROUP_HEADERS)


def mean_curves(curves: dict[str, tuple[list[float], list[float]]], groups: dict[str, str],
                failed: set[str] = frozenset()) -> dict[str, tuple[list[float], list[float]]]:
    """Validation curves averaged over the seeds of each group (``groups``: run label -> group),
    where the seeds were evaluated at the same points; otherwise the group's first seed. The
    label counts the runs in ``failed`` (diverged or crashed) that the mean includes."""
    members: dict[str, list[tuple[str, tuple[list[float], list[float]]]]] = {}
    for label, curve in curves.items():
        members.setdefault(groups.get(label, label), []).append((label, curve))
    averaged = {}
    for group, runs in members.items():
        xs = runs[0][1][0]
        if len(runs) > 1 and all(x == xs for _, (x, _) in runs):
            bad = sum(label in failed for label, _ in runs)
            name = f"{group} (mean of {len(runs)} seeds" + (f", {bad} diverged or crashed" if bad else "") + ")"
            averaged[name] = (xs, [statistics.fmean(v) for v in zip(*(y for _, (_, y) in runs))])
        else:
            averaged[group] = runs[0][1]
    return averaged
