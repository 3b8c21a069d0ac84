"""Kernel benchmarks under pytest-benchmark: the cases of ``bench.gpu_evidence`` (Triton vs the
eager formula vs torch.compile of it vs the built-in vs Liger-Kernel when importable), forward,
backward and both, at LM shapes, in one run and without time boxes.

    python -m pytest bench/test_bench_kernels.py -q -s          # needs a CUDA GPU
    python -m pytest bench/test_bench_kernels.py -q -s --benchmark-enable   # + pytest-benchmark stats

Writes ``bench/results/kernels-<device>.json`` (every measurement with GB/s or TFLOP/s, peak
memory and the ratio to the best peer, plus the measured copy bandwidth and data-sheet peaks) and
``kernels-<device>.png`` (Triton's speed-up per case). On a machine without CUDA every case skips.
For the time-boxed evidence of a whole GPU session (gate, kernels, training, leaderboard) use
``python -m bench.gpu_evidence``.
"""

from __future__ import annotations

import pytest
import torch

from bench.common import (
    Measurement,
    RESULTS_DIR,
    add_ratios,
    copy_bandwidth_gbs,
    cuda_skip_reason,
    device_peaks,
    device_slug,
    format_table,
    plot_speedups,
    write_results,
)

pytestmark = pytest.mark.skipif(cuda_skip_reason() is not None, reason=cuda_skip_reason() or "")

MEASUREMENTS: list[Measurement] = []
CONTEXT: dict = {}


def _cases():
    if cuda_skip_reason() is not None:
        return []
    from bench.gpu_evidence.cases import all_cases

    return all_cases(smoke=False)


@pytest.fixture(scope="module", autouse=True)
def results_file():
    CONTEXT["copy_gbs"] = copy_bandwidth_gbs()
    yield
    if MEASUREMENTS:
        rows = add_ratios(MEASUREMENTS)
        for row in rows:  # memory-bound ops: fraction of the measured copy bandwidth
            row["fraction_of_copy_bandwidth"] = row["gbs"] / CONTEXT["copy_gbs"] if row["gbs"] else None
        path = write_results("kernels", rows, {"copy_bandwidth_gbs": CONTEXT["copy_gbs"], "peaks": device_peaks()})
        plot_speedups(rows, RESULTS_DIR / f"kernels-{device_slug()}.png")
        print(f"\ncopy bandwidth {CONTEXT['copy_gbs']:.0f} GB/s\n{format_table(rows)}\nwritten to {path}")


@pytest.mark.parametrize("case", _cases(), ids=lambda c: f"{c.op}-{c.name}")
def test_kernel_case(benchmark, case):
    from bench.gpu_evidence.cases import DIRECTIONS
    from bench.gpu_evidence.measure import measure

    inputs = case.inputs(torch.bfloat16, "cuda")
    for direction in DIRECTIONS:
        for provider, fn in case.providers.items():
            if isinstance(fn, str):
                MEASUREMENTS.append(Measurement(case.op, case.name, direction, provider, None, note=fn))
            else:
                MEASUREMENTS.append(measure(case, provider, fn, direction, inputs))
    triton_fn = case.providers["triton"]

    def triton_step():
        out = triton_fn(*inputs)
        (out if out.dim() == 0 else out.sum()).backward()
        torch.cuda.synchronize()

    benchmark.pedantic(triton_step, rounds=5, warmup_rounds=1)
    for t in inputs:
        if isinstance(t, torch.Tensor):
            t.grad = None
