"""Shared benchmark helpers: GPU timing, throughput, peak memory, copy bandwidth, JSON output.

Every comparison times all peers in the same process, on the same inputs, and reports ratios
next to absolute figures. Timing uses ``triton.testing.do_bench`` (CUDA events, L2 flushed
between runs, median of repeats). Results are written atomically as JSON under
``bench/results/`` with ``util.runinfo.run_metadata()`` and the device in the file name.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import torch

from tritonlm.util.atomic import write_json_atomic
from tritonlm.util.runinfo import device_description
from tritonlm.util.runinfo import device_peaks as known_device_peaks
from tritonlm.util.runinfo import run_metadata

RESULTS_DIR = Path(__file__).resolve().parent / "results"

def cuda_skip_reason() -> str | None:
    """Why the GPU benchmarks cannot run here (None when they can)."""
    if not torch.cuda.is_available():
        return "needs a CUDA GPU: kernel benchmarks time compiled Triton kernels (none visible here)"
    return None


def device_name() -> str:
    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"


def device_slug() -> str:
    """The GPU's name, or ``cpu-<model>-x<cores>`` on the CPU, as a file-name part: results of
    two machines never share a file."""
    return re.sub(r"[^a-z0-9]+", "-", device_description().lower()).strip("-")[:60]


def device_peaks() -> dict[str, float | None]:
    """Data-sheet peaks of the current GPU, when known: bf16 TFLOP/s and memory GB/s."""
    peaks = known_device_peaks(device_name())
    if peaks is None:
        return {"bf16_tflops": None, "hbm_gbs": None}
    return {"bf16_tflops": peaks[0] / 1e12, "hbm_gbs": peaks[1] / 1e9}


def time_ms(fn: Callable[[], object], grad_to_none: Iterable[torch.Tensor] | None = None, *,
            warmup_ms: float = 25, rep_ms: float = 100, cpu_runs: int = 3) -> float:
    """Median milliseconds of ``fn()``: on the GPU with CUDA events and the L2 cache flushed
    between calls (``triton.testing.do_bench``); on the CPU (smoke runs) by the wall clock over
    ``cpu_runs`` calls after one warm-up."""
    leaves = list(grad_to_none or [])
    if torch.cuda.is_available():
        import triton.testing

        return float(triton.testing.do_bench(fn, warmup=warmup_ms, rep=rep_ms, grad_to_none=leaves,
                                             return_mode="median"))
    import statistics
    import time

    times = []
    for i in range(1 + cpu_runs):
        for t in leaves:
            t.grad = None
        start = time.perf_counter()
        fn()
        if i:  # the first call is the warm-up
            times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def peak_memory_mib(fn: Callable[[], object]) -> float | None:
    """Extra GPU memory (MiB) that one call of ``fn`` needs at its peak, above what is already
    held; None on the CPU, where it is not measured."""
    if not torch.cuda.is_available():
        return None
    torch.cuda.synchronize()
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    before = torch.cuda.memory_allocated()
    fn()
    torch.cuda.synchronize()
    return (torch.cuda.max_memory_allocated() - before) / 2**20


def copy_bandwidth_gbs(n_bytes: int = 2**30) -> float:
    """Measured copy bandwidth (GB/s, read + write counted) on the GPU (the CPU without one): the
    practical ceiling that memory-bound kernels are judged against."""
    device = "cuda" if torch.cuda.is_available() else "cpu"
    src = torch.empty(n_bytes, dtype=torch.uint8, device=device)
    dst = torch.empty_like(src)
    ms = time_ms(lambda: dst.copy_(src))
    return 2 * n_bytes / (ms * 1e-3) / 1e9


def gbs(n_bytes: float, ms: float) -> float:
    return n_bytes / (ms * 1e-3) / 1e9


def tflops(flops: float, ms: float) -> float:
    return flops / (ms * 1e-3) / 1e12


@dataclass
class Measurement:
    """One provider timed on one case (op, shape, direction)."""

    op: str
    case: str  # e.g. "16384x4096 bf16"
    direction: str  # fwd | bwd | fwd+bwd
    provider: str  # triton | reference | compiled-reference | builtin
    ms: float | None  # None when the provider could not run (reason in `note`)
    gbs: float | None = None
    tflops: float | None = None
    peak_mib: float | None = None
    note: str = ""
    extra: dict = field(default_factory=dict)


def add_ratios(measurements: list[Measurement]) -> list[dict]:
    """Rows with ``speedup_vs_best_peer`` (best non-Triton time / this time; > 1 means faster)
    and ``memory_vs_best_peer`` for every measurement of the same (op, case, direction)."""
    rows = []
    for m in measurements:
        peers = [p for p in measurements
                 if (p.op, p.case, p.direction) == (m.op, m.case, m.direction) and p.provider != m.provider
                 and p.provider != "triton" and p.ms is not None]
        row = asdict(m)
        best = min(peers, key=lambda p: p.ms, default=None)
        row["best_peer"] = best.provider if best else None
        row["speedup_vs_best_peer"] = (best.ms / m.ms) if best and m.ms and m.ms > 0 else None
        peer_mem = [p.peak_mib for p in peers if p.peak_mib is not None]
        row["memory_vs_best_peer"] = (m.peak_mib / min(peer_mem)) if peer_mem and m.peak_mib else None
        rows.append(row)
    return rows


def write_results(name: str, rows: list[dict], extra: dict | None = None) -> Path:
    """Write ``bench/results/<name>-<device>.json`` atomically (temp file + rename)."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{name}-{device_slug()}.json"
    payload = {"metadata": run_metadata(), "device": device_name(), **(extra or {}), "results": rows}
    return write_json_atomic(path, payload, indent=1)


def format_table(rows: list[dict]) -> str:
    """A fixed-width summary of the rows, one line per measurement."""
    lines = [f"{'op':<22}{'case':<30}{'dir':<9}{'provider':<20}{'ms':>9}{'GB/s':>8}{'TFLOP/s':>9}"
             f"{'MiB':>9}{'x best peer':>12}"]

    def fmt(v, width: int, decimals: int) -> str:
        ok = isinstance(v, (int, float)) and not math.isnan(v)
        return f"{v:{width}.{decimals}f}" if ok else "-".rjust(width)

    for r in rows:
        lines.append(f"{r['op']:<22}{r['case']:<30}{r['direction']:<9}{r['provider']:<20}{fmt(r['ms'], 9, 3)}"
                     f"{fmt(r['gbs'], 8, 0)}{fmt(r['tflops'], 9, 1)}{fmt(r['peak_mib'], 9, 0)}"
                     f"{fmt(r['speedup_vs_best_peer'], 12, 2)}")
    return "\n".join(lines)


def plot_speedups(rows: list[dict], path: Path) -> Path:
    """Bar chart of Triton's speed-up over the best peer per case (PNG, Agg backend)."""
    from tritonlm.util.plotting import pyplot, save_figure

    mine = [r for r in rows if r["provider"] == "triton" and r["speedup_vs_best_peer"]]
    labels = [f"{r['op']} {r['case']} {r['direction']}" for r in mine]
    values = [r["speedup_vs_best_peer"] for r in mine]
    fig, ax = pyplot().subplots(figsize=(10, max(3, 0.28 * len(mine))))
    ax.barh(labels, values, color=["tab:green" if v >= 1 else "tab:red" for v in values])
    ax.axvline(1.0, color="black", lw=1)
    ax.set_xlabel("speed-up of Triton over the best peer (x)")
    ax.set_title(f"tritonlm kernels on {device_name()}")
    ax.invert_yaxis()
    return save_figure(fig, path)
