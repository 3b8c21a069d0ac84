"""The correctness gate, parent side: one child process per op (``gate_child``), so that a CUDA
fault (an illegal address poisons the whole CUDA context) or a hang in one op cannot take down
the evidence process or the other ops.

Children run side by side (all of them on a GPU: the gate checks values, not speed; as many as
there are cores on the CPU); each gets what is left of the gate's time box when it starts and is
killed when that is spent. Every child writes its checks as JSON lines
(``OUT/gate/OP.jsonl``, output in ``OUT/gate/OP.log``), so the checks finished before a crash are
kept. Each op ends with a ``verdict`` record:

* ``passed``: the child exited normally after every check it planned, all within tolerance;
* ``failed``: a check above tolerance or raising, the child crashing (its exit code and the tail
  of its log are recorded), or the child killed at the end of the box (``timed_out``);
* ``skipped``: too little of the box was left to start it.

Only ``passed`` ops have their Triton provider timed by the kernel stage.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Collection

import torch

from . import children
from .children import Child
from .plan import OPS
from .record import Evidence

# A child needs this much of the box to import torch and the kernels at all.
MIN_CHILD_SECONDS = 3.0


def child_command(op: str, result: Path, smoke: bool, crash: bool) -> list[str]:
    command = [sys.executable, "-m", "bench.gpu_evidence.gate_child", "--op", op, "--result", str(result),
               "--parent-pid", str(os.getpid())]
    return command + (["--smoke"] if smoke else []) + (["--inject-crash"] if crash else [])


def child_workers(n_ops: int) -> int:
    """All ops at once on a GPU (the checks are small next to its memory, and compilation is CPU
    work spread over the host's cores); on the CPU one interpreter per core."""
    if torch.cuda.is_available():
        return n_ops
    return max(1, min(n_ops, os.cpu_count() or 1))


def result_path(child: Child) -> Path:
    """Where the child of ``child.name`` writes its JSON lines: beside its log."""
    return child.log.with_suffix(".jsonl")


def read_lines(path: Path) -> list[dict]:
    """The JSON lines a child wrote; a line torn by a crash mid-write is dropped."""
    lines = []
    try:
        text = path.read_text()
    except OSError:
        return lines
    for line in text.splitlines():
        try:
            lines.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return lines


def verdict(child: Child, lines: list[dict]) -> dict:
    """What the gate concludes about one op from its child's exit and the lines it wrote."""
    plan = next((line["checks"] for line in lines if line.get("kind") == "plan"), None)
    checks = [line for line in lines if line.get("kind") == "check"]
    done = any(line.get("kind") == "done" for line in lines)
    failing = [f"{c['case']} {c['dtype']}" for c in checks if not c["passed"]]
    base = {"checks_passed": sum(c["passed"] for c in checks), "checks_planned": len(plan or []),
            "exit_code": child.exit_code, "timed_out": child.timed_out, "seconds": round(child.seconds, 1)}
    if not child.started:
        return {**base, "status": "skipped", "note": "the gate's time box ran out before it was checked"}
    if child.timed_out:
        note = f"timed out: killed after {child.seconds:.0f} s (the end of the gate's time box)"
    elif child.exit_code != 0:
        note = f"the check process crashed (exit code {child.exit_code})"
    elif not done or plan is None or len(checks) < len(plan):
        note = f"the check process ended after {len(checks)} of {len(plan or [])} checks"
    elif failing:
        note = f"above tolerance or raising: {', '.join(failing)}"
    else:
        return {**base, "status": "passed", "note": f"{len(checks)} checks within tolerance"}
    return {**base, "status": "failed", "note": note, "log_tail": child.log_tail()}


def record_op(ev: Evidence, op: str, child: Child, verdicts: dict[str, dict]) -> None:
    """Record one op's checks and its verdict (as soon as its child has ended)."""
    lines = read_lines(result_path(child))
    checks = [{"op": op, **{k: v for k, v in x.items() if k != "kind"}} for x in lines if x.get("kind") == "check"]
    ev.add_many("gate", "check", checks)
    verdicts[op] = verdict(child, lines)
    ev.add("gate", "verdict", op=op, log=str(child.log.relative_to(ev.out)), **verdicts[op])
    print(f"  gate {op}: {verdicts[op]['status']} ({verdicts[op]['note']})", flush=True)


def gate_stage(ev: Evidence, seconds: float, smoke: bool, verdicts: dict[str, dict],
               crash_ops: Collection[str] = ()) -> None:
    """Check every op in its own child process; fills ``verdicts`` (op -> verdict) as each ends,
    so the ops judged before an exception here keep their verdicts."""
    clock = ev.stage("gate", seconds)
    folder = ev.out / "gate"
    runs = [Child(op, child_command(op, folder / f"{op}.jsonl", smoke, op in crash_ops), folder / f"{op}.log")
            for op in OPS]
    for run in runs:
        result_path(run).unlink(missing_ok=True)
    for child in children.run_pool(runs, child_workers(len(runs)), clock.left, MIN_CHILD_SECONDS,
                                   env=dict(os.environ)):
        record_op(ev, child.name, child, verdicts)
    bad = sorted(op for op, v in verdicts.items() if v["status"] != "passed")
    status = "time box reached" if any(verdicts[op]["status"] == "skipped" for op in OPS) else "done"
    ev.finish_stage(clock, status, f"not passed: {', '.join(bad)}" if bad else "all passed")
