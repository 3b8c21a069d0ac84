"""Child processes with deadlines: the gate's per-op checks and the leaderboard run.

A child writes stdout and stderr to a log file (no pipe to fill up or to block on). A crash (a
CUDA fault, a segfault, ``os._exit``) ends only the child: the parent reads its exit code and the
tail of its log and goes on. A hang is ended with SIGKILL at the child's deadline; the parent
waits a bounded time for it to go (a process stuck in the driver may not), so even then it goes
on. Children stay in the parent's process group, so whatever kills the whole command kills them
too; the gate's children also end themselves when their parent disappears (``gate_child``).
"""

from __future__ import annotations

import subprocess
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

REPO = Path(__file__).resolve().parents[2]
POLL_SECONDS = 0.05
REAP_SECONDS = 10.0  # how long to wait for a killed child to be gone


@dataclass
class Child:
    """One command to run, and what became of it."""

    name: str
    command: list[str]
    log: Path
    started: bool = False
    exit_code: int | None = None  # None: never started, or killed at its deadline
    timed_out: bool = False
    seconds: float = 0.0
    timeout: float = 0.0  # the seconds it was given
    _proc: subprocess.Popen | None = field(default=None, repr=False)
    _start: float = 0.0

    def log_tail(self, chars: int = 2000) -> str:
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except OSError:
            return ""


def start(child: Child, timeout: float, env: dict | None = None) -> None:
    """Launch ``child`` from the repository root (so ``-m bench...`` resolves) with its output in
    its log; it will be killed ``timeout`` seconds from now."""
    child.log.parent.mkdir(parents=True, exist_ok=True)
    with open(child.log, "w") as log:
        child._proc = subprocess.Popen(child.command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
                                       stdin=subprocess.DEVNULL)
    child.started, child.timeout, child._start = True, timeout, time.perf_counter()


def poll(child: Child) -> bool:
    """True once ``child`` has ended (on its own, or killed now because its deadline passed)."""
    code = child._proc.poll()
    elapsed = time.perf_counter() - child._start
    if code is None and elapsed < child.timeout:
        return False
    if code is None:
        kill(child._proc)
        child.timed_out = True
    else:
        child.exit_code = code
    child.seconds = elapsed
    return True


def kill(proc: subprocess.Popen) -> None:
    """SIGKILL ``proc`` (a child this module started) and reap it, waiting at most REAP_SECONDS."""
    proc.kill()
    try:
        proc.wait(timeout=REAP_SECONDS)
    except subprocess.TimeoutExpired:  # stuck in the kernel (a GPU driver call): leave it, go on
        pass


def run_one(child: Child, timeout: float, env: dict | None = None) -> Child:
    """Run ``child`` to its end or its deadline."""
    start(child, timeout, env)
    while not poll(child):
        time.sleep(POLL_SECONDS)
    return child


def run_pool(children: list[Child], workers: int, seconds_left: Callable[[], float], min_seconds: float,
             env: dict | None = None) -> Iterator[Child]:
    """Run ``children`` at most ``workers`` at a time; each is given what is left of the time box
    (``seconds_left()``) when it starts. Yields every child as it ends, and those never started
    (under ``min_seconds`` left) at once, so the caller records each result as it comes."""
    pending, running = deque(children), []
    try:
        while pending or running:
            while pending and len(running) < max(1, workers):
                child = pending.popleft()
                if seconds_left() < min_seconds:
                    yield child
                    continue
                start(child, seconds_left(), env)
                running.append(child)
            for child in [c for c in running if poll(c)]:
                running.remove(child)
                yield child
            time.sleep(POLL_SECONDS)
    finally:  # the caller stopped early (an exception): leave no child behind
        for child in running:
            kill(child._proc)
