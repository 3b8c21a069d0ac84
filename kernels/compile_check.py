"""Compile every Triton kernel for NVIDIA GPUs ahead of time, without a GPU.

The CPU interpreter checks what the kernels compute, not that they compile: it accepts code the
real compiler rejects and says nothing about shared memory, registers or spills. This tool runs
each launcher on CPU tensors of the model's real shapes with the launches captured (see
``_aot``), then compiles every kernel at every configuration that launcher (or its autotuner,
pruned for the target) can pick, with the specialisation a real launch gets, through Triton's
whole pipeline and its own ptxas, for each architecture:

    python -m tritonlm.kernels.compile_check                    # sm_80, sm_89, sm_90; fp32 and fp64 scalars
    python -m tritonlm.kernels.compile_check --quick            # a representative slice (CI, minutes)
    python -m tritonlm.kernels.compile_check --arch 90 --floats fp64  # one architecture, inductor's typing

Float scalars are compiled both as a plain launch types them (fp32) and as inductor types Python
floats inside a compiled graph (fp64). It fails (exit 1) on any kernel that does not compile,
spills registers, needs more shared memory than the architecture has, or does fp64 arithmetic
beyond converting a scalar once; a measurement it cannot read is a failure, never a pass.
It must run with ``TRITON_INTERPRET`` unset: the interpreter replaces the compiled kernels.
"""

from __future__ import annotations

import argparse
import functools
import multiprocessing
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from typing import Callable

ARCHS = (80, 89, 90)
ARCH_NAMES = {80: "A100", 89: "RTX 4090", 90: "H100"}


@dataclass(frozen=True)
class Case:
    """A launcher called on tensors of one shape: the launches it makes are what gets compiled.
    ``run`` makes its own (uninitialised) tensors, so a case costs nothing until it is run."""

    dtype: str
    name: str
    run: Callable[[], object]


_DTYPES = {"bf16": "bfloat16", "fp16": "float16", "fp32": "float32"}


def _empty(*shape, dtype: str):
    import torch

    return torch.empty(*shape, dtype=getattr(torch, _DTYPES[dtype]))


def _row_cases(dtype: str, widths: list[int], rows: int = 64) -> list[Case]:
    from .rmsnorm import rmsnorm_backward, rmsnorm_forward
    from .softmax import softmax_backward, softmax_forward

    def x(n):
        return _empty(rows, n, dtype=dtype)

    def rms_bwd(n):
        return rmsnorm_backward(x(n), x(n), _empty(n, dtype=dtype), _empty(rows, dtype="fp32"))

    cases = []
    for n in widths:
        cases += [Case(dtype, f"rmsnorm n={n}", lambda n=n: rmsnorm_forward(x(n), _empty(n, dtype=dtype), 1e-5)),
                  Case(dtype, f"rmsnorm bwd n={n}", lambda n=n: rms_bwd(n)),
                  Case(dtype, f"softmax n={n}", lambda n=n: softmax_forward(x(n))),
                  Case(dtype, f"softmax bwd n={n}", lambda n=n: softmax_backward(x(n), x(n)))]
    return cases


def _loss_cases(dtype: str, vocabs: list[int], quick: bool) -> list[Case]:
    import torch

    from .cross_entropy import cross_entropy_losses, cross_entropy_losses_and_grad_, scale_by_upstream_

    def loss(vocab, softcap, z_loss, grad):
        logits, targets = _empty(64, vocab, dtype=dtype), torch.zeros(64, dtype=torch.long)
        if grad:
            return cross_entropy_losses_and_grad_(logits, targets, torch.tensor(64.0), logits, -100, softcap, z_loss)
        return cross_entropy_losses(logits, targets, -100, softcap, z_loss)

    cases = []
    for vocab in vocabs:
        for softcap, z_loss in ((0.0, 0.0), (30.0, 1e-4)):
            tag = f"vocab={vocab} cap={softcap:g} z={z_loss:g}"
            for grad in (True,) if quick else (True, False):
                cases.append(Case(dtype, f"cross_entropy {'grad' if grad else 'loss'} {tag}",
                                  lambda v=vocab, s=softcap, z=z_loss, g=grad: loss(v, s, z, g)))
    cases.append(Case(dtype, "scale_by_upstream",
                      lambda: scale_by_upstream_(_empty(4096, dtype=dtype), torch.tensor(0.5))))
    return cases


