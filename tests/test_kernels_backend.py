"""Backend selection and the launchers' input checks: every bad input fails with a clear message."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from tritonlm import kernels
from tritonlm.kernels.attention import attention_forward
from tritonlm.kernels.cross_entropy import cross_entropy_losses
from tritonlm.kernels.linear_cross_entropy import LinearCrossEntropyFunction
from tritonlm.kernels.rmsnorm import rmsnorm_forward
from tritonlm.kernels.softmax import softmax_forward

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only failure; Triton runs on this GPU")
def test_triton_without_gpu_or_interpreter_fails_with_the_backend_message():
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    code = (
        "import torch\nfrom tritonlm import kernels\n"
        "try:\n"
        "    kernels.rmsnorm(torch.randn(2, 3), torch.ones(3), backend='triton')\n"
        "except RuntimeError as e:\n"
        "    print(e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=REPO, capture_output=True, text=True,
                         timeout=120)
    assert "kernels='triton' cannot run here" in out.stdout, out.stdout + out.stderr
    assert "TRITON_INTERPRET=1" in out.stdout and "CUDA GPU" in out.stdout



@pytest.mark.skipif(torch.cuda.is_available(), reason="the interpreter's fixes; a GPU compiles the kernels")
def test_interpreter_fixes_wait_for_the_first_interpreted_launch():
    """Importing the package changes nothing of Triton's; the first interpreted launch applies
    the fixes (here the bfloat16 ``tl.dot`` one), and the bf16 attention then matches the reference."""
    code = (
        "import torch\nfrom triton.runtime import interpreter\nfrom tritonlm import kernels\n"
        "patched = lambda: getattr(interpreter.InterpreterBuilder.create_dot, '_tritonlm_patched', False)\n"
        "print('after import', patched())\n"
        "q, k, v = (torch.randn(1, 2, 16, 16).bfloat16() for _ in range(3))\n"
        "out = kernels.attention(q, k, v, causal=True, backend='triton')\n"
        "ref = kernels.attention_reference(q.float(), k.float(), v.float(), causal=True)\n"
        "print('after launch', patched(), round((out.float() - ref).abs().max().item(), 3))\n"
    )
    env = {**os.environ, "TRITON_INTERPRET": "1"}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=REPO, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    before, after = result.stdout.splitlines()
    assert before == "after import False"
    _, _, state, error = after.split()
    assert state == "True" and float(error) < 0.05, after

def test_unknown_backend_is_rejected(device):
    x = torch.randn(3, 5, device=device)
    with pytest.raises(ValueError, match="unknown kernel backend 'cuda'"):
        kernels.softmax(x, backend="cuda")


def test_rmsnorm_launcher_rejects_bad_inputs(device):
    x = torch.randn(4, 8, device=device)
    with pytest.raises(ValueError, match=r"weight must have shape \(8,\)"):
        rmsnorm_forward(x, torch.ones(7, device=device), 1e-5)
    with pytest.raises(TypeError, match="float64.*float32, bfloat16 and float16"):
        rmsnorm_forward(x.double(), torch.ones(8, device=device, dtype=torch.float64), 1e-5)
    with pytest.raises(ValueError, match="one device.*x on .*weight on meta"):
        rmsnorm_forward(x, torch.ones(8, device="meta"), 1e-5)
    with pytest.raises(ValueError, match="contiguous in its last dimension"):
        rmsnorm_forward(torch.randn(8, 4, device=device).t(), torch.ones(8, device=device), 1e-5)
    with pytest.raises(ValueError, match="must be 2-D"):
        softmax_forward(torch.randn(2, 3, 4, device=device))


def test_attention_launcher_rejects_bad_inputs(device):
    q = torch.randn(1, 2, 8, 16, device=device)
    with pytest.raises(ValueError, match="4-D"):
        attention_forward(q[0], q[0], q[0], causal=True)
    with pytest.raises(TypeError, match="share one dtype"):
        attention_forward(q, q.half(), q, causal=True)
    with pytest.raises(ValueError, match="agree in batch, heads and head_dim"):
        attention_forward(q, torch.randn(1, 3, 8, 16, device=device), torch.randn(1, 3, 8, 16, device=device), True)
    with pytest.raises(ValueError, match="more queries"):
        attention_forward(q, q[:, :, :4], q[:, :, :4], causal=True)
    with pytest.raises(ValueError, match="head_dim 300"):
        big = torch.randn(1, 1, 4, 300, device=device)
        attention_forward(big, big, big, causal=False)
    with pytest.raises(TypeError, match="int64"):
        kernels.attention(q.long(), q.long(), q.long(), backend="triton")


def test_cross_entropy_launcher_rejects_bad_inputs(device):
    logits = torch.randn(4, 10, device=device)
    good = torch.randint(0, 10, (4,), device=device)
    with pytest.raises(TypeError, match="int64 or int32"):
        cross_entropy_losses(logits, good.float(), -100, 0.0, 0.0)
    with pytest.raises(ValueError, match=r"targets has shape \(3,\).*\(4,\)"):
        kernels.cross_entropy(logits, good[:3], backend="triton")
    with pytest.raises(ValueError, match=r"weight must be \(vocab, hidden_dim\)"):
        kernels.linear_cross_entropy(torch.randn(4, 6, device=device), torch.randn(10, 5, device=device), good,
                                     backend="triton")
    hidden, weight = torch.randn(4, 6, device=device), torch.randn(10, 6, device=device).half()
    with pytest.raises(TypeError, match="share one dtype"):  # the launcher takes one dtype ...
        LinearCrossEntropyFunction.apply(hidden, weight, good, -100)
    # ... and the public function promotes mixed inputs (where a plain matmul would refuse them)
    torch.testing.assert_close(kernels.linear_cross_entropy(hidden, weight, good, backend="triton"),
                               kernels.linear_cross_entropy_reference(hidden, weight.float(), good))
