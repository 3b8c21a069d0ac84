"""Compile every Triton kernel for an NVIDIA GPU ahead of time, without a GPU.

The CPU interpreter checks what the kernels compute, not that they compile: it accepts code the
real compiler rejects, and says nothing about shared memory or register pressure. This tool runs
Triton's whole pipeline (TTIR -> TTGIR -> LLVM -> PTX -> cubin with the bundled ptxas) for each
kernel at the configurations its launcher uses on a GPU, and reports the shared memory each needs
and, from ``ptxas -v``, its registers and spills.

    python -m tritonlm.kernels.compile_check             # every kernel x dtype x config (minutes)
    python -m tritonlm.kernels.compile_check --quick     # one representative per kernel and path (CI)
    python -m tritonlm.kernels.compile_check --arch 100  # another architecture (default 90 = H100)

It must run with ``TRITON_INTERPRET`` unset: the interpreter replaces the compiled kernels.
"""

from __future__ import annotations

import argparse
import importlib
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass

import triton

_FLOAT_ARGS = {"eps", "qk_scale", "sm_scale", "softcap", "z_loss"}
_TORCH_TO_TRITON = {"bf16": "*bf16", "fp16": "*fp16", "fp32": "*fp32"}


@dataclass
class KernelSpec:
    """One kernel at one configuration: pointer argument types and compile-time constants."""

    name: str
    kernel: object  # a JITFunction or an Autotuner wrapping one
    pointers: dict[str, str]
    constexprs: dict[str, object]
    num_warps: int
    num_stages: int = 3


@dataclass
class CompileReport:
    name: str
    ok: bool
    shared_bytes: int | None = None
    registers: int | None = None
    spill_bytes: int | None = None
    error: str = ""


def _jit_function(kernel):
    return kernel.fn if isinstance(kernel, triton.runtime.Autotuner) else kernel


def _signature(spec: KernelSpec) -> dict[str, str]:
    fn = _jit_function(spec.kernel)
    sig = {}
    for name in fn.arg_names:
        if name in spec.constexprs:
            sig[name] = "constexpr"
        elif name in spec.pointers:
            sig[name] = spec.pointers[name]
        else:
            sig[name] = "fp32" if name in _FLOAT_ARGS else "i32"
    return sig


def _ptxas_usage(ptx: str, arch: int) -> tuple[int | None, int | None]:
    """(registers, spill bytes) from ``ptxas -v``, or (None, None) when ptxas is not bundled."""
    ptxas = os.path.join(os.path.dirname(triton.__file__), "backends", "nvidia", "bin", "ptxas")
    if not os.path.exists(ptxas):
        return None, None
    with tempfile.NamedTemporaryFile("w", suffix=".ptx", delete=False) as f:
        f.write(ptx)
    try:
        suffix = "a" if arch >= 90 else ""
        out = subprocess.run([ptxas, "-v", f"--gpu-name=sm_{arch}{suffix}", f.name, "-o", os.devnull],
                             capture_output=True, text=True, timeout=300).stderr
    finally:
        os.unlink(f.name)
    regs = re.search(r"Used (\d+) registers", out)
    spills = re.findall(r"(\d+) bytes spill (?:stores|loads)", out)
    return (int(regs.group(1)) if regs else None), (sum(map(int, spills)) if spills else None)


def compile_spec(spec: KernelSpec, arch: int) -> CompileReport:
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    source = ASTSource(_jit_function(spec.kernel), _signature(spec), spec.constexprs)
    try:
        compiled = triton.compile(source, target=GPUTarget("cuda", arch, 32),
                                  options={"num_warps": spec.num_warps, "num_stages": spec.num_stages})
    except Exception as e:  # the compiler's own message is the useful part
        return CompileReport(spec.name, False, error=f"{type(e).__name__}: {e}"[:2000])
    registers, spills = _ptxas_usage(compiled.asm["ptx"], arch)
    return CompileReport(spec.name, True, compiled.metadata.shared, registers, spills)


