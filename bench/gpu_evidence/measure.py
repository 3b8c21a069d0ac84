"""Measuring one provider on one case: correctness against the reference, and time (and peak
memory) per direction. Shared by the evidence command and ``bench/test_bench_kernels.py``.

Compilation and autotuning never fall into a timed region: ``warm_up`` calls a provider once
(forward and backward) and synchronizes before any timing starts, and reports how long that took
(Triton's JIT and autotuning, ``torch.compile``'s tracing and code generation). ``measure`` warms
the provider up itself unless the caller already has (``warm=True``).
"""

from __future__ import annotations

from typing import Callable

import time

import torch

from bench.common import Measurement, gbs, peak_memory_mib, tflops, time_ms
from bench.kernel_checks import output_and_grads

from .cases import Case

# Largest |triton - reference| / max |reference| per output or gradient, per dtype: bf16 keeps 8
# bits of mantissa, and each output or gradient is a sum of many rounded terms.
GATE_TOLERANCE = {torch.float32: 2e-4, torch.bfloat16: 3e-2}


def gate_errors(case: Case, dtype: torch.dtype, device: str) -> dict[str, float]:
    """Relative max error of Triton's output and input gradients against the reference computed
    in float32 on the same (dtype-rounded) inputs."""
    inputs = case.inputs(dtype, device, seed=1, requires_grad=False)
    n_float = len(case.shapes)
    grad_out = torch.tensor(0.7, device=device) if case.vocab else None
    if grad_out is None:
        out_shape = _output_shape(case.providers["triton"], inputs)
        grad_out = torch.randn(out_shape, generator=torch.Generator().manual_seed(2)).to(device)
    # Each side gets its own copy: a provider may write its gradient over its inputs (in place).
    got = output_and_grads(case.providers["triton"], [t.clone() for t in inputs], grad_out)
    want = output_and_grads(case.reference, [t.clone() for t in inputs], grad_out, dtype=torch.float32)
    names = ["out"] + [f"d{i}" for i in range(n_float)]
    errors = {}
    for name, g, w in zip(names, [got[0], *got[1]], [want[0], *want[1]]):
        scale = w.float().abs().max().clamp_min(1e-30)
        errors[name] = float(((g.float() - w.float()).abs().max() / scale).item())
    return errors


def _output_shape(fn: Callable, inputs: list) -> torch.Size:
    with torch.no_grad():
        return fn(*inputs).shape


def synchronize() -> None:
    """Wait for the GPU (no-op on the CPU): work launched before is finished when this returns."""
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def warm_up(fn: Callable, inputs: list, direction: str = "fwd+bwd") -> float:
    """Call ``fn`` once, forward only for ``fwd``, else forward and backward (compiling and
    autotuning both), and synchronize; returns the seconds it took. Leaves no gradients behind.

    The backward is a plain one, as in training: ``torch.compile`` compiles its backward at that
    first call, with donated buffers (saved activations reused for gradients) since the graph is
    not retained, so the compiled peer is timed as a user would run it."""
    leaves = [t for t in inputs if isinstance(t, torch.Tensor) and t.requires_grad]
    start = time.perf_counter()
    try:
        _runner(fn, inputs, "fwd" if direction == "fwd" else "fwd+bwd")()
        synchronize()
    finally:
        for t in leaves:
            t.grad = None
    return time.perf_counter() - start


def _runner(fn: Callable, inputs: list, direction: str) -> Callable[[], object]:
    if direction == "fwd":
        return lambda: fn(*inputs)
    out = fn(*inputs)
    dy = torch.randn_like(out) if out.dim() else torch.ones_like(out)
    if direction == "fwd+bwd":
        return lambda: fn(*inputs).backward(dy)
    return lambda: out.backward(dy, retain_graph=True)


# Why a backward cannot be repeated on one graph, by a fragment of the error it raises.
NO_REPEATED_BACKWARD = {
    "backpropagate once": "the gradient is computed in the forward",
    "donated buffers": "the compiled backward reuses saved buffers (donated buffers)",
}


def _repeated_backward_blocker(fn: Callable, inputs: list) -> str | None:
    """Why backward alone cannot be run twice on one graph of ``fn`` (None when it can): ops that
    compute their gradient in the forward, and compiled backwards with donated buffers."""
    run = _runner(fn, inputs, "bwd")
    try:
        run(), run()
        return None
    except RuntimeError as e:
        reason = next((why for fragment, why in NO_REPEATED_BACKWARD.items() if fragment in str(e)), None)
        if reason is None:
            raise
        return reason


def measure(case: Case, provider: str, fn: Callable, direction: str, inputs: list, warm: bool = False,
            **timing) -> Measurement:
    """Time ``fn`` on ``inputs`` in one direction; peak memory too for ``fwd+bwd``. A provider that
    cannot run (out of memory, a compile failure) is recorded with the reason. ``warm``: the caller
    has run ``warm_up`` (fwd+bwd) already; otherwise it is done here, untimed. ``timing``: the
    keyword options of ``bench.common.time_ms``."""
    leaves = [t for t in inputs if isinstance(t, torch.Tensor) and t.requires_grad]
    note, peak = "", None
    try:
        if not warm:
            warm_up(fn, inputs, direction)
        blocker = _repeated_backward_blocker(fn, inputs) if direction == "bwd" else None
        if blocker:
            # Backward alone cannot be repeated on one graph: time it as (fwd+bwd) - fwd.
            both = time_ms(_runner(fn, inputs, "fwd+bwd"), leaves, **timing)
            ms = both - time_ms(_runner(fn, inputs, "fwd"), leaves, **timing)
            note = f"bwd = (fwd+bwd) - fwd: {blocker}"
        else:
            run = _runner(fn, inputs, direction)
            ms = time_ms(run, leaves, **timing)
            if direction == "fwd+bwd":
                peak = peak_memory_mib(run)
    except torch.cuda.OutOfMemoryError:
        torch.cuda.empty_cache()
        return Measurement(case.op, case.name, direction, provider, None, note="out of memory")
    except Exception as e:  # a peer that cannot run this case is recorded, not fatal
        return Measurement(case.op, case.name, direction, provider, None, note=f"{type(e).__name__}: {e}"[:300])
    finally:
        for t in leaves:
            t.grad = None
    return Measurement(
        case.op, case.name, direction, provider, ms,
        gbs=gbs(case.bytes[direction], ms) if case.bytes and ms > 0 else None,
        tflops=tflops(case.flops[direction], ms) if case.flops and ms > 0 else None,
        peak_mib=peak, note=note,
    )
