"""``report.md`` and the plots of an evidence folder, made from its records."""

from __future__ import annotations

from pathlib import Path

from .record import Evidence

MEMORY_BOUND = ("rmsnorm", "softmax", "cross_entropy")


def _fmt(value, digits: int = 2, pct: bool = False) -> str:
    if value is None or value == "":
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (int, float)):
        return f"{100 * value:.0f}%" if pct else (f"{value:,.{digits}f}" if isinstance(value, float) else f"{value:,}")
    return str(value)


def _table(headers: list[str], rows: list[list]) -> list[str]:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return lines + [""]


def render(ev: Evidence) -> str:
    lines = ["# Kernel evidence", ""]
    env = next(iter(ev.of("environment", "environment")), None)
    if ev.smoke:
        lines += ["**Smoke run**: tiny shapes on the CPU under Triton's interpreter. It checks that every stage",
                  "runs; its timings say nothing about GPU speed.", ""]
    if env:
        meta = env["metadata"]
        lines += [f"- device: {env['device']}" + (f", driver {env.get('driver')}, CUDA {env.get('cuda')}"
                                                 if env.get("driver") else ""),
                  f"- torch {meta['versions'].get('torch')}, triton {meta['versions'].get('triton')}, "
                  f"git {meta['git_sha']}, {meta['date']}",
                  f"- command: `{meta['command']}`",
                  f"- measured copy bandwidth: {_fmt(env['copy_bandwidth_gbs'], 0)} GB/s; data-sheet peaks: "
                  f"{_fmt(env['peaks'].get('bf16_tflops'), 0)} bf16 TFLOP/s, {_fmt(env['peaks'].get('hbm_gbs'), 0)} GB/s",
                  ""]
    lines += ["## Stages", ""]
    lines += _table(["stage", "time box (s)", "took (s)", "status", "note"],
                    [[name, s.get("box_seconds"), s.get("seconds", "-"), s["status"], s.get("note", "")]
                     for name, s in ev.stages.items()])
    lines += _gate_section(ev) + _kernel_section(ev) + _training_section(ev) + _leaderboard_section(ev)
    return "\n".join(lines)


def _gate_section(ev: Evidence) -> list[str]:
    checks = ev.of("gate", "check")
    if not checks:
        return []
    rows = [[c["op"], c["case"], c["dtype"], "pass" if c["passed"] else "**FAIL**",
             ", ".join(f"{k} {v:.1e}" for k, v in c["errors"].items()) or c["note"], f"{c['tolerance']:.0e}"]
            for c in checks]
    return ["## Correctness gate", "",
            "Triton against the torch built-in computed in float32 on the same rounded inputs, forward",
            "and every input gradient: max |difference| / max |reference|. An op that fails is left out",
            "of the timings.", ""] + _table(["op", "case", "dtype", "result", "max relative error", "tolerance"], rows)


def _kernel_section(ev: Evidence) -> list[str]:
    rows = ev.of("kernels", "measurement")
    if not rows:
        return []
    lines = ["## Kernels (bf16)", "",
             "ms: median time (CUDA events, L2 flushed). GB/s: minimum bytes moved / time, and its fraction",
             "of the measured copy bandwidth (memory-bound ops). TFLOP/s: useful FLOPs / time, and its fraction",
             "of the dense bf16 peak (attention, fused LM head). MiB: peak extra memory of fwd+bwd. x best peer:",
             "the fastest other provider's time / this time (> 1: faster than every peer).", ""]
    for op in dict.fromkeys(r["op"] for r in rows):
        lines += [f"### {op}", ""]
        body = []
        for r in (r for r in rows if r["op"] == op):
            rate = (f"{_fmt(r['gbs'], 0)} GB/s ({_fmt(r['fraction_of_copy_bandwidth'], pct=True)})" if r["gbs"]
                    else f"{_fmt(r['tflops'], 1)} TFLOP/s ({_fmt(r['fraction_of_peak_flops'], pct=True)})"
                    if r["tflops"] else "-")
            body.append([r["case"], r["direction"], r["provider"], _fmt(r["ms"], 3), rate, _fmt(r["peak_mib"], 0),
                         _fmt(r["speedup_vs_best_peer"]), r["note"]])
        lines += _table(["case", "dir", "provider", "ms", "rate", "MiB", "x best peer", "note"], body)
    return lines


