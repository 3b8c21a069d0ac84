"""Kernel benchmarks: Triton vs the from-scratch reference vs torch.compile(reference) vs the
torch built-in, forward, backward and both, at realistic LM shapes, in one run.

    python -m pytest bench/test_bench_kernels.py -q -s          # needs a CUDA GPU
    python -m pytest bench/test_bench_kernels.py -q -s --benchmark-enable   # + pytest-benchmark stats

Writes ``bench/results/kernels-<device>.json`` (every measurement with GB/s or TFLOP/s, peak
memory and the ratio to the best peer, plus the measured copy bandwidth and data-sheet peaks) and
``kernels-<device>.png`` (Triton's speed-up per case). On a machine without CUDA every case skips.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import pytest
import torch
import torch.nn.functional as F

import kernels
from bench.common import (
    Measurement,
    RESULTS_DIR,
    add_ratios,
    copy_bandwidth_gbs,
    cuda_skip_reason,
    device_peaks,
    device_slug,
    format_table,
    gbs,
    peak_memory_mib,
    plot_speedups,
    tflops,
    time_ms,
    write_results,
)

pytestmark = pytest.mark.skipif(cuda_skip_reason() is not None, reason=cuda_skip_reason() or "")

DIRECTIONS = ("fwd", "bwd", "fwd+bwd")
MEASUREMENTS: list[Measurement] = []
CONTEXT: dict = {}
# Reference attention materialises (batch, heads, seq, seq) float32 scores several times over.
MAX_REFERENCE_SCORES_GIB = 4.0


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


@dataclass
class Case:
    """One op at one shape: its inputs, providers, and the work per direction."""

    op: str
    name: str
    inputs: list[torch.Tensor]  # differentiable inputs first; non-float (targets) passed through
    providers: dict[str, Callable[..., torch.Tensor] | str]  # a string is the reason it is skipped
    bytes: dict[str, float] | None = None  # minimum memory traffic per direction (memory-bound ops)
    flops: dict[str, float] | None = None  # useful FLOPs per direction (matmul-bound ops)


def _grad_leaves(inputs):
    return [t for t in inputs if t.requires_grad]


def _runner(case: Case, fn, direction: str) -> Callable[[], object]:
    if direction == "fwd":
        return lambda: fn(*case.inputs)
    out = fn(*case.inputs)
    dy = torch.randn_like(out) if out.dim() else torch.ones_like(out)
    if direction == "fwd+bwd":
        return lambda: fn(*case.inputs).backward(dy)
    return lambda: out.backward(dy, retain_graph=True)


def _backpropagates_repeatedly(case: Case, fn) -> bool:
    """False for ops that compute their gradient in the forward and can backpropagate only once."""
    run = _runner(case, fn, "bwd")
    try:
        run(), run()
        return True
    except RuntimeError as e:
        if "backpropagate once" in str(e):
            return False
        raise


def _measure(case: Case, provider: str, fn, direction: str) -> Measurement:
    leaves = _grad_leaves(case.inputs)
    note = ""
    try:
        if direction == "bwd" and not _backpropagates_repeatedly(case, fn):
            # Backward alone cannot be repeated on one graph: time it as (fwd+bwd) - fwd.
            ms = time_ms(_runner(case, fn, "fwd+bwd"), leaves) - time_ms(_runner(case, fn, "fwd"), leaves)
            peak, note = None, "bwd = (fwd+bwd) - fwd: the gradient is computed in the forward"
        else:
            run = _runner(case, fn, direction)
            ms = time_ms(run, grad_to_none=leaves)
            peak = peak_memory_mib(run)
    except torch.cuda.OutOfMemoryError:
        torch.cuda.empty_cache()
        return Measurement(case.op, case.name, direction, provider, None, note="out of memory")
    except Exception as e:  # a peer that cannot run this case (e.g. a compile failure) is recorded
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


def run_case(case: Case, benchmark) -> None:
    """Time every provider in every direction, record them, and hand Triton's fwd+bwd to pytest-benchmark."""
    rows = []
    for direction in DIRECTIONS:
        for provider, fn in case.providers.items():
            if isinstance(fn, str):
                rows.append(Measurement(case.op, case.name, direction, provider, None, note=fn))
            else:
                rows.append(_measure(case, provider, fn, direction))
    MEASUREMENTS.extend(rows)
    triton_fn = case.providers["triton"]

    def triton_step():
        out = triton_fn(*case.inputs)
        (out if out.dim() == 0 else out.sum()).backward()
        torch.cuda.synchronize()

    benchmark.extra_info.update({f"{r.provider} {r.direction} ms": r.ms for r in rows})
    benchmark.pedantic(triton_step, rounds=5, warmup_rounds=1)
    for t in _grad_leaves(case.inputs):
        t.grad = None


def _randn(*shape, dtype=torch.bfloat16, scale=1.0):
    return (scale * torch.randn(*shape, device="cuda", dtype=torch.float32)).to(dtype).requires_grad_()


def _four_providers(triton_fn, reference, builtin) -> dict:
    return {"triton": triton_fn, "reference": reference, "compiled-reference": torch.compile(reference),
            "builtin": builtin}


# ----------------------------------------------------------------------------- row-wise ops

ROWS = [(16384, 4096), (16384, 1024)]


