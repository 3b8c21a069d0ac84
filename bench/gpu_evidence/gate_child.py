"""The correctness gate, child side: check one op's Triton kernels against the reference, in a
process of its own (started by ``gate.py``).

    python -m bench.gpu_evidence.gate_child --op attention --result OUT/gate/attention.jsonl [--smoke]
                                            [--parent-pid PID]

Writes JSON lines to ``--result`` as it goes, each flushed to disk at once: a ``plan`` (the checks
it will make), one ``check`` per (case, dtype) with the error of every output and input gradient,
and ``done`` at the end. A check that raises is recorded as failed and the next one still runs;
a crash of the whole process leaves the lines written before it. Exit code 0 once every planned
check has been written, whatever their results.

``--inject-crash`` (a rehearsal aid, set by ``--inject-failure OP``) ends the process hard with
exit code 3 right after its first check, as a CUDA fault would.

The process ends itself when its parent (``--parent-pid``) disappears, the evidence command having
been killed: a check left running would hold the GPU, and nobody would read its result.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from pathlib import Path

from .plan import OPS, prepare_process_environment

INJECTED_EXIT_CODE = 3
ORPHANED_EXIT_CODE = 4


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.gpu_evidence.gate_child", description=__doc__)
    parser.add_argument("--op", required=True, choices=OPS)
    parser.add_argument("--result", required=True, type=Path, help="JSON-lines file to write")
    parser.add_argument("--smoke", action="store_true", help="the smoke shapes")
    parser.add_argument("--inject-crash", action="store_true", help="rehearsal aid: exit hard after one check")
    parser.add_argument("--parent-pid", type=int, default=None, help="end when this process is no longer the parent")
    return parser.parse_args(argv)


def write_line(path: Path, line: dict) -> None:
    """Append one JSON line and force it to disk (it must outlive a crash a moment later)."""
    with open(path, "a") as f:
        f.write(json.dumps(line, default=str) + "\n")
        f.flush()
        os.fsync(f.fileno())


def check(case, dtype, device: str) -> dict:
    """One gate check: the relative error of every output and gradient, against the tolerance."""
    from .measure import GATE_TOLERANCE, gate_errors

    start = time.perf_counter()
    try:
        errors = gate_errors(case, dtype, device)
        passed = all(e <= GATE_TOLERANCE[dtype] for e in errors.values())
        note = ""
    except Exception as e:  # a kernel that does not even run fails the gate
        errors, passed, note = {}, False, f"{type(e).__name__}: {e}"[:300]
    return {"kind": "check", "case": case.name, "dtype": str(dtype).replace("torch.", ""), "passed": passed,
            "errors": errors, "tolerance": GATE_TOLERANCE[dtype], "note": note,
            "seconds": round(time.perf_counter() - start, 2)}


def crash_hard() -> None:
    """End the process at once, as a CUDA fault does: no cleanup, no exception to catch."""
    print("injected failure: the gate child exits hard (--inject-failure)", file=sys.stderr, flush=True)
    os._exit(INJECTED_EXIT_CODE)


def exit_when_orphaned(parent: int, poll_seconds: float = 0.5) -> None:
    """Watch, from a daemon thread, for the process ``parent`` to go (this process is then
    re-parented) and end the process at once when it does. The parent's pid is passed in rather
    than read here: it may already be gone by the time this runs."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(poll_seconds)
        os._exit(ORPHANED_EXIT_CODE)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    exit_when_orphaned(args.parent_pid or os.getppid())  # first: importing torch takes seconds
    import torch

    prepare_process_environment(torch.cuda.is_available())  # before the kernels (and triton) are imported
    from .cases import cases_for, gate_checks

    device = "cuda" if torch.cuda.is_available() else "cpu"
    checks = gate_checks(cases_for(args.op, args.smoke))
    write_line(args.result, {"kind": "plan", "checks": [[c.name, str(d).replace("torch.", "")] for c, d in checks]})
    for index, (case, dtype) in enumerate(checks):
        write_line(args.result, check(case, dtype, device))
        print(f"{args.op} {case.name} {dtype}: checked", flush=True)
        if args.inject_crash and index == 0:
            crash_hard()
    write_line(args.result, {"kind": "done"})
    return 0


if __name__ == "__main__":
    sys.exit(main())
