"""CLI of the evidence command (see the package docstring)."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import torch

if not torch.cuda.is_available():  # before triton is imported: interpret the kernels on the CPU
    os.environ.setdefault("TRITON_INTERPRET", "1")

STAGES = ("environment", "gate", "kernels", "training", "leaderboard")
# Seconds per stage for the default 480-second budget (scaled to --budget), and in smoke runs.
GPU_BOXES = {"environment": 15, "gate": 50, "kernels": 125, "training": 110, "leaderboard": 180}
SMOKE_BOXES = {"environment": 5, "gate": 15, "kernels": 25, "training": 25, "leaderboard": 40}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.gpu_evidence", description=__doc__)
    parser.add_argument("--out", required=True, type=Path, help="folder for the evidence (created)")
    parser.add_argument("--smoke", action="store_true", help="tiny shapes and short boxes (CPU rehearsal)")
    parser.add_argument("--budget", type=float, default=None,
                        help="seconds for the whole run, start-up included (default 480; smoke 110)")
    parser.add_argument("--stages", default=",".join(STAGES), help=f"comma-separated subset of {','.join(STAGES)}")
    parser.add_argument("--leaderboard-seconds", type=float, default=None,
                        help="training budget of the leaderboard run (default 90; smoke 4)")
    args = parser.parse_args(argv)
    args.stages = [s.strip() for s in args.stages.split(",") if s.strip()]
    unknown = sorted(set(args.stages) - set(STAGES))
    if unknown:
        parser.error(f"unknown stage(s) {', '.join(unknown)}; choose from {', '.join(STAGES)}")
    if not args.smoke and not torch.cuda.is_available():
        parser.error("no CUDA GPU is visible: the evidence needs one (use --smoke to rehearse on the CPU)")
    if args.budget is not None and args.budget <= 0:
        parser.error(f"--budget must be positive, got {args.budget}")
    return args


def stage_boxes(smoke: bool, budget: float) -> dict[str, float]:
    boxes = SMOKE_BOXES if smoke else GPU_BOXES
    scale = budget / sum(boxes.values())
    return {name: seconds * scale for name, seconds in boxes.items()}


def main(argv: list[str] | None = None) -> int:
    started = time.perf_counter()
    args = parse_args(argv)
    budget = args.budget or (110.0 if args.smoke else 480.0)
    from . import report
    from .cases import all_cases
    from .kernel_stages import environment_stage, gate_stage, kernel_stage
    from .record import Evidence
    from .training_stages import leaderboard_stage, throughput_stage

    # The budget counts from process start: imports and start-up are part of it.
    ev = Evidence(args.out, budget - (time.perf_counter() - started), args.smoke, render=report.render)
    boxes = stage_boxes(args.smoke, budget)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    cases = all_cases(args.smoke)
    copy_gbs, failed = 0.0, set()
    print(f"evidence -> {args.out} ({'smoke, ' if args.smoke else ''}{device}, budget {budget:.0f} s)", flush=True)
    for name in args.stages:
        print(f"[{time.perf_counter() - started:6.1f} s] {name} (box {boxes[name]:.0f} s)", flush=True)
        if name == "environment":
            copy_gbs = environment_stage(ev, boxes[name])["copy_bandwidth_gbs"]
        elif name == "gate":
            failed = gate_stage(ev, boxes[name], cases, device)
        elif name == "kernels":
            kernel_stage(ev, boxes[name], cases, device, failed, copy_gbs, args.smoke)
        elif name == "training":
            throughput_stage(ev, boxes[name], args.smoke)
        else:
            train_seconds = args.leaderboard_seconds or (4.0 if args.smoke else 90.0)
            leaderboard_stage(ev, boxes[name], args.smoke, train_seconds)
        report.write_plots(ev)
    print(f"[{time.perf_counter() - started:6.1f} s] done: {args.out / 'report.md'}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
