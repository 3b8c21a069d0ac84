"""The package works where Triton cannot be installed (macOS, Windows: CPU, no Triton).

Each check runs in a fresh interpreter in which ``import triton`` fails, as it does there
(``sys.modules['triton'] = None``). Every module imports, the model trains on the PyTorch
references, and wherever Triton is really needed the message names the problem and the fix.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("corpora", "kernels", "model", "tokenizer", "train", "util")
BLOCK_TRITON = "import sys\nsys.modules['triton'] = None  # what `import triton` meets without it\n"


def run_without_triton(code: str, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    return subprocess.run([sys.executable, "-c", BLOCK_TRITON + code, *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)


def last_json(proc: subprocess.CompletedProcess):
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def package_modules() -> list[str]:
    names = []
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            parts = path.relative_to(REPO).with_suffix("").parts
            if "__pycache__" in parts or parts[-1] == "__main__":
                continue
            module = parts[:-1] if parts[-1] == "__init__" else parts
            names.append(".".join(("tritonlm", *module)))
    return names


def test_every_module_imports_without_triton():
    # kernels._aot drives Triton's compiler ahead of time: it is Triton or nothing
    modules = [name for name in package_modules() if name != "tritonlm.kernels._aot"]
    proc = run_without_triton("""
import importlib, json
failed = {}
for name in sys.argv[1:]:
    try:
        importlib.import_module(name)
    except Exception as error:
        failed[name] = repr(error)
print(json.dumps({"failed": failed, "triton": "triton" in sys.modules and sys.modules["triton"] is not None}))
""", *modules)
    result = last_json(proc)
    assert len(modules) > 50
    assert result == {"failed": {}, "triton": False}


def test_the_model_trains_on_the_references_and_a_triton_request_says_why_not():
    proc = run_without_triton("""
import json, torch
from tritonlm import kernels
from tritonlm.model import ModelConfig, TransformerLM
from tritonlm.kernels._backend import BackendUnavailable
from tritonlm.kernels.rmsnorm import rmsnorm_forward

torch.manual_seed(0)
x, w = torch.randn(5, 37, dtype=torch.float64), torch.rand(37, dtype=torch.float64) + 0.5
ours = kernels.rmsnorm(x, w, eps=1e-6, backend="auto")
gap = (ours - torch.nn.functional.rms_norm(x, (37,), w, eps=1e-6)).abs().max().item()

model = TransformerLM.from_config(ModelConfig(vocab_size=61, context_length=16, d_model=32, num_layers=2, num_heads=4,
                                  d_ff=64, kernels="auto"))
ids = torch.randint(0, 61, (3, 16))
loss = torch.nn.functional.cross_entropy(model(ids).flatten(0, 1), ids.roll(-1, 1).flatten())
loss.backward()
grads = all(p.grad is not None and torch.isfinite(p.grad).all().item() for p in model.parameters())

messages = []
try:
    kernels.rmsnorm(x, w, backend="triton")
except BackendUnavailable as error:
    messages.append(str(error))
try:
    rmsnorm_forward(x.float(), w.float(), 1e-6)  # the launcher itself, past the backend check
except BackendUnavailable as error:
    messages.append(str(error))
print(json.dumps({"gap": gap, "loss": loss.item(), "grads": grads, "messages": messages}))
""")
    result = last_json(proc)
    assert result["gap"] < 1e-12
    assert 3.0 < result["loss"] < 5.0 and result["grads"]  # ln(61) = 4.1 at initialisation
    assert len(result["messages"]) == 2
    assert all("triton package is not installed" in m for m in result["messages"]), result["messages"]
    assert "pip install triton" in result["messages"][1] and "kernels='torch'" in result["messages"][1]


def test_a_broken_triton_install_is_named_and_the_references_run():
    # installed, but its import fails part way (a missing shared library or dependency): the same
    # answer everywhere, so `auto` takes the references instead of launching a kernel that cannot run
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    proc = subprocess.run([sys.executable, "-c", """
import json, sys, torch
sys.modules['triton.language'] = None  # what a broken install meets part way through `import triton`
from tritonlm import kernels
from tritonlm.kernels._backend import BackendUnavailable, resolve_backend
from tritonlm.kernels.rmsnorm import rmsnorm_forward

x, w = torch.randn(4, 24), torch.rand(24) + 0.5
gap = (kernels.rmsnorm(x, w, eps=1e-6, backend="auto") - torch.nn.functional.rms_norm(x, (24,), w, eps=1e-6)).abs().max()
messages = []
for attempt in (lambda: resolve_backend("triton", "cuda"), lambda: rmsnorm_forward(x, w, 1e-6)):
    try:
        attempt()
    except BackendUnavailable as error:
        messages.append(str(error))
print(json.dumps({"auto_on_cuda": resolve_backend("auto", "cuda"), "gap": gap.item(), "messages": messages}))
"""], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    result = last_json(proc)
    assert result["auto_on_cuda"] == "torch" and result["gap"] < 1e-5
    assert len(result["messages"]) == 2
    for message in result["messages"]:
        assert "triton is installed but cannot be imported" in message and "triton.language" in message
        assert "pip install --force-reinstall triton" in message and "'torch'" in message


def test_the_compile_check_says_it_needs_triton():
    proc = run_without_triton("from tritonlm.kernels.compile_check import main\nsys.exit(main(['--quick']))")
    assert proc.returncode == 2
    assert "needs the triton package" in proc.stderr and "pip install triton" in proc.stderr
