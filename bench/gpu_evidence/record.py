"""The evidence folder, written as results arrive, and the time boxes the stages run in.

Every record is appended to ``evidence.jsonl`` and flushed to disk at once; ``summary.json`` and
``report.md`` are rewritten (atomically) after every record, and the plots after every stage. A
kill at any moment therefore keeps everything that finished, in every format.

Failures are evidence too: ``run_stage`` turns an exception in a stage into the stage's status
"failed" (with the error and the end of its traceback) and a ``problem`` record, and lets the run
go on; a renderer that raises gets a plain fallback ``report.md`` that still holds every record.
"""

from __future__ import annotations

import json
import os
import time
import traceback
from pathlib import Path
from typing import Callable

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


class InjectedFailure(RuntimeError):
    """Raised on purpose by ``--inject-failure stage:NAME`` (a rehearsal of a failing stage)."""


def error_fields(error: BaseException, tail_chars: int = 2500) -> dict:
    """An exception as JSON-ready fields: one line for tables, the end of the traceback for reading."""
    trace = "".join(traceback.format_exception(type(error), error, error.__traceback__))
    return {"error": f"{type(error).__name__}: {error}"[:500], "traceback": trace[-tail_chars:]}


class Evidence:
    """Records of one run of the evidence command, kept in ``out`` as they arrive."""

    def __init__(self, out: Path, budget_seconds: float, smoke: bool, render=None,
                 inject_stages: set[str] | None = None):
        self.out = Path(out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.started = time.perf_counter()
        self.deadline = self.started + budget_seconds
        self.budget_seconds = budget_seconds
        self.smoke = smoke
        self.records: list[dict] = []
        self.stages: dict[str, dict] = {}
        self.render = render  # (evidence) -> Markdown text, rewritten after each record
        self.inject_stages = set(inject_stages or ())  # stages that raise once started (rehearsal aid)
        self.render_error: dict | None = None  # the last failure of ``render``, shown in the summary
        self.jsonl = self.out / "evidence.jsonl"
        self.jsonl.write_text("")

    def left(self) -> float:
        """Seconds the whole run has left."""
        return self.deadline - time.perf_counter()

    def stage(self, name: str, seconds: float) -> StageClock:
        clock = StageClock(name, seconds, self.deadline)
        self.stages[name] = {"status": "running", "box_seconds": round(clock.deadline - clock.start, 1),
                             "started_at": round(clock.start - self.started, 1)}
        self._rewrite()
        if name in self.inject_stages:
            raise InjectedFailure(f"injected failure in stage {name} (--inject-failure stage:{name})")
        return clock

    def finish_stage(self, clock: StageClock, status: str = "done", note: str = "") -> None:
        self.stages[clock.name].update(status=status, seconds=round(clock.elapsed(), 1), note=note)
        self._rewrite()

    def add(self, stage: str, kind: str, **fields) -> dict:
        """Append one record (JSON-ready ``fields``) and rewrite the summaries."""
        return self.add_many(stage, kind, [fields])[0]

    def add_many(self, stage: str, kind: str, rows: list[dict]) -> list[dict]:
        """Append records that arrive together (a case's rows, an op's checks) with one flush to
        disk and one rewrite of the summaries: rewriting costs more as the records grow."""
        now = round(time.perf_counter() - self.started, 2)
        records = [{"stage": stage, "kind": kind, "t": now, **fields} for fields in rows]
        self.records += records
        with open(self.jsonl, "a") as f:
            f.writelines(json.dumps(record, default=str) + "\n" for record in records)
            f.flush()
            os.fsync(f.fileno())
        self._rewrite()
        return records

    def fail_stage(self, name: str, box_seconds: float, error: BaseException) -> None:
        """Mark stage ``name`` failed by ``error`` (whether or not it got as far as starting its
        clock) and record the problem."""
        fields = error_fields(error)
        entry = self.stages.setdefault(name, {"box_seconds": round(box_seconds, 1)})
        started = entry.get("started_at")
        took = time.perf_counter() - self.started - started if started is not None else 0.0
        entry.update(status="failed", seconds=round(took, 1), note=fields["error"], traceback=fields["traceback"])
        self.problem(f"stage {name}", error)

    def problem(self, where: str, error: BaseException) -> dict | None:
        """Record a failure of part of the run (a stage, a plot); the same failure in the same
        place is recorded once."""
        fields = error_fields(error)
        if any(r["where"] == where and r["error"] == fields["error"] for r in self.of("run", "problem")):
            return None
        return self.add("run", "problem", where=where, **fields)

    def of(self, stage: str, kind: str | None = None) -> list[dict]:
        return [r for r in self.records if r["stage"] == stage and (kind is None or r["kind"] == kind)]

    def summary(self) -> dict:
        return {"smoke": self.smoke, "budget_seconds": self.budget_seconds,
                "elapsed_seconds": round(time.perf_counter() - self.started, 1), "stages": self.stages,
                "render_error": self.render_error, "records": self.records}

    def _rewrite(self) -> None:
        report = self._report_text() if self.render is not None else None  # first: it may set render_error
        write_text_atomic(self.out / "summary.json", json.dumps(self.summary(), indent=1, default=str))
        if report is not None:
            write_text_atomic(self.out / "report.md", report)

    def _report_text(self) -> str:
        """The rendered report, or, when rendering fails, a plain one that loses no record."""
        try:
            return self.render(self)
        except Exception as e:  # the report must not take the run (or the records) down with it
            fields = error_fields(e)
            if self.render_error is None or self.render_error["error"] != fields["error"]:
                print(f"report.md: rendering failed ({fields['error']}); writing the plain fallback", flush=True)
            self.render_error = fields
            return plain_report(self)


def plain_report(ev: Evidence) -> str:
    """A report that needs nothing but JSON: the render error, the stages, and every record."""
    err = ev.render_error or {}
    lines = ["# Kernel evidence (plain fallback)", "",
             f"Rendering the full report failed: `{err.get('error', 'unknown error')}`", "", "```",
             err.get("traceback", "").rstrip(), "```", "", "## Stages", "", "```",
             json.dumps(ev.stages, indent=1, default=str), "```", "", f"## Records ({len(ev.records)})", "", "```"]
    lines += [json.dumps(r, default=str) for r in ev.records]
    return "\n".join(lines + ["```", ""])


def run_stage(ev: Evidence, name: str, box_seconds: float, body: Callable[[float], object]) -> bool:
    """Run one stage, ``body(box_seconds)``; an exception becomes the stage's status "failed" (with
    the error and its traceback, also printed) instead of ending the run. True if it completed."""
    try:
        body(box_seconds)
    except Exception as e:
        ev.fail_stage(name, box_seconds, e)
        print(f"stage {name} FAILED: {ev.stages[name]['note']}\n{ev.stages[name]['traceback']}", flush=True)
        return False
    entry = ev.stages.get(name)
    if entry is not None and entry.get("status") == "running":  # a stage that forgot to say it finished
        entry["status"] = "done"
        ev._rewrite()
    return True
