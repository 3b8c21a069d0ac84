"""What one run consists of, known before anything heavy is imported: the stages and their time
boxes, the ops the gate checks, the process environment the kernels must see, the clock that
counts from process start, and the failure injections that rehearse the run's safety nets.

Nothing here imports torch, triton or ``tritonlm.kernels``: the environment must be set before
the kernels are imported (their autotuner reads it), in the evidence process and in its children.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

STAGES = ("environment", "gate", "kernels", "training", "leaderboard")
OPS = ("rmsnorm", "softmax", "attention", "cross_entropy", "linear_cross_entropy")
# Seconds per stage for the default 480-second budget (scaled to --budget), and in smoke runs.
# What a stage leaves unused is handed on to the stages after it (``remaining_box``), so a
# generous gate box (cold Triton compiles in its children) costs nothing when the gate is quick.
GPU_BOXES = {"environment": 10, "gate": 75, "kernels": 120, "training": 100, "leaderboard": 175}
SMOKE_BOXES = {"environment": 5, "gate": 25, "kernels": 25, "training": 20, "leaderboard": 35}

# At most this many autotuning configurations per kernel, so that compilation and autotuning fit
# the 8-minute budget on one GPU (read by the kernels when they are imported).
AUTOTUNE_CAP_ENV = "TRITONLM_MAX_AUTOTUNE_CONFIGS"
AUTOTUNE_CAP = "2"

_IMPORTED = time.perf_counter()  # the fallback start when /proc cannot say when the process began


def prepare_process_environment(has_cuda: bool) -> None:
    """Set what the kernels read at import time, for this process and every child it starts: the
    autotuning cap, and Triton's interpreter when there is no GPU (before triton is imported)."""
    os.environ.setdefault(AUTOTUNE_CAP_ENV, AUTOTUNE_CAP)
    if not has_cuda:
        os.environ.setdefault("TRITON_INTERPRET", "1")


def seconds_since_process_start() -> float:
    """How long this process has existed (interpreter start-up and every import included), from
    /proc; where that is unreadable, the time since this module was imported."""
    try:
        fields = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
        start_ticks = int(fields[19])  # field 22 of stat(5): start time in clock ticks after boot
        uptime = float(Path("/proc/uptime").read_text().split()[0])
        return max(0.0, uptime - start_ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return time.perf_counter() - _IMPORTED


def stage_boxes(smoke: bool, budget: float) -> dict[str, float]:
    """Every stage's box, scaled so that the boxes of all stages add up to ``budget``."""
    boxes = SMOKE_BOXES if smoke else GPU_BOXES
    scale = budget / sum(boxes.values())
    return {name: seconds * scale for name, seconds in boxes.items()}


def remaining_box(boxes: dict[str, float], stage: str, still_to_run: list[str], seconds_left: float) -> float:
    """The box of ``stage`` now: its share of what the run has left among the stages still to
    run (itself included). Time an earlier stage did not use flows to the later ones."""
    shares = sum(boxes[name] for name in still_to_run)
    return max(0.0, seconds_left * boxes[stage] / shares) if shares > 0 else 0.0


def parse_injections(values: list[str]) -> tuple[set[str], set[str]]:
    """``--inject-failure`` values (a rehearsal aid) as (ops whose gate child crashes, stages that
    raise); raises ValueError naming a value that is neither an op nor ``stage:NAME``."""
    ops, stages = set(), set()
    for value in values:
        for item in (v.strip() for v in value.split(",") if v.strip()):
            if item.startswith("stage:") and item[len("stage:"):] in STAGES:
                stages.add(item[len("stage:"):])
            elif item in OPS:
                ops.add(item)
            else:
                raise ValueError(f"cannot inject a failure into {item!r}: name an op ({', '.join(OPS)}) "
                                 f"or stage:NAME ({', '.join(STAGES)})")
    return ops, stages
