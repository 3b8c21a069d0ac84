"""The evidence folder, written as results arrive, and the time boxes the stages run in.

Every record is appended to ``evidence.jsonl`` and flushed to disk at once; ``summary.json`` and
``report.md`` are rewritten (atomically) after every record, and the plots after every stage. A
kill at any moment therefore keeps everything that finished, in every format.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from tritonlm.util.atomic import write_text_atomic


class StageClock:
    """A stage's time box: its own seconds, cut to what the whole run has left."""

    def __init__(self, name: str, seconds: float, run_deadline: float):
        self.name = name
        self.start = time.perf_counter()
        self.deadline = min(self.start + seconds, run_deadline)

    def left(self) -> float:
        return self.deadline - time.perf_counter()

    def expired(self, reserve: float = 0.0) -> bool:
        """True once less than ``reserve`` seconds are left (the cost of the next piece of work)."""
        return self.left() <= reserve

    def elapsed(self) -> float:
        return time.perf_counter() - self.start


class Evidence:
    """Records of one run of the evidence command, kept in ``out`` as they arrive."""

    def __init__(self, out: Path, budget_seconds: float, smoke: bool, render=None):
        self.out = Path(out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.started = time.perf_counter()
        self.deadline = self.started + budget_seconds
        self.budget_seconds = budget_seconds
        self.smoke = smoke
        self.records: list[dict] = []
        self.stages: dict[str, dict] = {}
        self.render = render  # (evidence) -> Markdown text, rewritten after each record
        self.jsonl = self.out / "evidence.jsonl"
        self.jsonl.write_text("")

    def stage(self, name: str, seconds: float) -> StageClock:
        clock = StageClock(name, seconds, self.deadline)
        self.stages[name] = {"status": "running", "box_seconds": round(clock.deadline - clock.start, 1)}
        self._rewrite()
        return clock

    def finish_stage(self, clock: StageClock, status: str = "done", note: str = "") -> None:
        self.stages[clock.name].update(status=status, seconds=round(clock.elapsed(), 1), note=note)
        self._rewrite()

    def add(self, stage: str, kind: str, **fields) -> dict:
        """Append one record (JSON-ready ``fields``) and rewrite the summaries."""
        record = {"stage": stage, "kind": kind, "t": round(time.perf_counter() - self.started, 2), **fields}
        self.records.append(record)
        with open(self.jsonl, "a") as f:
            f.write(json.dumps(record, default=str) + "\n")
            f.flush()
            os.fsync(f.fileno())
        self._rewrite()
        return record

    def of(self, stage: str, kind: str | None = None) -> list[dict]:
        return [r for r in self.records if r["stage"] == stage and (kind is None or r["kind"] == kind)]

    def _rewrite(self) -> None:
        summary = {"smoke": self.smoke, "budget_seconds": self.budget_seconds,
                   "elapsed_seconds": round(time.perf_counter() - self.started, 1), "stages": self.stages,
                   "records": self.records}
        write_text_atomic(self.out / "summary.json", json.dumps(summary, indent=1, default=str))
        if self.render is not None:
            write_text_atomic(self.out / "report.md", self.render(self))