def _attention_cases(dtype: str, head_dims: list[int], causals: tuple[bool, ...]) -> list[Case]:
    from .attention import attention_forward
    from ._attention_backward import attention_backward

    batch, heads, seq = 2, 4, 1024

    def qkv(d):  # (batch, seq, heads, d) projections viewed as (batch, heads, seq, d), as the model does
        return [_empty(batch, seq, heads, d, dtype=dtype).transpose(1, 2) for _ in range(3)]

    def backward(d, causal):
        q, k, v = qkv(d)
        return attention_backward(q, q, k, v, q, _empty(batch * heads, seq, dtype="fp32"), causal)

    cases = []
    for d in head_dims:
        for causal in causals:
            tag = f"d={d} causal={causal}"
            cases += [Case(dtype, f"attention {tag}", lambda d=d, c=causal: attention_forward(*qkv(d), c)),
                      Case(dtype, f"attention bwd {tag}", lambda d=d, c=causal: backward(d, c))]
    return cases


@functools.lru_cache(maxsize=2)
def cases(quick: bool) -> list[Case]:
    """Every launcher at the shapes the model launches it with (fewer with ``quick``)."""
    found = []
    for dtype in ["bf16", "fp32"] if quick else ["bf16", "fp16", "fp32"]:
        widths = [64, 4096, 50304] if quick else [64, 128, 768, 1024, 4096, 8192, 16384, 50304]
        vocabs = [50304] if quick else [10000, 32000, 50304]
        head_dims = ([64] if dtype == "fp32" else [64, 128]) if quick else [32, 64, 80, 128]
        found += _row_cases(dtype, widths) + _loss_cases(dtype, vocabs, quick)
        found += _attention_cases(dtype, head_dims, (True,) if quick else (True, False))
    return found


@dataclass(frozen=True)
class Job:
    """One compilation: case ``index`` of the list, its ``launch``-th launch, config ``config``."""

    index: int
    launch: int
    config: int
    arch: int
    floats: str
    quick: bool


def plan(quick: bool, archs: list[int], floats: list[str]) -> list[Job]:
    """Every (case, launch, configuration, architecture, float typing) to compile, deduplicated:
    two cases that launch one kernel with the same configuration and specialisation compile once."""
    from ._aot import capture, config_label, launch_configs, specialisation_key
    from ._blocks import GpuTarget

    jobs, seen = [], set()
    for index, case in enumerate(cases(quick)):
        for li, launch in enumerate(capture(case.run)):
            for arch in archs:
                for ci, kwargs in enumerate(launch_configs(launch, GpuTarget.for_arch(arch))):
                    for fl in floats:
                        key = (launch.name, config_label(kwargs), specialisation_key(launch, kwargs), arch, fl)
                        if key not in seen:
                            seen.add(key)
                            jobs.append(Job(index, li, ci, arch, fl, quick))
    return jobs


def run_job(job: Job) -> dict:
    """Compile one job (in a worker process) and return its report as a dict."""
    from ._aot import compile_launch, launch_configs
    from ._blocks import GpuTarget

    case = cases(job.quick)[job.index]
    launch = _captured(job.quick, job.index)[job.launch]
    kwargs = launch_configs(launch, GpuTarget.for_arch(job.arch))[job.config]
    report = compile_launch(launch, kwargs, job.arch, job.floats)
    problems = report.problems + _shared_estimate_problems(launch, kwargs, report)
    return {**asdict(report), "dtype": case.dtype, "case": case.name, "problems": problems}


_ATTENTION_KINDS = {"attention_forward_kernel": "forward", "attention_dkdv_kernel": "dkdv",
                    "attention_dq_kernel": "dq"}


def _shared_estimate_problems(launch, kwargs: dict, report) -> list[str]:
    """The autotuners prune attention tiles by ``attention_shared_bytes`` before compiling: that
    bound must never be below what the compiler really allocates."""
    from ._blocks import attention_shared_bytes

    kind = _ATTENTION_KINDS.get(launch.name)
    if kind is None or not report.ok:
        return []
    tile = (kwargs["BLOCK_M"], kwargs["BLOCK_N"], kwargs["num_warps"], kwargs["num_stages"])
    bound = attention_shared_bytes(kind, tile, kwargs["BLOCK_D"], launch.args[0].element_size())
    if report.shared_bytes > bound:
        return [f"shared memory {report.shared_bytes} B above the pruning bound {bound} B"]
    return []


@functools.lru_cache(maxsize=4)  # jobs come in case order: a few cases' launches (and tensors) at a time
def _captured(quick: bool, index: int):
    from ._aot import capture

    return capture(cases(quick)[index].run)


