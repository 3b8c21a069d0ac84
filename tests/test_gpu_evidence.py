"""The GPU evidence command cannot rot before a GPU is available: its ``--smoke`` mode runs every
stage (tiny shapes, the kernels interpreted on the CPU) and writes every output; a kill keeps
what finished; its arguments are checked."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parent.parent
STAGES = ("environment", "gate", "kernels", "training", "leaderboard")
OPS = ("rmsnorm", "softmax", "attention", "cross_entropy", "linear_cross_entropy")


def _command(out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "bench.gpu_evidence", "--out", str(out), "--smoke", *extra]


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("evidence")
    env = dict(os.environ, TRITONLM_CACHE=str(out / "cache"))
    start = time.perf_counter()
    proc = subprocess.run(_command(out), cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    return out, proc, time.perf_counter() - start


@pytest.mark.slow
def test_smoke_runs_every_stage_within_two_minutes(smoke_run):
    out, proc, seconds = smoke_run
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert seconds < 150, f"the smoke run took {seconds:.0f} s"  # 110 s budget, plus start-up and the last piece
    summary = json.loads((out / "summary.json").read_text())
    assert list(summary["stages"]) == list(STAGES)
    assert all(s["status"] != "running" for s in summary["stages"].values()), summary["stages"]
    records = [json.loads(line) for line in (out / "evidence.jsonl").read_text().splitlines()]
    assert records == summary["records"]
    env = records[0]
    assert env["kind"] == "environment" and env["copy_bandwidth_gbs"] > 0 and env["metadata"]["git_sha"]


@pytest.mark.slow
def test_smoke_gate_checks_every_op_in_both_dtypes(smoke_run):
    out, _, _ = smoke_run
    checks = [r for r in json.loads((out / "summary.json").read_text())["records"] if r["kind"] == "check"]
    assert {(c["op"], c["dtype"]) for c in checks} == {(op, d) for op in OPS for d in ("float32", "bfloat16")}
    assert all(c["passed"] for c in checks), [c for c in checks if not c["passed"]]
    for c in checks:  # every output and input gradient was compared, and the errors are real numbers
        assert len(c["errors"]) >= 2 and all(0 <= e < c["tolerance"] for e in c["errors"].values())


@pytest.mark.slow
def test_smoke_times_triton_and_its_peers_for_every_op(smoke_run):
    out, _, _ = smoke_run
    rows = [r for r in json.loads((out / "summary.json").read_text())["records"] if r["kind"] == "measurement"]
    for op in OPS:
        mine = [r for r in rows if r["op"] == op]
        timed = {r["provider"] for r in mine if r["ms"] is not None}
        assert {"triton", "eager-formula", "compiled-formula"} <= timed, (op, timed)
        assert {r["direction"] for r in mine if r["provider"] == "triton" and r["ms"]} == {"fwd", "bwd", "fwd+bwd"}
    report = (out / "report.md").read_text()
    for heading in ("## Correctness gate", "## Kernels", "### attention", "## Training throughput",
                    "## Leaderboard run"):
        assert heading in report
    assert (out / "kernel_speedups.png").stat().st_size > 0 and (out / "training_throughput.png").exists()


@pytest.mark.slow
def test_smoke_trains_the_h100_recipe_and_runs_the_leaderboard(smoke_run):
    out, _, _ = smoke_run
    records = json.loads((out / "summary.json").read_text())["records"]
    measured = [r for r in records if r["kind"] == "throughput" and r.get("tokens_per_s")]
    assert any(r["kernels"] == "triton" and r["compiled"] for r in measured), measured
    run = next(r for r in records if r["kind"] == "run")
    assert run["status"] == "exit 0", (out / "leaderboard.log").read_text()[-2000:]
    assert run["report"]["preset"] == "h100" and math.isfinite(run["report"]["final_val_loss"])


@pytest.mark.slow
def test_a_killed_run_keeps_what_finished(tmp_path):
    env = dict(os.environ, TRITONLM_CACHE=str(tmp_path / "cache"))
    proc = subprocess.Popen(_command(tmp_path, "--stages", "environment,gate,kernels"), cwd=REPO, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        lines = (tmp_path / "evidence.jsonl").read_text().splitlines() if (tmp_path / "evidence.jsonl").exists() else []
        if sum('"kind": "check"' in line for line in lines) >= 3:
            break
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    records = [json.loads(line) for line in (tmp_path / "evidence.jsonl").read_text().splitlines()]
    assert sum(r["kind"] == "check" for r in records) >= 3
    summary = json.loads((tmp_path / "summary.json").read_text())  # whole, not torn
    assert len(summary["records"]) >= len(records) - 1
    assert "## Correctness gate" in (tmp_path / "report.md").read_text()


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message shown without a GPU")
def test_without_a_gpu_the_full_run_says_to_use_smoke(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "bench.gpu_evidence", "--out", str(tmp_path)], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "no CUDA GPU is visible" in proc.stderr and "--smoke" in proc.stderr


def test_unknown_stage_and_bad_budget_are_refused(tmp_path):
    for extra, message in ((["--stages", "gate,nope"], "unknown stage(s) nope"), (["--budget", "0"], "positive")):
        proc = subprocess.run(_command(tmp_path, *extra), cwd=REPO, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 2 and message in proc.stderr, proc.stderr


def test_stage_boxes_fill_the_budget():
    from bench.gpu_evidence.__main__ import stage_boxes

    for smoke, budget in ((False, 480.0), (False, 300.0), (True, 110.0)):
        boxes = stage_boxes(smoke, budget)
        assert list(boxes) == list(STAGES) and sum(boxes.values()) == pytest.approx(budget)
