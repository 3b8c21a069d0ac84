"""The first three stages: the environment (with the measured copy bandwidth), the correctness
gate, and the kernel table with every peer side by side."""

from __future__ import annotations

import subprocess
import torch

from bench.common import Measurement, add_ratios, copy_bandwidth_gbs, device_name, device_peaks
from tritonlm.util.runinfo import run_metadata

from .cases import DIRECTIONS, Case, all_cases
from .measure import GATE_TOLERANCE, gate_errors, measure
from .record import Evidence

GATE_DTYPES = (torch.float32, torch.bfloat16)


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
           "interpreter": not torch.cuda.is_available()}
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        env.update(driver=_driver_version(), cuda=torch.version.cuda, sm_count=props.multi_processor_count,
                   memory_gib=round(props.total_memory / 2**30, 1), capability=f"{props.major}.{props.minor}")
    env["copy_bandwidth_gbs"] = copy_bandwidth_gbs(2**30 if torch.cuda.is_available() else 2**24)
    ev.add("environment", "environment", **env)
    ev.finish_stage(clock)
    return env


def gate_stage(ev: Evidence, seconds: float, cases: list[Case], device: str) -> set[str]:
    """Check every gate case in fp32 and bf16; returns the ops that failed (left out of timing)."""
    clock = ev.stage("gate", seconds)
    failed: set[str] = set()
    for case in (c for c in cases if c.gate):
        for dtype in GATE_DTYPES:
            if clock.expired():
                ev.finish_stage(clock, "time box reached", f"stopped before {case.op} {case.name}")
                return failed
            try:
                errors = gate_errors(case, dtype, device)
                passed = all(e <= GATE_TOLERANCE[dtype] for e in errors.values())
                note = ""
            except Exception as e:  # a kernel that does not even run fails the gate
                errors, passed, note = {}, False, f"{type(e).__name__}: {e}"[:300]
            if not passed:
                failed.add(case.op)
            ev.add("gate", "check", op=case.op, case=case.name, dtype=str(dtype).replace("torch.", ""),
                   passed=passed, errors=errors, tolerance=GATE_TOLERANCE[dtype], note=note)
    ev.finish_stage(clock, "done", f"failed: {', '.join(sorted(failed))}" if failed else "all passed")
    return failed


def kernel_stage(ev: Evidence, seconds: float, cases: list[Case], device: str, failed: set[str],
                 copy_gbs: float, smoke: bool) -> None:
    """Time every provider of every case in every direction, case by case; each measurement is
    recorded as it completes (with ratios to the best peer once its case is complete)."""
    clock = ev.stage("kernels", seconds)
    timing = {"cpu_runs": 1} if smoke else {"warmup_ms": 10, "rep_ms": 40}
    peak_tflops = (device_peaks().get("bf16_tflops") or 0) if torch.cuda.is_available() else 0
    for case in cases:
        if clock.expired(reserve=2.0):
            ev.finish_stage(clock, "time box reached", f"stopped before {case.op} {case.name}")
            return
        inputs = case.inputs(torch.bfloat16, device)
        measurements = []
        for provider, fn in case.providers.items():
            if provider == "triton" and case.op in failed:
                fn = "left out: failed the correctness gate"
            for direction in DIRECTIONS:
                if isinstance(fn, str):
                    measurements.append(Measurement(case.op, case.name, direction, provider, None, note=fn))
                else:
                    measurements.append(measure(case, provider, fn, direction, inputs, **timing))
        for row in add_ratios(measurements):
            row["fraction_of_copy_bandwidth"] = row["gbs"] / copy_gbs if row["gbs"] and copy_gbs else None
            row["fraction_of_peak_flops"] = (row["tflops"] / peak_tflops if row["tflops"] and peak_tflops
                                             else None)
            ev.add("kernels", "measurement", **row)
        del inputs
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    ev.finish_stage(clock)

