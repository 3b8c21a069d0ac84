"""CLI of the evidence command (see the package docstring)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

from .plan import (STAGES, parse_injections, prepare_process_environment, remaining_box, seconds_since_process_start,
                   stage_boxes)
from .record import Evidence, run_stage


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.gpu_evidence", description=__doc__)
    parser.add_argument("--out", required=True, type=Path, help="folder for the evidence (created)")
    parser.add_argument("--smoke", action="store_true", help="tiny shapes and short boxes (CPU rehearsal)")
    parser.add_argument("--budget", type=float, default=None,
                        help="seconds for the whole run, counted from process start (default 480; smoke 110)")
    parser.add_argument("--stages", default=",".join(STAGES), help=f"comma-separated subset of {','.join(STAGES)}")
    parser.add_argument("--leaderboard-seconds", type=float, default=None,
                        help="training budget of the leaderboard run (default 90; smoke 4)")
    parser.add_argument("--inject-failure", action="append", default=[], metavar="OP|stage:NAME",
                        help="rehearsal aid (repeatable): make OP's gate check process crash hard after its "
                             "first check, or make stage NAME raise once it has started; the run must report "
                             "it and go on")
    args = parser.parse_args(argv)
    args.stages = [s.strip() for s in args.stages.split(",") if s.strip()]
    unknown = sorted(set(args.stages) - set(STAGES))
    if unknown:
        parser.error(f"unknown stage(s) {', '.join(unknown)}; choose from {', '.join(STAGES)}")
    if not args.smoke and not torch.cuda.is_available():
        parser.error("no CUDA GPU is visible: the evidence needs one (use --smoke to rehearse on the CPU)")
    if args.budget is not None and args.budget <= 0:
        parser.error(f"--budget must be positive, got {args.budget}")
    try:
        args.crash_ops, args.raise_stages = parse_injections(args.inject_failure)
    except ValueError as e:
        parser.error(str(e))
    return args


class Run:
    """The state the stages hand on to each other, and one method per stage. Each method imports
    what its stage needs, so that even an import that fails is a failure of that stage only."""

    def __init__(self, ev: Evidence, args: argparse.Namespace):
        self.ev, self.args = ev, args
        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        self.copy_gbs = 0.0
        self.verdicts: dict[str, dict] = {}  # op -> the gate's verdict; an op without one is never timed

    def environment(self, box: float) -> None:
        from .kernel_stages import environment_stage

        self.copy_gbs = environment_stage(self.ev, box)["copy_bandwidth_gbs"]

    def gate(self, box: float) -> None:
        from .gate import gate_stage

        gate_stage(self.ev, box, self.args.smoke, self.verdicts, self.args.crash_ops)

    def kernels(self, box: float) -> None:
        from .cases import all_cases
        from .kernel_stages import kernel_stage

        kernel_stage(self.ev, box, all_cases(self.args.smoke), self.device, self.verdicts, self.copy_gbs,
                     self.args.smoke)

    def training(self, box: float) -> None:
        from .training_stages import throughput_stage

        throughput_stage(self.ev, box, self.args.smoke)

    def leaderboard(self, box: float) -> None:
        from .training_stages import leaderboard_stage

        seconds = self.args.leaderboard_seconds or (4.0 if self.args.smoke else 90.0)
        leaderboard_stage(self.ev, box, self.args.smoke, seconds)


def render(ev: Evidence) -> str:
    """``report.render``, imported when first needed (a broken report module is a render failure)."""
    from .report import render as render_report

    return render_report(ev)


def write_plots(ev: Evidence) -> None:
    """``plots.write_plots``, which records a failing plot itself; a broken plots module is recorded here."""
    try:
        from .plots import write_plots as draw
    except Exception as e:
        ev.problem("plots (import)", e)
        return
    draw(ev)


def main(argv: list[str] | None = None) -> int:
    # The budget counts from process start: interpreter start-up and imports are part of it.
    started = time.perf_counter() - seconds_since_process_start()
    prepare_process_environment(torch.cuda.is_available())  # before anything imports the kernels
    args = parse_args(argv)
    budget = args.budget or (110.0 if args.smoke else 480.0)
    ev = Evidence(args.out, budget - (time.perf_counter() - started), args.smoke, render=render,
                  inject_stages=args.raise_stages)
    boxes, run = stage_boxes(args.smoke, budget), Run(ev, args)
    print(f"evidence -> {args.out} ({'smoke, ' if args.smoke else ''}{run.device}, budget {budget:.0f} s)", flush=True)
    for i, name in enumerate(args.stages):
        box = remaining_box(boxes, name, args.stages[i:], ev.left())
        print(f"[{time.perf_counter() - started:6.1f} s] {name} (box {box:.0f} s)", flush=True)
        run_stage(ev, name, box, getattr(run, name))
        write_plots(ev)
    finish(ev, run, time.perf_counter() - started)
    return 0


def finish(ev: Evidence, run: Run, seconds: float) -> None:
    """The last record (a run without it was killed) and a one-line account of what went wrong."""
    failed = [name for name, s in ev.stages.items() if s.get("status") == "failed"]
    not_passed = sorted(op for op, v in run.verdicts.items() if v["status"] != "passed")
    ev.add("run", "end", seconds=round(seconds, 1), failed_stages=failed, ops_not_passed=not_passed)
    print(f"[{seconds:6.1f} s] done: {ev.out / 'report.md'}" + (f"; failed stages: {', '.join(failed)}" if failed else "")
          + (f"; ops not passing the gate: {', '.join(not_passed)}" if not_passed else ""), flush=True)


if __name__ == "__main__":
    sys.exit(main())
