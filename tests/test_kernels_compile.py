"""Every Triton kernel compiles for an H100 (sm_90), checked without a GPU.

The interpreter runs the kernels' arithmetic but not Triton's compiler, which is stricter (types
across branches and loops, dot shapes, shared memory). ``kernels.compile_check --quick`` compiles
one representative configuration per kernel and code path to a cubin with the bundled ptxas; it
runs in a subprocess because the interpreter must be off for compilation.
"""

from __future__ import annotations

import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_every_kernel_compiles_for_sm90():
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    out = subprocess.run([sys.executable, "-m", "tritonlm.kernels.compile_check", "--quick", "--arch", "90"], env=env,
                         cwd=REPO, capture_output=True, text=True, timeout=600)
    report = out.stdout + out.stderr[-3000:]
    assert out.returncode == 0, report
    lines = [line for line in out.stdout.splitlines() if line.startswith(("ok ", "FAIL"))]
    # Row-wise kernels (single-pass and looping), cross-entropy, and the four attention kernels
    # in bf16 (head dims 64 and 128) and float32.
    assert len(lines) >= 20 and all(line.startswith("ok ") for line in lines), report
    for kernel in ("rmsnorm fwd", "rmsnorm bwd", "softmax fwd", "softmax bwd", "cross_entropy",
                   "attention forward", "attention dkdv", "attention dq", "attention delta"):
        assert any(kernel in line for line in lines), f"{kernel} was not compiled\n{report}"


def test_compile_check_refuses_to_run_under_the_interpreter():
    env = dict(os.environ, TRITON_INTERPRET="1")
    out = subprocess.run([sys.executable, "-m", "tritonlm.kernels.compile_check", "--quick"], env=env, cwd=REPO,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "unset TRITON_INTERPRET" in out.stderr
