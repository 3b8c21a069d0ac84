"""Peak resident memory of a command together with every process it starts (Linux ``/proc``).

``resource.getrusage`` reports the largest single process, not the sum over a parent and its
worker processes that hold memory at the same time; a trainer that fans out to workers is only
measured honestly by sampling the whole tree while it runs.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path


def process_tree(root: int) -> list[int]:
    """``root`` and all its descendants that are alive now."""
    parents = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    parents[int(entry)] = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                pass
    found, frontier = [root], [root]
    while frontier:
        frontier = [p for p, pp in parents.items() if pp in frontier]
        found += frontier
    return found


def status_kb(pid: int, fields: tuple[str, ...] = ("VmRSS", "VmHWM")) -> tuple[int, ...]:
    """Several memory fields of a process in kB, from one read of its status file (zeros once it
    has exited)."""
    found = dict.fromkeys(fields, 0)
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                name = line.split(":", 1)[0]
                if name in found:
                    found[name] = int(line.split()[1])
    except OSError:
        pass
    return tuple(found.values())


@dataclass(frozen=True)
class SampledRun:
    returncode: int
    stdout: str
    seconds: float
    peak_tree_rss_mb: float  # the larger of the sampled sum and the largest single process's peak
    sampled_tree_rss_mb: float  # the largest sum of the tree's RSS seen by sampling
    largest_process_rss_mb: float  # the largest peak (VmHWM) of one process of the tree


def run_sampling_memory(cmd: list[str], *, cwd: str | Path | None = None, env: dict | None = None,
                        interval: float = 0.025) -> SampledRun:
    """Run ``cmd`` to the end (stdout captured, stderr discarded) while summing the RSS of its
    process tree every ``interval`` seconds.

    A peak shorter than the interval escapes the sum, so each process's own high-water mark
    (``VmHWM``, exact since its exec) is read as well, and the result is never below the largest
    of them. (``ru_maxrss`` from ``wait4`` is no substitute: a forked child inherits the parent's
    resident size until it execs, so it reports the launcher's memory.) The tree is re-walked
    every tenth sample, as walking /proc costs more than reading a few status files.
    """
    start = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out:
        proc = subprocess.Popen(cmd, cwd=cwd, stdout=out, stderr=subprocess.DEVNULL, text=True,
                                env={**os.environ, **(env or {})})
        peak_sum, largest, tick, pids = 0, 0, 0, [proc.pid]
        while proc.poll() is None:
            if tick % 10 == 0:
                pids = process_tree(proc.pid)
            memory = [status_kb(p) for p in pids]
            peak_sum = max(peak_sum, sum(rss for rss, _ in memory))
            largest = max(largest, *(hwm for _, hwm in memory))
            tick += 1
            time.sleep(interval)
        seconds = time.perf_counter() - start
        out.seek(0)
        stdout = out.read()
    sampled, largest = round(peak_sum / 1024, 1), round(largest / 1024, 1)
    return SampledRun(proc.returncode, stdout, seconds, max(sampled, largest), sampled, largest)
