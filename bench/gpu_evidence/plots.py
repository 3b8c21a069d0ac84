"""The PNG plots of an evidence folder, redrawn after every stage from what has been measured.

Each plot is drawn on its own: one that raises is recorded as a problem of the run (and printed)
and the others are still drawn. An op that failed or was skipped by the correctness gate appears
in the speed-up plot as an empty bar marked "not timed", never as a missing line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from .record import Evidence


def _not_timed_label(note: str) -> str:
    """Why a Triton row has no time, in a few words, from the note the kernel stage gave it."""
    if "FAILED" in note:
        return "not timed: gate FAILED"
    if "SKIPPED" in note:
        return "not timed: gate SKIPPED"
    return "not timed: not checked by the gate"


def speedup_entries(rows: list[dict]) -> list[tuple[str, float | None, str]]:
    """(label, Triton's speed-up over the best peer or None, annotation) per bar: one per timed
    Triton row, and one per case whose Triton provider was left out by the gate."""
    entries, seen = [], set()
    for r in (r for r in rows if r["provider"] == "triton"):
        if r["speedup_vs_best_peer"]:
            entries.append((f"{r['op']} {r['case']} {r['direction']}", r["speedup_vs_best_peer"], ""))
        elif r["ms"] is None and r["note"].startswith("left out") and (r["op"], r["case"]) not in seen:
            seen.add((r["op"], r["case"]))
            entries.append((f"{r['op']} {r['case']}", None, _not_timed_label(r["note"])))
    return entries


def speedup_plot(ev: Evidence, plt) -> Path | None:
    """Bars of Triton's speed-up over the best peer per case and direction (green: faster)."""
    from bench.common import device_name
    from tritonlm.util.plotting import save_figure

    entries = speedup_entries(ev.of("kernels", "measurement"))
    if not entries:
        return None
    fig, ax = plt.subplots(figsize=(10, max(3, 0.28 * len(entries))))
    values = [value or 0.0 for _, value, _ in entries]
    colors = ["tab:green" if (v or 0) >= 1 else "tab:red" for _, v, _ in entries]
    ax.barh([label for label, _, _ in entries], values, color=colors)
    for y, (_, value, note) in enumerate(entries):
        if value is None:
            ax.text(0.02, y, note, va="center", color="tab:red", fontweight="bold",
                    transform=ax.get_yaxis_transform())
    ax.axvline(1.0, color="black", lw=1)
    ax.set_xlabel("speed-up of Triton over the best peer (x)")
    ax.set_title(f"tritonlm kernels on {device_name()}")
    ax.invert_yaxis()
    return save_figure(fig, ev.out / "kernel_speedups.png")


def attention_plot(ev: Evidence, plt) -> Path | None:
    """Attention TFLOP/s (fwd+bwd, causal) per provider and case; says so when Triton was left out."""
    from tritonlm.util.plotting import save_figure

    rows = [r for r in ev.of("kernels", "measurement") if r["op"] == "attention" and r["direction"] == "fwd+bwd"]
    timed = [r for r in rows if r["tflops"]]
    if not timed:
        return None
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for provider in dict.fromkeys(r["provider"] for r in timed):
        mine = [r for r in timed if r["provider"] == provider]
        ax.plot([r["case"] for r in mine], [r["tflops"] for r in mine], marker="o", label=provider)
    left_out = next((r["note"] for r in rows if r["provider"] == "triton" and r["note"].startswith("left out")), None)
    if left_out:
        ax.set_title(f"triton {_not_timed_label(left_out)}", color="tab:red")
    ax.set_ylabel("TFLOP/s (fwd+bwd, causal)")
    ax.tick_params(axis="x", rotation=30)
    ax.legend()
    return save_figure(fig, ev.out / "attention_tflops.png")


def training_plot(ev: Evidence, plt) -> Path | None:
    """Training tokens/s per variant (kernels x eager/compiled)."""
    from tritonlm.util.plotting import save_figure

    training = [r for r in ev.of("training", "throughput") if r.get("tokens_per_s")]
    if not training:
        return None
    fig, ax = plt.subplots(figsize=(6, 3.5))
    labels = [f"{r['kernels']}\n{'compiled' if r['compiled'] else 'eager'}" for r in training]
    ax.bar(labels, [r["tokens_per_s"] for r in training], color="tab:blue")
    ax.set_ylabel("tokens/s")
    ax.set_title("training throughput, h100 preset model")
    return save_figure(fig, ev.out / "training_throughput.png")


PLOTS: dict[str, Callable] = {"kernel speed-ups": speedup_plot, "attention TFLOP/s": attention_plot,
                              "training throughput": training_plot}


def write_plots(ev: Evidence, plots: dict[str, Callable] | None = None) -> list[Path]:
    """Draw every plot that has data so far; a plot that raises is recorded (``ev.problem``) and
    printed, and the others are drawn all the same. Returns the files written."""
    written = []
    try:
        from tritonlm.util.plotting import pyplot

        plt = pyplot()
    except Exception as e:  # no matplotlib: no plots, everything else stands
        _report(ev, "plots (matplotlib)", e)
        return written
    for name, draw in (plots or PLOTS).items():
        try:
            path = draw(ev, plt)
        except Exception as e:
            plt.close("all")
            _report(ev, f"plot {name}", e)
            continue
        if path is not None:
            written.append(path)
    return written


def _report(ev: Evidence, where: str, error: Exception) -> None:
    if ev.problem(where, error) is not None:
        print(f"{where} FAILED: {type(error).__name__}: {error}", flush=True)