@pytest.mark.parametrize("rows, cols", ROWS, ids=lambda v: str(v))
def test_rmsnorm(benchmark, rows, cols):
    x, w = _randn(rows, cols), _randn(cols)
    elt = x.element_size()
    case = Case("rmsnorm", f"{rows}x{cols} bf16", [x, w], _four_providers(
        lambda a, b: kernels.rmsnorm(a, b, backend="triton"), kernels.rmsnorm_reference,
        lambda a, b: F.rms_norm(a, (cols,), b, 1e-5)),
        bytes={"fwd": 2 * rows * cols * elt, "bwd": 3 * rows * cols * elt, "fwd+bwd": 5 * rows * cols * elt})
    run_case(case, benchmark)


@pytest.mark.parametrize("rows, cols", ROWS, ids=lambda v: str(v))
def test_softmax(benchmark, rows, cols):
    x = _randn(rows, cols, scale=3.0)
    elt = x.element_size()
    case = Case("softmax", f"{rows}x{cols} bf16", [x], _four_providers(
        lambda a: kernels.softmax(a, backend="triton"), kernels.softmax_reference, lambda a: F.softmax(a, -1)),
        bytes={"fwd": 2 * rows * cols * elt, "bwd": 3 * rows * cols * elt, "fwd+bwd": 5 * rows * cols * elt})
    run_case(case, benchmark)


# ----------------------------------------------------------------------------- attention

ATTENTION = [(64, 1024), (64, 2048), (64, 4096), (64, 8192), (128, 1024), (128, 2048), (128, 4096), (128, 8192)]


def _sdpa_flash(causal: bool):
    from torch.nn.attention import SDPBackend, sdpa_kernel

    def run(q, k, v):
        with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
            return F.scaled_dot_product_attention(q, k, v, is_causal=causal)

    return run


@pytest.mark.parametrize("causal", [True, False], ids=["causal", "full"])
@pytest.mark.parametrize("head_dim, seq", ATTENTION, ids=lambda v: str(v))
def test_attention(benchmark, head_dim, seq, causal):
    if not causal and seq not in (1024, 4096):
        pytest.skip("non-causal attention is benchmarked at seq 1024 and 4096 only")
    batch, heads = 8, 16
    q, k, v = (_randn(batch, heads, seq, head_dim) for _ in range(3))
    reference = lambda a, b, c: kernels.attention_reference(a, b, c, causal=causal)  # noqa: E731
    providers = _four_providers(lambda a, b, c: kernels.attention(a, b, c, causal=causal, backend="triton"),
                                reference, _sdpa_flash(causal))
    scores_gib = batch * heads * seq * seq * 4 / 2**30
    if scores_gib > MAX_REFERENCE_SCORES_GIB:
        for name in ("reference", "compiled-reference"):
            providers[name] = f"skipped: would materialise {scores_gib:.0f} GiB of float32 scores per copy"
    fwd = 4 * batch * heads * seq * seq * head_dim * (0.5 if causal else 1.0)  # QK^T and PV
    flops = {"fwd": fwd, "bwd": 2.5 * fwd, "fwd+bwd": 3.5 * fwd}  # backward: 5 matmuls to the forward's 2
    case = Case("attention" + ("-causal" if causal else ""), f"b{batch} h{heads} s{seq} d{head_dim} bf16",
                [q, k, v], providers, flops=flops)
    run_case(case, benchmark)


# ----------------------------------------------------------------------------- cross-entropy


def test_cross_entropy(benchmark):
    tokens, vocab = 8192, 50304
    logits = _randn(tokens, vocab, scale=2.0)
    targets = torch.randint(0, vocab, (tokens,), device="cuda")
    elt = logits.element_size()
    case = Case("cross_entropy", f"{tokens}x{vocab} bf16", [logits, targets], _four_providers(
        lambda x, t: kernels.cross_entropy(x, t, backend="triton"), kernels.cross_entropy_reference,
        lambda x, t: F.cross_entropy(x, t)),
        # minimum traffic: the forward reads the logits, the backward writes their gradient
        bytes={"fwd": tokens * vocab * elt, "bwd": tokens * vocab * elt, "fwd+bwd": 2 * tokens * vocab * elt})
    run_case(case, benchmark)


@pytest.mark.parametrize("hidden_dim, softcap", [(768, 0.0), (2048, 0.0), (768, 30.0)], ids=str)
def test_linear_cross_entropy(benchmark, hidden_dim, softcap):
    tokens, vocab = 8192, 50304
    hidden = _randn(tokens, hidden_dim)
    weight = _randn(vocab, hidden_dim, scale=hidden_dim**-0.5)
    targets = torch.randint(0, vocab, (tokens,), device="cuda")
    matmul = 2 * tokens * hidden_dim * vocab

    def builtin(h, w, t):
        logits = F.linear(h, w)
        return F.cross_entropy(softcap * torch.tanh(logits / softcap) if softcap else logits, t)

    case = Case("linear_cross_entropy" + (f"-softcap{softcap:g}" if softcap else ""),
                f"{tokens}x{hidden_dim}->{vocab} bf16", [hidden, weight, targets],
                _four_providers(
                    lambda h, w, t: kernels.linear_cross_entropy(h, w, t, backend="triton", softcap=softcap),
                    lambda h, w, t: kernels.linear_cross_entropy_reference(h, w, t, softcap=softcap), builtin),
                flops={"fwd": matmul, "bwd": 2 * matmul, "fwd+bwd": 3 * matmul})
    run_case(case, benchmark)
