"""``report.md`` of an evidence folder, made from its records (the plots are in ``plots.py``).

What went wrong is shown first and plainly: failed stages and plots (with their tracebacks), and
ops that failed or were skipped by the gate, whose Triton rows say they were not timed.
"""

from __future__ import annotations

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
    end = next(iter(ev.of("run", "end")), None)
    lines += ["## Stages", "", f"Run completed in {end['seconds']:.0f} s of a {ev.budget_seconds:.0f}-second budget."
              if end else "Run in progress (or killed): what is below is what had finished.", ""]
    lines += _table(["stage", "time box (s)", "took (s)", "status", "note"],
                    [[name, s.get("box_seconds"), s.get("seconds", "-"),
                      f"**{s['status'].upper()}**" if s["status"] == "failed" else s["status"],
                      _cell(s.get("note", ""))] for name, s in ev.stages.items()])
    lines += _problems_section(ev) + _gate_section(ev) + _kernel_section(ev) + _training_section(ev)
    return "\n".join(lines + _leaderboard_section(ev))


def _cell(text) -> str:
    """Text that cannot break a Markdown table row."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def _not_passed(ev: Evidence) -> list[dict]:
    return [v for v in ev.of("gate", "verdict") if v["status"] != "passed"]


def _problems_section(ev: Evidence) -> list[str]:
    """Failed stages and plots with their tracebacks, and the ops the gate did not pass."""
    problems, ops = ev.of("run", "problem"), _not_passed(ev)
    if not problems and not ops:
        return []
    lines = ["## Problems", ""]
    lines += [f"- op **{v['op']}** {v['status'].upper()} the correctness gate: {v['note']}; its Triton kernels "
              "were not timed" for v in ops]
    for p in problems:
        lines += [f"- {p['where']}: `{p['error']}`", "", "```", p["traceback"].rstrip(), "```"]
    return lines + [""]


def _gate_section(ev: Evidence) -> list[str]:
    verdicts, checks = ev.of("gate", "verdict"), ev.of("gate", "check")
    if not verdicts and not checks:
        return []
    lines = ["## Correctness gate", "",
             "Each op is checked in a process of its own (a crash or a hang ends only that op): Triton",
             "against the torch built-in computed in float32 on the same rounded inputs, forward and every",
             "input gradient, max |difference| / max |reference|. Only ops that pass are timed.", ""]
    status = {"passed": "pass", "failed": "**FAILED**", "skipped": "**SKIPPED**"}
    lines += _table(["op", "verdict", "checks passed", "s", "exit code", "note"],
                    [[v["op"], status[v["status"]], f"{v['checks_passed']} / {v['checks_planned']}", v["seconds"],
                      "timed out" if v["timed_out"] else _fmt(v["exit_code"]), _cell(v["note"])] for v in verdicts])
    rows = [[c["op"], c["case"], c["dtype"], "pass" if c["passed"] else "**FAIL**",
             ", ".join(f"{k} {v:.1e}" for k, v in c["errors"].items()) or _cell(c["note"]), f"{c['tolerance']:.0e}"]
            for c in checks]
    lines += _table(["op", "case", "dtype", "result", "max relative error", "tolerance"], rows)
    for v in (v for v in verdicts if v.get("log_tail")):
        lines += [f"End of the {v['op']} check's output (`{v['log']}`):", "", "```", v["log_tail"].rstrip(), "```", ""]
    return lines


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
            ms = "**not timed**" if r["ms"] is None and r["note"].startswith("left out") else _fmt(r["ms"], 3)
            body.append([r["case"], r["direction"], r["provider"], ms, rate, _fmt(r["peak_mib"], 0),
                         _fmt(r["speedup_vs_best_peer"]), _cell(r["note"])])
        lines += _table(["case", "dir", "provider", "ms", "rate", "MiB", "x best peer", "note"], body)
    return lines + _warmup_section(ev)


def _warmup_section(ev: Evidence) -> list[str]:
    """Compilation and autotuning time, per case and provider: one untimed fwd+bwd call each."""
    warmups = ev.of("kernels", "warmup")
    if not warmups:
        return []
    body = [[w["op"], w["case"], w["provider"], _fmt(w["seconds"], 2), _cell(w["note"])] for w in warmups]
    return ["### Warm-up (compilation and autotuning, never timed)", "",
            "One forward and backward of each provider before its timings, synchronized: Triton's JIT and",
            "autotuning, torch.compile's tracing and code generation (compiled afresh for each shape).", ""
            ] + _table(["op", "case", "provider", "warm-up s", "note"], body)


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
    lines += _gradient_lines(ev)
    profile = next(iter(ev.of("training", "profile")), None)
    if profile and profile.get("error"):
        lines += [f"The profile of the compiled Triton variant failed: `{profile['error']}`", ""]
    elif profile:
        lines += ["Top kernels of the compiled Triton variant (torch.profiler, 3 steps):", "", "```",
                  profile["table"].rstrip(), "```", ""]
    return lines


def _gradient_lines(ev: Evidence) -> list[str]:
    checks = ev.of("training", "gradients")
    if not checks:
        return []
    def sci(value):
        return "-" if value is None else f"{value:.1e}"
    body = [[c["kernels"], _fmt(c.get("agrees")), sci(c.get("worst_relative_error")), c.get("worst_parameter", ""),
             sci(c.get("tolerance")), _cell(c.get("error", ""))] for c in checks]
    return (["Compiled gradients against eager ones, same weights and batch (worst parameter, relative error "
             "in norm):", ""]
            + _table(["kernels", "agrees", "worst rel. error", "parameter", "tolerance", "error"], body))


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
