"""Every Triton kernel compiles for A100 (sm_80), RTX 4090 (sm_89) and H100 (sm_90), checked
without a GPU.

The interpreter runs the kernels' arithmetic but not Triton's compiler, which is stricter (types
across branches and loops, dot shapes, shared memory) and decides registers and spills.
``tritonlm.kernels.compile_check`` captures each launcher's real launches and compiles every
configuration it can pick with Triton's whole pipeline and its bundled ptxas. It runs in a
subprocess because the interpreter must be off for compilation. CI compiles a representative
slice (``--quick``) with float scalars typed fp64, as inductor types them: the stricter case.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COMPILER_ENV = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
KERNELS = ("rmsnorm_forward_kernel", "rmsnorm_backward_kernel", "softmax_forward_kernel",
           "softmax_backward_kernel", "cross_entropy_kernel", "scale_by_upstream_kernel",
           "attention_forward_kernel", "attention_dkdv_kernel", "attention_dq_kernel", "attention_delta_kernel")
TOTALS = re.compile(r"^(sm_\d+) (fp32|fp64): (\d+)/(\d+) compiled, (\d+) spilling \((\d+) B\), (\d+) with fp64 "
                    r"arithmetic, max (\d+) registers", re.M)


def run_compile_check(*args: str, timeout: int = 900) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tritonlm.kernels.compile_check", *args], env=COMPILER_ENV,
                          cwd=REPO, capture_output=True, text=True, timeout=timeout)


@pytest.mark.slow
def test_ci_slice_compiles_for_every_gpu_without_spills_or_fp64():
    out = run_compile_check("--quick", "--arch", "80,89,90", "--floats", "fp64")
    report = out.stdout[-6000:] + out.stderr[-3000:]
    assert out.returncode == 0, report
    totals = {(arch, floats): rest for arch, floats, *rest in TOTALS.findall(out.stdout)}
    assert set(totals) == {("sm_80", "fp64"), ("sm_89", "fp64"), ("sm_90", "fp64")}, report
    for compiled, total, spilling, spill_bytes, fp64, max_registers in totals.values():
        assert compiled == total and int(total) >= 40, report
        assert spilling == spill_bytes == fp64 == "0", report
        assert 0 < int(max_registers) <= 255, report
    rows = [line for line in out.stdout.splitlines() if line.startswith(("ok ", "FAIL"))]
    for kernel in KERNELS:
        for arch in ("sm_80", "sm_89", "sm_90"):
            assert any(f" {arch} " in r and f" {kernel} " in r for r in rows), f"{kernel} not compiled for {arch}"


_FP64_PROBE = textwrap.dedent("""
    import torch, triton, triton.language as tl
    from tritonlm.kernels._aot import capture, compile_launch, launch_configs
    from tritonlm.kernels._blocks import GpuTarget
    from tritonlm.kernels._ops import launch

    @triton.jit
    def scale_raw(X, s, BLOCK: tl.constexpr):
        offs = tl.arange(0, BLOCK)
        tl.store(X + offs, tl.load(X + offs) * s)  # fp32 x fp64 scalar: promoted to fp64

    @triton.jit
    def scale_cast(X, s, BLOCK: tl.constexpr):
        s = tl.cast(s, tl.float32)
        offs = tl.arange(0, BLOCK)
        tl.store(X + offs, tl.load(X + offs) * s)

    x = torch.empty(256)
    for kernel in (scale_raw, scale_cast):
        (found,) = capture(lambda: launch(kernel, (1,))(x, 0.5, BLOCK=256))
        config = launch_configs(found, GpuTarget.for_arch(90))[0]
        for floats in ("fp32", "fp64"):
            r = compile_launch(found, config, 90, floats)
            print(kernel.__name__, floats, r.ok, len(r.fp64_instructions), type(r.registers).__name__,
                  type(r.spill_bytes).__name__)
""")


def test_fp64_scalars_are_detected_and_a_cast_at_entry_removes_them(tmp_path):
    """The check can fail: a kernel that multiplies by an fp64 scalar is caught; one that casts
    the scalar once at entry (as every kernel here does) is clean under both typings."""
    probe = tmp_path / "probe.py"  # triton.jit reads a kernel's source from its file
    probe.write_text(_FP64_PROBE)
    out = subprocess.run([sys.executable, str(probe)], env={**COMPILER_ENV, "TRITONLM_OPAQUE_KERNELS": "1"},
                         cwd=REPO, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    results = {tuple(line.split()[:2]): line.split()[2:] for line in out.stdout.splitlines() if line.startswith("scale")}
    assert results[("scale_raw", "fp32")][:2] == ["True", "0"]
    assert results[("scale_raw", "fp64")][0] == "True" and int(results[("scale_raw", "fp64")][1]) > 0
    assert results[("scale_cast", "fp64")][:2] == ["True", "0"]
    assert all(r[2:] == ["int", "int"] for r in results.values()), results


def test_compile_check_refuses_to_run_under_the_interpreter():
    out = subprocess.run([sys.executable, "-m", "tritonlm.kernels.compile_check", "--quick"],
                         env=dict(os.environ, TRITON_INTERPRET="1"), cwd=REPO, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 2 and "unset TRITON_INTERPRET" in out.stderr
