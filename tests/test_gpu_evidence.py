"""The GPU evidence command cannot rot before a GPU is available: its ``--smoke`` mode runs every
stage (tiny shapes, the kernels interpreted on the CPU) and writes every output; a kill keeps
what finished; its arguments are checked. It cannot lose a run either: an op whose gate process
crashes is reported and not timed while the others are, a stage that raises is reported and the
next one runs, children that hang are killed at their deadline, a failing plot or report leaves
the rest, and compilation and autotuning stay out of every timing."""

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
from torch._dynamo.utils import counters

from bench.gpu_evidence import cases, children, peers, plan
from bench.gpu_evidence.gate import verdict
from bench.gpu_evidence.kernel_stages import kernel_stage
from bench.gpu_evidence.plots import speedup_entries, write_plots
from bench.gpu_evidence.record import Evidence, run_stage
from bench.gpu_evidence.report import render
from tritonlm.util.plotting import save_figure

REPO = Path(__file__).resolve().parent.parent
STAGES = ("environment", "gate", "kernels", "training", "leaderboard")
OPS = ("rmsnorm", "softmax", "attention", "cross_entropy", "linear_cross_entropy")


def _command(out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "bench.gpu_evidence", "--out", str(out), "--smoke", *extra]


def _run(out: Path, *extra: str):
    env = dict(os.environ, TRITONLM_CACHE=str(out / "cache"))
    start = time.perf_counter()
    proc = subprocess.run(_command(out, *extra), cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    return out, proc, time.perf_counter() - start


def _records(out: Path, kind: str) -> list[dict]:
    return [r for r in json.loads((out / "summary.json").read_text())["records"] if r["kind"] == kind]


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    return _run(tmp_path_factory.mktemp("evidence"))


@pytest.fixture(scope="module")
def injected_run(tmp_path_factory):
    """A smoke run rehearsing two failures: rmsnorm's gate process crashes, the training stage raises."""
    return _run(tmp_path_factory.mktemp("injected"), "--inject-failure", "rmsnorm",
                "--inject-failure", "stage:training")


@pytest.mark.slow
def test_smoke_runs_every_stage_within_two_minutes(smoke_run):
    out, proc, seconds = smoke_run
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert seconds < 150, f"the smoke run took {seconds:.0f} s"  # 110 s budget, plus start-up and the last piece
    summary = json.loads((out / "summary.json").read_text())
    assert list(summary["stages"]) == list(STAGES)
    assert all(s["status"] == "done" for s in summary["stages"].values()), summary["stages"]
    records = [json.loads(line) for line in (out / "evidence.jsonl").read_text().splitlines()]
    assert records == summary["records"]
    env = records[0]
    assert env["kind"] == "environment" and env["copy_bandwidth_gbs"] > 0 and env["metadata"]["git_sha"]
    assert env["max_autotune_configs"] == "2" and env["interpreter"] == (not torch.cuda.is_available())
    assert records[-1]["kind"] == "end" and records[-1]["failed_stages"] == [] and not _records(out, "problem")


@pytest.mark.slow
def test_smoke_gate_checks_every_op_in_both_dtypes(smoke_run):
    out, _, _ = smoke_run
    checks = [r for r in json.loads((out / "summary.json").read_text())["records"] if r["kind"] == "check"]
    assert {(c["op"], c["dtype"]) for c in checks} == {(op, d) for op in OPS for d in ("float32", "bfloat16")}
    assert all(c["passed"] for c in checks), [c for c in checks if not c["passed"]]
    for c in checks:  # every output and input gradient was compared, and the errors are real numbers
        assert len(c["errors"]) >= 2 and all(0 <= e < c["tolerance"] for e in c["errors"].values())
    verdicts = {v["op"]: v for v in _records(out, "verdict")}
    assert set(verdicts) == set(OPS) and all(v["status"] == "passed" and v["exit_code"] == 0 for v in verdicts.values())
    assert all((out / v["log"]).exists() for v in verdicts.values())  # each op ran in a process of its own


@pytest.mark.slow
def test_smoke_times_triton_and_its_peers_for_every_op(smoke_run):
    out, _, _ = smoke_run
    rows = [r for r in json.loads((out / "summary.json").read_text())["records"] if r["kind"] == "measurement"]
    for op in OPS:
        mine = [r for r in rows if r["op"] == op]
        timed = {r["provider"] for r in mine if r["ms"] is not None}
        assert {"triton", "eager-formula", "compiled-formula"} <= timed, (op, timed)
        for provider in ("triton", "compiled-formula"):  # the compiled peer too, in every direction
            assert {r["direction"] for r in mine if r["provider"] == provider and r["ms"]} == {"fwd", "bwd", "fwd+bwd"}
    report = (out / "report.md").read_text()
    for heading in ("## Correctness gate", "## Kernels", "### attention", "### Warm-up", "## Training throughput",
                    "## Leaderboard run"):
        assert heading in report
    assert "## Problems" not in report and "not timed" not in report
    assert (out / "kernel_speedups.png").stat().st_size > 0 and (out / "training_throughput.png").exists()


@pytest.mark.slow
def test_smoke_warms_every_provider_up_before_timing_it(smoke_run):
    out, _, _ = smoke_run
    warmups = {(w["op"], w["case"], w["provider"]): w for w in _records(out, "warmup")}
    timed = [r for r in _records(out, "measurement") if r["ms"] is not None]
    for r in timed:  # a warm-up record, written before the timing that follows it
        w = warmups[(r["op"], r["case"], r["provider"])]
        assert w["ok"] and w["seconds"] >= 0 and w["t"] <= r["t"], (r, w)
    compiled = [w for w in warmups.values() if w["provider"] == "compiled-formula"]
    assert {(w["op"], w["case"]) for w in compiled} == {(r["op"], r["case"]) for r in timed}  # each case compiled


@pytest.mark.slow
def test_smoke_trains_the_h100_recipe_and_runs_the_leaderboard(smoke_run):
    out, _, _ = smoke_run
    records = json.loads((out / "summary.json").read_text())["records"]
    measured = [r for r in records if r["kind"] == "throughput" and r.get("tokens_per_s")]
    assert any(r["kernels"] == "triton" and r["compiled"] for r in measured), measured
    checks = {r["kernels"]: r for r in records if r["kind"] == "gradients"}
    assert set(checks) == {"triton", "torch"} and all(c["agrees"] for c in checks.values()), checks
    assert "Compiled gradients against eager ones" in (out / "report.md").read_text()
    run = next(r for r in records if r["kind"] == "run")
    assert run["status"] == "exit 0", (out / "leaderboard.log").read_text()[-2000:]
    assert run["report"]["preset"] == "h100" and math.isfinite(run["report"]["final_val_loss"])


@pytest.mark.slow
def test_an_op_whose_gate_process_crashes_is_reported_and_never_timed(injected_run):
    out, proc, _ = injected_run
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    verdicts = {v["op"]: v for v in _records(out, "verdict")}
    crashed = verdicts["rmsnorm"]
    assert crashed["status"] == "failed" and crashed["exit_code"] == 3 and not crashed["timed_out"]
    assert "crashed" in crashed["note"] and "injected failure" in crashed["log_tail"]
    assert crashed["checks_passed"] == 1 < crashed["checks_planned"]  # the check before the crash is kept
    assert all(verdicts[op]["status"] == "passed" for op in OPS if op != "rmsnorm"), verdicts
    rows = _records(out, "measurement")
    left_out = [r for r in rows if r["op"] == "rmsnorm" and r["provider"] == "triton"]
    assert left_out and all(r["ms"] is None and r["note"].startswith("left out: FAILED") for r in left_out)
    assert not [w for w in _records(out, "warmup") if w["op"] == "rmsnorm" and w["provider"] == "triton"]
    assert {r["provider"] for r in rows if r["op"] == "rmsnorm" and r["ms"]} >= {"eager-formula", "builtin"}
    for op in OPS[1:]:  # the other ops pass and are timed
        assert {r["direction"] for r in rows if r["op"] == op and r["provider"] == "triton" and r["ms"]} == {
            "fwd", "bwd", "fwd+bwd"}
    assert ("rmsnorm 16x300", None, "not timed: gate FAILED") in speedup_entries(rows)
    report = (out / "report.md").read_text()
    assert "op **rmsnorm** FAILED the correctness gate" in report and "**not timed**" in report


@pytest.mark.slow
def test_a_stage_that_raises_is_reported_and_the_next_stages_run(injected_run):
    out, proc, _ = injected_run
    assert "stage training FAILED" in proc.stdout and "Traceback" in proc.stdout
    summary = json.loads((out / "summary.json").read_text())
    assert list(summary["stages"]) == list(STAGES)
    training = summary["stages"]["training"]
    assert training["status"] == "failed" and "InjectedFailure" in training["note"]
    assert "Traceback" in training["traceback"] and "training_stages.py" in training["traceback"]
    assert all(summary["stages"][name]["status"] == "done" for name in STAGES if name != "training")
    assert next(r for r in summary["records"] if r["kind"] == "run")["status"] == "exit 0"  # the leaderboard ran
    end = summary["records"][-1]
    assert end["kind"] == "end" and end["failed_stages"] == ["training"] and end["ops_not_passed"] == ["rmsnorm"]
    report = (out / "report.md").read_text()
    assert "## Problems" in report and "stage training: `InjectedFailure" in report
    assert "## Leaderboard run" in report and (out / "kernel_speedups.png").stat().st_size > 0


@pytest.mark.slow
def test_a_killed_run_keeps_what_finished(tmp_path):
    env = dict(os.environ, TRITONLM_CACHE=str(tmp_path / "cache"))
    proc = subprocess.Popen(_command(tmp_path, "--stages", "environment,gate,kernels"), cwd=REPO, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline, checking = time.time() + 120, []
    while time.time() < deadline and proc.poll() is None:
        lines = (tmp_path / "evidence.jsonl").read_text().splitlines() if (tmp_path / "evidence.jsonl").exists() else []
        checking = _processes_mentioning(str(tmp_path / "gate"))  # the gate's children at work
        if sum('"kind": "check"' in line for line in lines) >= 3 and checking:  # kill while one runs
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    records = [json.loads(line) for line in (tmp_path / "evidence.jsonl").read_text().splitlines()]
    assert sum(r["kind"] == "check" for r in records) >= 3
    summary = json.loads((tmp_path / "summary.json").read_text())  # whole, not torn
    kept = summary["records"]
    assert kept == records[:len(kept)]  # the same records, in order
    # a kill between the flush and the rewrite loses at most the last batch (add_many: one time stamp)
    assert len({r["t"] for r in records[len(kept):]}) <= 1
    assert "## Correctness gate" in (tmp_path / "report.md").read_text()
    assert checking  # and they end themselves once their parent is gone
    deadline = time.time() + 10
    while time.time() < deadline and _processes_mentioning(str(tmp_path / "gate")):
        time.sleep(0.2)
    assert not _processes_mentioning(str(tmp_path / "gate"))


def _processes_mentioning(text: str) -> list[int]:
    """Pids of the live processes whose command line contains ``text``."""
    pids = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and text in (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode():
                pids.append(int(entry.name))
        except OSError:
            continue
    return pids


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message shown without a GPU")
def test_without_a_gpu_the_full_run_says_to_use_smoke(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "bench.gpu_evidence", "--out", str(tmp_path)], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "no CUDA GPU is visible" in proc.stderr and "--smoke" in proc.stderr


def test_unknown_stage_bad_budget_and_bad_injection_are_refused(tmp_path):
    for extra, message in ((["--stages", "gate,nope"], "unknown stage(s) nope"), (["--budget", "0"], "positive"),
                           (["--inject-failure", "stage:nope"], "cannot inject a failure into 'stage:nope'")):
        proc = subprocess.run(_command(tmp_path, *extra), cwd=REPO, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 2 and message in proc.stderr, proc.stderr


def test_stage_boxes_fill_the_budget():
    from bench.gpu_evidence.__main__ import stage_boxes

    for smoke, budget in ((False, 480.0), (False, 300.0), (True, 110.0)):
        boxes = stage_boxes(smoke, budget)
        assert list(boxes) == list(STAGES) and sum(boxes.values()) == pytest.approx(budget)


def test_time_a_stage_leaves_unused_goes_to_the_stages_after_it_and_injections_are_named():
    boxes = plan.stage_boxes(False, 480.0)
    assert plan.remaining_box(boxes, "gate", list(STAGES[1:]), 480.0 - boxes["environment"]) == pytest.approx(
        boxes["gate"])
    later, left = list(STAGES[2:]), 480.0 - boxes["environment"] - 10.0  # the gate took 10 s of its box
    handed_on = [plan.remaining_box(boxes, name, later, left) for name in later]
    assert sum(handed_on) == pytest.approx(left) and handed_on[0] > boxes["kernels"]
    assert plan.parse_injections(["rmsnorm", "stage:training,attention"]) == ({"rmsnorm", "attention"}, {"training"})
    for bad in ("stage:nope", "nope", "training"):
        with pytest.raises(ValueError, match="cannot inject"):
            plan.parse_injections([bad])


def _child(tmp_path, name: str, code: str) -> children.Child:
    return children.Child(name, [sys.executable, "-c", code], tmp_path / f"{name}.log")


def test_children_that_hang_are_killed_at_their_deadline_and_crashes_are_read(tmp_path):
    runs = [_child(tmp_path, "hang", "import time; print('hanging', flush=True); time.sleep(60)"),
            _child(tmp_path, "crash", "import os, sys; print('bad', file=sys.stderr, flush=True); os._exit(3)"),
            _child(tmp_path, "fine", "print('ok')")]
    box_end = time.perf_counter() + 3.0
    start = time.perf_counter()
    ended = list(children.run_pool(runs, 3, lambda: box_end - time.perf_counter(), 0.5))
    assert time.perf_counter() - start < 15 and {c.name for c in ended} == {"hang", "crash", "fine"}
    hang, crash, fine = runs
    assert hang.timed_out and hang.exit_code is None and hang._proc.poll() is not None  # killed and reaped
    assert "hanging" in hang.log_tail() and hang.seconds >= 2.0
    assert crash.exit_code == 3 and not crash.timed_out and "bad" in crash.log_tail()
    assert fine.exit_code == 0 and fine.log_tail().strip() == "ok"


def test_children_are_not_started_without_time_left(tmp_path):
    late = _child(tmp_path, "late", "print('never')")
    assert list(children.run_pool([late], 2, lambda: 1.0, 3.0)) == [late]
    assert not late.started and not late.log.exists()
    assert verdict(late, [])["status"] == "skipped"


def test_gate_verdicts_pass_only_a_complete_clean_check(tmp_path):
    def ended(code, timed_out=False):
        child = _child(tmp_path, "op", "")
        child.started, child.exit_code, child.timed_out = True, code, timed_out
        return child

    def check(passed):
        return {"kind": "check", "case": "4x4", "dtype": "float32", "passed": passed}

    planned = {"kind": "plan", "checks": [["4x4", "float32"], ["4x4", "bfloat16"]]}
    done = {"kind": "done"}
    assert verdict(ended(0), [planned, check(True), check(True), done])["status"] == "passed"
    for child, lines, why in ((ended(0), [planned, check(True), check(False), done], "above tolerance"),
                              (ended(0), [planned, check(True), done], "after 1 of 2 checks"),
                              (ended(0), [check(True), check(True), done], "after 2 of 0 checks"),
                              (ended(-11), [planned, check(True)], "crashed (exit code -11)"),
                              (ended(None, timed_out=True), [planned], "timed out")):
        v = verdict(child, lines)
        assert v["status"] == "failed" and why in v["note"], (why, v)


def _evidence(tmp_path, render=None) -> Evidence:
    return Evidence(tmp_path / "ev", 60.0, smoke=True, render=render)


def test_a_stage_that_raises_is_recorded_whether_or_not_it_started(tmp_path):
    ev = _evidence(tmp_path)

    def started_then_raises(box):
        ev.stage("kernels", box)
        raise KeyError("boom")

    def raises_before_starting(box):
        raise ImportError("no module")

    assert not run_stage(ev, "kernels", 5.0, started_then_raises)
    assert not run_stage(ev, "training", 5.0, raises_before_starting)
    assert run_stage(ev, "leaderboard", 5.0, lambda box: ev.finish_stage(ev.stage("leaderboard", box)))
    stages = json.loads((ev.out / "summary.json").read_text())["stages"]
    assert stages["kernels"]["status"] == "failed" and stages["kernels"]["note"] == "KeyError: 'boom'"
    assert "started_then_raises" in stages["kernels"]["traceback"]
    assert stages["training"]["status"] == "failed" and "ImportError" in stages["training"]["note"]
    assert stages["leaderboard"]["status"] == "done"
    assert [p["where"] for p in ev.of("run", "problem")] == ["stage kernels", "stage training"]


def test_a_failing_renderer_leaves_a_plain_report_with_every_record(tmp_path):
    def broken(ev):
        raise ValueError("cannot render")

    ev = _evidence(tmp_path, render=broken)
    ev.add("gate", "check", op="softmax", passed=True)
    report = (ev.out / "report.md").read_text()
    assert "plain fallback" in report and "ValueError: cannot render" in report and '"op": "softmax"' in report
    assert json.loads((ev.out / "summary.json").read_text())["render_error"]["error"] == "ValueError: cannot render"


def test_a_failing_plot_is_recorded_and_the_others_are_drawn(tmp_path):
    ev = _evidence(tmp_path)

    def broken(ev, plt):
        raise RuntimeError("no axes")

    def fine(ev, plt):
        fig, ax = plt.subplots()
        ax.plot([0, 1])
        return save_figure(fig, ev.out / "fine.png")

    for _ in range(2):  # drawn after every stage; the same failure is recorded once
        assert write_plots(ev, {"broken": broken, "fine": fine}) == [ev.out / "fine.png"]
    problems = ev.of("run", "problem")
    assert [(p["where"], p["error"]) for p in problems] == [("plot broken", "RuntimeError: no axes")]


def _fake_case(first_call_seconds: float):
    """A case whose providers are plain torch: 'triton' sleeps on its first call, as compilation would."""
    calls = []

    def slow_first(x):
        if not calls:
            time.sleep(first_call_seconds)
        calls.append(1)
        return x * 2

    return cases.Case("softmax", "4x8", [(4, 8)], {"triton": slow_first, "eager-formula": lambda x: x * 3},
                lambda x: x * 2), calls


@pytest.mark.parametrize("verdict_status", ["passed", "failed", "skipped", None])
def test_kernel_stage_times_triton_after_its_warm_up_and_only_when_it_passed(tmp_path, verdict_status):
    ev = _evidence(tmp_path)
    case, calls = _fake_case(0.3)
    verdicts = {} if verdict_status is None else {"softmax": {"status": verdict_status, "note": "why"}}
    kernel_stage(ev, 30.0, [case], "cpu", verdicts, 0.0, smoke=True)
    triton = [r for r in ev.of("kernels", "measurement") if r["provider"] == "triton"]
    warmups = {w["provider"]: w for w in ev.of("kernels", "warmup")}
    if verdict_status == "passed":
        assert warmups["triton"]["seconds"] >= 0.3  # the slow first call was the warm-up...
        assert all(0 <= r["ms"] < 100 for r in triton)  # ...and never part of a timing
    else:
        assert not calls and "triton" not in warmups
        assert all(r["ms"] is None and r["note"].startswith("left out") for r in triton)
        assert ("FAILED" in triton[0]["note"]) == (verdict_status == "failed")
        assert ("SKIPPED" in triton[0]["note"]) == (verdict_status == "skipped")
    assert {r["direction"] for r in ev.of("kernels", "measurement") if r["provider"] == "eager-formula" and r["ms"]} \
        == {"fwd", "bwd", "fwd+bwd"}


def test_compiled_peers_are_static_for_each_shape():
    torch._dynamo.reset()
    counters.clear()
    compiled = peers.compiled(peers.softmax_formula, smoke=True)
    for rows in (4, 6, 8):  # a dynamic graph would serve the third shape without compiling again
        compiled(torch.randn(rows, 16))
    assert counters["stats"]["unique_graphs"] == 3
    torch._dynamo.reset()


def test_every_op_has_cases_and_every_case_is_gated_in_the_timed_dtype():
    assert tuple(cases.BUILDERS) == plan.OPS == OPS
    for smoke in (True, False):
        every = cases.all_cases(smoke)
        gated = {(c.op, c.name) for c, dtype in cases.gate_checks(every) if dtype == torch.bfloat16}
        assert gated == {(c.op, c.name) for c in every}
        order = cases.interleaved(every)
        assert sorted(order, key=id) == sorted(every, key=id)
        assert [c.op for c in order[:len(OPS)]] == list(OPS)  # one case of every op comes first


def test_the_report_shows_failed_and_skipped_ops_and_failed_stages(tmp_path):
    ev = _evidence(tmp_path, render=render)
    base = {"checks_passed": 0, "checks_planned": 2, "seconds": 1.0, "log": "gate/x.log"}
    ev.add("gate", "verdict", op="softmax", status="passed", exit_code=0, timed_out=False, note="2 checks", **base)
    ev.add("gate", "verdict", op="attention", status="failed", exit_code=None, timed_out=True, note="timed out",
           log_tail="still compiling", **base)
    ev.add("gate", "verdict", op="rmsnorm", status="skipped", exit_code=None, timed_out=False, note="box ran out",
           **base)
    ev.add("kernels", "warmup", op="softmax", case="4x8", provider="triton", seconds=0.5, ok=True, note="")
    ev.add("kernels", "measurement", op="rmsnorm", case="4x8", direction="fwd", provider="triton", ms=None,
           gbs=None, tflops=None, peak_mib=None, speedup_vs_best_peer=None, note="left out: SKIPPED by the gate")
    run_stage(ev, "training", 5.0, lambda box: 1 / 0)
    report = (ev.out / "report.md").read_text()
    assert "plain fallback" not in report and ev.render_error is None
    for text in ("| attention | **FAILED** |", "| rmsnorm | **SKIPPED** |", "| softmax | pass |", "still compiling",
                 "op **rmsnorm** SKIPPED", "| training |", "**FAILED** | ZeroDivisionError", "**not timed**",
                 "### Warm-up", "Run in progress (or killed)"):
        assert text in report, text


def test_the_gradient_check_catches_a_compiled_step_whose_gradients_are_wrong():
    """What the training stage runs on each compiled variant: it passes a compiled copy of the
    loss, and fails a loss whose gradients are scaled (as a misrouted gradient would be) or that
    leaves a parameter without its gradient."""
    from contextlib import nullcontext

    from bench.gpu_evidence.training_stages import gradient_agreement
    from tritonlm.model import TransformerLM
    from tritonlm.model.presets import tiny
    from tritonlm.train.step import LossModule

    torch.manual_seed(0)
    model = TransformerLM.from_config(tiny(vocab_size=61, context_length=12, d_model=16, num_layers=1, num_heads=2,
                                           kernels="torch"))
    ids = torch.randint(0, 61, (3, 13), generator=torch.Generator().manual_seed(1))
    eager = LossModule(model, 0.0)
    torch._dynamo.reset()
    same = gradient_agreement(model, torch.compile(eager, backend="aot_eager"), eager, ids, nullcontext, 1e-4)
    assert same["agrees"] and same["worst_relative_error"] < 1e-5 and same["parameters"] == len(list(model.parameters()))

    doubled = gradient_agreement(model, lambda a, b: 2 * eager(a, b), eager, ids, nullcontext, 1e-4)
    assert not doubled["agrees"] and doubled["worst_relative_error"] == pytest.approx(1.0, rel=1e-4)

    def without_head_gradient(inputs, targets):
        model.lm_head.weight.requires_grad_(False)
        try:
            return eager(inputs, targets)
        finally:
            model.lm_head.weight.requires_grad_(True)

    missing = gradient_agreement(model, without_head_gradient, eager, ids, nullcontext, 1e-4)
    assert not missing["agrees"] and missing["worst_parameter"] == "lm_head.weight"