def use_captured_launches() -> None:
    """Make ``launch()`` call ``kernel[grid]`` directly (no triton_op wrapper), where it is captured."""
    os.environ["TRITONLM_OPAQUE_KERNELS"] = "1"


def compile_table(quick: bool, archs: list[int], floats: list[str], jobs: int, progress: bool = True) -> list[dict]:
    from tqdm import tqdm

    work = plan(quick, archs, floats)
    # spawn, not fork: a forked copy of a process that has started torch's thread pools can hang
    spawn = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=jobs, initializer=use_captured_launches, mp_context=spawn) as pool:
        rows = list(tqdm(pool.map(run_job, work, chunksize=4), total=len(work), disable=not progress,
                         desc=f"compiling for {', '.join(f'sm_{a}' for a in archs)}"))
    return rows


def summary(rows: list[dict]) -> dict:
    """Totals per architecture and float typing: compiled, failed, spilling, fp64, over shared memory."""
    out = {}
    for row in rows:
        key = f"sm_{row['arch']} {row['floats']}"
        s = out.setdefault(key, {"kernels": 0, "failed": 0, "spilling": 0, "spill_bytes": 0, "fp64": 0,
                                 "max_registers": 0, "max_shared_bytes": 0})
        s["kernels"] += 1
        s["failed"] += not row["ok"]
        s["spilling"] += bool(row["spill_bytes"])
        s["spill_bytes"] += row["spill_bytes"] or 0
        s["fp64"] += bool(row["fp64_instructions"])
        s["max_registers"] = max(s["max_registers"], row["registers"] or 0)
        s["max_shared_bytes"] = max(s["max_shared_bytes"], row["shared_bytes"] or 0)
    return out


def print_table(rows: list[dict]) -> None:
    for r in sorted(rows, key=lambda r: (r["arch"], r["floats"], r["kernel"], r["dtype"], r["config"])):
        usage = (f"shared {r['shared_bytes']:>6} B  regs {r['registers']:>3}  spills {r['spill_bytes']:>4} B"
                 if r["ok"] else "")
        flag = "FAIL" if r["problems"] else "ok  "
        print(f"{flag} sm_{r['arch']} {r['floats']} {r['kernel']:<22} {r['dtype']:<4} {r['config']:<70} {usage}"
              + (f"  <- {'; '.join(r['problems'])}" if r["problems"] else ""))


def print_totals(totals: dict) -> None:
    for key, s in totals.items():
        print(f"{key}: {s['kernels'] - s['failed']}/{s['kernels']} compiled, {s['spilling']} spilling "
              f"({s['spill_bytes']} B), {s['fp64']} with fp64 arithmetic, max {s['max_registers']} registers, "
              f"max shared {s['max_shared_bytes']} B")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tritonlm.kernels.compile_check",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--arch", default=",".join(map(str, ARCHS)),
                        help="compute capabilities x10, comma-separated (80 = A100, 89 = RTX 4090, 90 = H100)")
    parser.add_argument("--floats", default="fp32,fp64", help="how float scalars are typed: fp32, fp64 or both")
    parser.add_argument("--quick", action="store_true", help="a representative slice: fewer shapes and dtypes")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="compiler processes")
    parser.add_argument("--quiet", action="store_true", help="print failures and totals only")
    args = parser.parse_args(argv)
    from ._triton import TRITON_AVAILABLE

    if not TRITON_AVAILABLE:
        print("the compile check needs the triton package (Linux: pip install triton); "
              "Triton's compiler needs no GPU, but it must be installed", file=sys.stderr)
        return 2
    if os.environ.get("TRITON_INTERPRET", "0") == "1":
        print("unset TRITON_INTERPRET: under the interpreter there is nothing to compile", file=sys.stderr)
        return 2
    archs = [int(a) for a in args.arch.split(",")]
    floats = [f.strip() for f in args.floats.split(",")]
    if set(floats) - {"fp32", "fp64"}:
        parser.error(f"--floats takes fp32 and/or fp64, got {args.floats}")
    started = time.perf_counter()
    use_captured_launches()
    rows = compile_table(args.quick, archs, floats, args.jobs, progress=not args.quiet)
    print_table([r for r in rows if r["problems"]] if args.quiet else rows)
    print_totals(summary(rows))
    bad = [r for r in rows if r["problems"]]
    print(f"{len(rows) - len(bad)}/{len(rows)} compilations fit their GPU ({time.perf_counter() - started:.0f} s)")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