def _row_specs(dtypes: list[str], quick: bool) -> list[KernelSpec]:
    from ._blocks import row_blocks

    rms, smx, ce = (importlib.import_module(f"tritonlm.kernels.{m}") for m in ("rmsnorm", "softmax", "cross_entropy"))
    widths = [4096, 50304] if quick else [1024, 4096, 16384, 50304]
    specs = []
    for dt in dtypes:
        p = _TORCH_TO_TRITON[dt]
        for n in widths:
            b = row_blocks(n)
            c = {"BLOCK": b.block, "SINGLE_PASS": b.single_pass}
            tag = f"{dt} n={n} block={b.block} {'single' if b.single_pass else 'loop'}"
            io = {"X": p, "Y": p, "W": p, "DY": p, "DX": p, "RSTD": "*fp32", "DW_PARTIAL": "*fp32"}
            specs += [
                KernelSpec(f"rmsnorm fwd {tag}", rms._rmsnorm_forward_kernel, io, c, b.num_warps),
                KernelSpec(f"rmsnorm bwd {tag}", rms._rmsnorm_backward_kernel, io, c, b.num_warps),
                KernelSpec(f"softmax fwd {tag}", smx._softmax_forward_kernel, io, c, b.num_warps),
                KernelSpec(f"softmax bwd {tag}", smx._softmax_backward_kernel, io, c, b.num_warps),
            ]
            cb = row_blocks(n, ce._GPU_MAX_BLOCK, ce._INTERPRETER_MAX_BLOCK)
            ce_io = {"LOGITS": p, "GRAD": p, "TARGETS": "*i64", "LOSS": "*fp32", "NUM_VALID": "*fp32"}
            variants = [(True, False, False), (True, True, True)]  # (gradient, soft-cap, z-loss)
            if not quick:
                variants += [(False, False, False), (False, True, True)]
            for write_grad, softcap, z_loss in variants:
                specs.append(KernelSpec(
                    f"cross_entropy {dt} n={n} block={cb.block} grad={write_grad} cap/z={softcap}",
                    ce._cross_entropy_kernel, ce_io,
                    {"BLOCK": cb.block, "SINGLE_PASS": cb.single_pass, "WRITE_GRAD": write_grad, "SOFTCAP": softcap,
                     "Z_LOSS": z_loss}, cb.num_warps))
        specs.append(KernelSpec(f"scale_by_upstream {dt}", ce._scale_by_upstream_kernel, {"X": p, "UPSTREAM": "*fp32"},
                                {"BLOCK": 4096}, 8))
    return specs


def _attention_specs(dtypes: list[str], quick: bool) -> list[KernelSpec]:
    from ._attention_tiles import dot_precision
    from ._blocks import attention_row_block, attention_tiles, head_dim_block

    fwd, bwd = (importlib.import_module(f"tritonlm.kernels.{m}") for m in ("attention", "_attention_backward"))
    import torch

    torch_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}
    specs = []
    for dt in dtypes:
        p = _TORCH_TO_TRITON[dt]
        io = {n: p for n in ("Q", "K", "V", "O", "DO", "DQ", "DK", "DV")} | {"LSE": "*fp32", "DELTA": "*fp32"}
        head_dims = ([64] if dt == "fp32" else [64, 128]) if quick else [16, 24, 64, 80, 128]
        for head_dim in head_dims:
            for causal in (True,) if quick else (True, False):
                for kind, kernel in (("forward", fwd._attention_forward_kernel), ("dkdv", bwd._attention_dkdv_kernel),
                                     ("dq", bwd._attention_dq_kernel)):
                    tiles = attention_tiles(kind, dt == "fp32", head_dim)
                    for block_m, block_n, warps, stages in tiles[:1] if quick else tiles:
                        c = dict(BLOCK_M=block_m, BLOCK_N=block_n, BLOCK_D=head_dim_block(head_dim), HEAD_DIM=head_dim,
                                 CAUSAL=causal, PRECISION=dot_precision(torch_dtype[dt]))
                        specs.append(KernelSpec(
                            f"attention {kind} {dt} d={head_dim} causal={causal} {block_m}x{block_n} w{warps} s{stages}",
                            kernel, io, c, warps, stages))
            specs.append(KernelSpec(f"attention delta {dt} d={head_dim}", bwd._attention_delta_kernel, io,
                                    {"BLOCK_M": attention_row_block(), "BLOCK_D": head_dim_block(head_dim),
                                     "HEAD_DIM": head_dim}, 4))
    return specs


def kernel_specs(quick: bool = False) -> list[KernelSpec]:
    """Every kernel at the configurations its launcher uses on a GPU (fewer with ``quick``)."""
    return (_row_specs(["bf16"] if quick else ["bf16", "fp16", "fp32"], quick)
            + _attention_specs(["bf16", "fp32"] if quick else ["bf16", "fp16", "fp32"], quick))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--arch", type=int, default=90, help="compute capability x10 (90 = H100, 80 = A100)")
    parser.add_argument("--quick", action="store_true", help="one representative per kernel and code path")
    args = parser.parse_args(argv)
    if os.environ.get("TRITON_INTERPRET", "0") == "1":
        print("unset TRITON_INTERPRET: under the interpreter there is nothing to compile", file=sys.stderr)
        return 2
    from tqdm import tqdm

    reports = [compile_spec(spec, args.arch) for spec in tqdm(kernel_specs(args.quick), desc=f"sm_{args.arch}")]
    for r in reports:
        usage = f"shared {r.shared_bytes:>6} B  regs {r.registers}  spills {r.spill_bytes} B" if r.ok else r.error
        print(f"{'ok  ' if r.ok else 'FAIL'} {r.name:<62} {usage}")
    failed = [r for r in reports if not r.ok]
    spilled = [r for r in reports if r.spill_bytes]
    print(f"{len(reports) - len(failed)}/{len(reports)} kernels compiled for sm_{args.arch}; "
          f"{len(spilled)} spill registers")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
