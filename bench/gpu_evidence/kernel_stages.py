"""Two of the stages: the environment (with the measured copy bandwidth) and the kernel table with
every peer side by side (the correctness gate before it is in ``gate.py``).

The kernel stage times a provider only after warming it up (``measure.warm_up``: compilation and
autotuning, recorded per case and provider as a ``warmup`` record), and times Triton only for the
ops that passed the gate: a failed or unchecked op keeps its peers' timings and a Triton row that
says why it was left out."""

from __future__ import annotations

import os
import subprocess

import torch

from bench.common import Measurement, add_ratios, copy_bandwidth_gbs, device_name, device_peaks
from tritonlm.util.runinfo import run_metadata

from .cases import DIRECTIONS, Case, interleaved
from .measure import measure, warm_up
from .plan import AUTOTUNE_CAP_ENV
from .record import Evidence, StageClock


def _driver_version() -> str:
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=20)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown (no nvidia-smi)"


def environment_stage(ev: Evidence, seconds: float) -> dict:
    clock = ev.stage("environment", seconds)
    env = {"device": device_name(), "metadata": run_metadata(), "peaks": device_peaks(),
           "interpreter": os.environ.get("TRITON_INTERPRET") == "1",
           "max_autotune_configs": os.environ.get(AUTOTUNE_CAP_ENV)}
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        env.update(driver=_driver_version(), cuda=torch.version.cuda, sm_count=props.multi_processor_count,
                   memory_gib=round(props.total_memory / 2**30, 1), capability=f"{props.major}.{props.minor}")
    env["copy_bandwidth_gbs"] = copy_bandwidth_gbs(2**30 if torch.cuda.is_available() else 2**24)
    if torch.cuda.is_available():
        torch.cuda.empty_cache()  # the 2 GiB of the copy go back to the GPU, for the gate's children
    ev.add("environment", "environment", **env)
    ev.finish_stage(clock)
    return env


def triton_exclusion(op: str, verdicts: dict[str, dict]) -> str | None:
    """Why Triton is not timed for ``op`` (None when it passed the gate in this run)."""
    v = verdicts.get(op)
    if v is None:
        return "left out: not checked by the gate (the gate stage did not run or did not reach it)"
    if v["status"] == "passed":
        return None
    what = "FAILED the correctness gate" if v["status"] == "failed" else "SKIPPED by the correctness gate"
    return f"left out: {what} ({v['note']})"


def provider_rows(ev: Evidence, clock: StageClock, case: Case, provider: str, fn, inputs: list,
                  timing: dict) -> list[Measurement]:
    """All directions of one provider on one case: warmed up first (recorded), then timed; a
    provider that cannot be warmed up, or no time left, gives rows that say why."""
    def rows_saying(note: str) -> list[Measurement]:
        return [Measurement(case.op, case.name, d, provider, None, note=note) for d in DIRECTIONS]

    if isinstance(fn, str):
        return rows_saying(fn)
    if clock.expired(reserve=1.0):
        return rows_saying("skipped: the kernel stage's time box was spent")
    try:
        seconds = warm_up(fn, inputs)
    except Exception as e:  # out of memory, a compile failure: this provider only
        note = f"warm-up failed: {type(e).__name__}: {e}"[:300]
    else:
        ev.add("kernels", "warmup", op=case.op, case=case.name, provider=provider, seconds=round(seconds, 3),
               ok=True, note="")
        return [measure(case, provider, fn, d, inputs, warm=True, **timing) for d in DIRECTIONS]
    if torch.cuda.is_available():  # the exception (and the tensors its frames held) is gone by now
        torch.cuda.empty_cache()
    ev.add("kernels", "warmup", op=case.op, case=case.name, provider=provider, seconds=None, ok=False, note=note)
    return rows_saying(note)


def kernel_stage(ev: Evidence, seconds: float, cases: list[Case], device: str, verdicts: dict[str, dict],
                 copy_gbs: float, smoke: bool) -> None:
    """Time every provider of every case in every direction, a case of each op in turn (so a
    short box still measures every op); each case's rows are recorded as soon as it completes,
    with ratios to the best peer. Dynamo is reset before each case, so the compiled peer is
    compiled for that case's static shape, in its warm-up."""
    clock = ev.stage("kernels", seconds)
    timing = {"cpu_runs": 1} if smoke else {"warmup_ms": 10, "rep_ms": 40}
    peak_tflops = (device_peaks().get("bf16_tflops") or 0) if torch.cuda.is_available() else 0
    for case in interleaved(cases):
        if clock.expired(reserve=2.0):
            ev.finish_stage(clock, "time box reached", f"stopped before {case.op} {case.name}")
            return
        torch._dynamo.reset()
        inputs = case.inputs(torch.bfloat16, device)
        excluded = triton_exclusion(case.op, verdicts)
        measurements = []
        for provider, fn in case.providers.items():
            chosen = excluded if provider == "triton" and excluded else fn
            measurements += provider_rows(ev, clock, case, provider, chosen, inputs, timing)
        rows = add_ratios(measurements)
        for row in rows:
            row["fraction_of_copy_bandwidth"] = row["gbs"] / copy_gbs if row["gbs"] and copy_gbs else None
            row["fraction_of_peak_flops"] = (row["tflops"] / peak_tflops if row["tflops"] and peak_tflops
                                             else None)
        ev.add_many("kernels", "measurement", rows)
        del inputs
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    ev.finish_stage(clock)