def _training_section(ev: Evidence) -> list[str]:
    rows = ev.of("training", "throughput")
    if not rows:
        return []
    body = [[r["kernels"], _fmt(r["compiled"]), _fmt(r.get("tokens_per_s"), 0), _fmt(r.get("mfu"), pct=True),
             _fmt(r.get("step_ms"), 1), _fmt(r.get("warmup_seconds"), 1), r.get("note", "")] for r in rows]
    lines = ["## Training throughput (h100 preset model)", ""]
    if rows and rows[0].get("batch"):
        lines += [f"Batch {rows[0]['batch']} x context {rows[0]['context']}, {rows[0]['dtype']}, one step = forward, "
                  "backward, clipping, AdamW. MFU: model FLOPs (model.accounting) / dense bf16 peak.", ""]
    lines += _table(["kernels", "compiled", "tokens/s", "MFU", "step ms", "warm-up s", "note"], body)
    profile = next(iter(ev.of("training", "profile")), None)
    if profile:
        lines += ["Top kernels of the compiled Triton variant (torch.profiler, 3 steps):", "", "```",
                  profile["table"].rstrip(), "```", ""]
    return lines


def _leaderboard_section(ev: Evidence) -> list[str]:
    run = next(iter(ev.of("leaderboard", "run")), None)
    if not run:
        return []
    lines = ["## Leaderboard run (h100 preset, built-in corpus)", "", f"`{run['command']}`: {run['status']}", ""]
    report = run.get("report")
    if report:
        lines += _table(["final val loss", "unigram entropy", "tokens/s", "MFU", "steps", "report"],
                        [[_fmt(report.get("final_val_loss"), 3), _fmt(report.get("val_unigram_entropy"), 3),
                          _fmt(report.get("tokens_per_second"), 0), _fmt(report.get("mfu"), pct=True),
                          _fmt(report.get("steps")), report["path"]]])
    else:
        lines += [f"No report was written (see {run['log']}).", ""]
    return lines


def write_plots(ev: Evidence) -> list[Path]:
    """Triton's speed-up over the best peer per case, attention TFLOP/s per provider, and
    training tokens/s per variant (PNG, whatever has been measured so far)."""
    from bench.common import plot_speedups
    from tritonlm.util.plotting import pyplot, save_figure

    plt = pyplot()

    written = []
    rows = ev.of("kernels", "measurement")
    if any(r["provider"] == "triton" and r["speedup_vs_best_peer"] for r in rows):
        written.append(plot_speedups(rows, ev.out / "kernel_speedups.png"))
    attention = [r for r in rows if r["op"] == "attention" and r["direction"] == "fwd+bwd" and r["tflops"]]
    if attention:
        fig, ax = plt.subplots(figsize=(8, 4.5))
        for provider in dict.fromkeys(r["provider"] for r in attention):
            mine = [r for r in attention if r["provider"] == provider]
            ax.plot([r["case"] for r in mine], [r["tflops"] for r in mine], marker="o", label=provider)
        ax.set_ylabel("TFLOP/s (fwd+bwd, causal)")
        ax.tick_params(axis="x", rotation=30)
        ax.legend()
        written.append(save_figure(fig, ev.out / "attention_tflops.png"))
    training = [r for r in ev.of("training", "throughput") if r.get("tokens_per_s")]
    if training:
        fig, ax = plt.subplots(figsize=(6, 3.5))
        labels = [f"{r['kernels']}\n{'compiled' if r['compiled'] else 'eager'}" for r in training]
        ax.bar(labels, [r["tokens_per_s"] for r in training], color="tab:blue")
        ax.set_ylabel("tokens/s")
        ax.set_title("training throughput, h100 preset model")
        written.append(save_figure(fig, ev.out / "training_throughput.png"))
    return written
