"""The Triton ops are native to torch.compile: registered operators that pass
``torch.library.opcheck`` (schema, autograd registration, fake tensors, AOT dispatch with dynamic
shapes), and a model with ``kernels="triton"`` that compiles with ``fullgraph=True`` (no graph
break anywhere) and trains exactly as it does eagerly.

On the CPU the operators are opaque (``custom_op``: the interpreter's kernels cannot be traced)
and the compiler backend is ``aot_eager``; on a GPU they are ``triton_op`` and the backend is
inductor, which traces into the kernels.
"""

from __future__ import annotations

import pytest
import torch

from bench.kernel_checks import record_launches
from tritonlm.model import TransformerLM
from tritonlm.model.presets import tiny

BACKEND = "inductor" if torch.cuda.is_available() else "aot_eager"


def _randn(device, *shape, grad=False, seed=0):
    t = torch.randn(*shape, generator=torch.Generator().manual_seed(seed + sum(shape))).to(device)
    return t.requires_grad_(grad)


def _operator_args(device):
    """Arguments for each registered operator: small, awkward shapes; differentiable inputs where
    the operator has an autograd formula (so its registration is checked too)."""
    x, w = _randn(device, 5, 40, grad=True), _randn(device, 40, grad=True)
    rstd = torch.rand(5, device=device) + 0.5
    q, k, v = (_randn(device, 1, 2, 19, 24, grad=True, seed=i) for i in range(3))
    lse = torch.randn(2, 19, device=device)
    logits = _randn(device, 6, 37)
    targets = torch.tensor([1, 5, -100, 36, 0, 7], device=device)
    hidden, head = _randn(device, 6, 8), _randn(device, 37, 8)
    num_valid = torch.tensor(5.0, device=device)
    return {
        "rmsnorm_forward": (x, w, 1e-5),
        "rmsnorm_backward": (_randn(device, 5, 40), x.detach(), w.detach(), rstd),
        "softmax_forward": (x,),
        "softmax_backward": (_randn(device, 5, 40), torch.softmax(x.detach(), -1)),
        "attention_forward": (q, k, v, True),
        "attention_backward": (_randn(device, 1, 2, 19, 24, seed=5), q.detach(), k.detach(), v.detach(),
                               _randn(device, 1, 2, 19, 24, seed=6), lse, True),
        "cross_entropy_losses": (logits, targets, -100, 0.0, 0.0),
        "cross_entropy_losses_and_grad_": (logits, targets, num_valid, torch.empty_like(logits), -100, 5.0, 1e-3),
        "scale_by_upstream_": (logits.clone(), torch.tensor(0.5, device=device)),
        "linear_cross_entropy_losses": (hidden, head, targets, -100, 0.0, 0.0, 4),
        "linear_cross_entropy_losses_and_grads_": (hidden, head, targets, num_valid, torch.empty_like(hidden),
                                                   torch.zeros(37, 8, device=device), -100, 0.0, 0.0, 4),
    }


@pytest.mark.parametrize("name", list(_operator_args("cpu")))
def test_registered_operator_passes_opcheck(device, name):
    args = _operator_args(device)[name]
    torch.library.opcheck(getattr(torch.ops.tritonlm, name), args)


def _tiny_lm(device):
    cfg = tiny(vocab_size=97, context_length=16, d_model=32, num_layers=2, num_heads=2, qk_norm=True,
               logit_softcap=10.0, kernels="triton")
    torch.manual_seed(0)
    return TransformerLM.from_config(cfg, device=device)


def test_lm_with_triton_kernels_compiles_fullgraph_and_trains_like_eager(device):
    model = _tiny_lm(device)
    ids = torch.randint(0, 97, (2, 17), generator=torch.Generator().manual_seed(1)).to(device)

    def loss_fn(a, b):
        return model.loss(a, b, z_loss=1e-3)

    compiled = torch.compile(loss_fn, fullgraph=True, backend=BACKEND)
    results = {}
    for name, fn in (("compiled", compiled), ("eager", loss_fn)):
        model.zero_grad(set_to_none=True)
        with record_launches() as log:
            loss = fn(ids[:, :-1], ids[:, 1:])
            loss.backward()
        results[name] = (loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}, log.names)
    (loss_c, grads_c, launched), (loss_e, grads_e, _) = results["compiled"], results["eager"]
    torch.testing.assert_close(loss_c, loss_e, atol=1e-5, rtol=1e-5)
    for name, grad in grads_e.items():
        torch.testing.assert_close(grads_c[name], grad, atol=1e-5, rtol=1e-4, msg=name)
    if BACKEND == "aot_eager":  # opaque operators: their kernels launch from the compiled graph
        for kernel in ("_rmsnorm_forward_kernel", "_attention_forward_kernel", "_cross_entropy_kernel",
                       "_rmsnorm_backward_kernel", "_attention_dq_kernel", "_scale_by_upstream_kernel"):
            assert kernel in launched, f"{kernel} did not run in the compiled step: {launched}"


def test_every_triton_entry_point_compiles_fullgraph(device):
    """rmsnorm, softmax, attention and both losses in one compiled function, no graph break."""
    from tritonlm import kernels
    def step(x, w, q, k, v, head, targets):
        y = kernels.rmsnorm(x, w, backend="triton")
        s = kernels.softmax(y, dim=0, backend="triton")
        a = kernels.attention(q, k, v, backend="triton")
        ce = kernels.cross_entropy(y, targets, backend="triton", softcap=3.0)
        lce = kernels.linear_cross_entropy(y, head, targets, backend="triton", z_loss=1e-3)
        return ce + lce + a.square().mean() + s.square().mean()

    inputs = [_randn(device, 4, 50, grad=True), _randn(device, 50, grad=True)]
    inputs += [_randn(device, 1, 2, 20, 16, grad=True, seed=i) for i in range(3)]
    inputs += [_randn(device, 30, 50, grad=True), torch.tensor([3, 29, -100, 0], device=device)]
    eager = step(*inputs)
    eager_grads = torch.autograd.grad(eager, [t for t in inputs if t.requires_grad])
    compiled = torch.compile(step, fullgraph=True, backend=BACKEND)(*inputs)
    compiled_grads = torch.autograd.grad(compiled, [t for t in inputs if t.requires_grad])
    torch.testing.assert_close(compiled, eager)
    for got, want in zip(compiled_grads, eager_grads):
        torch.testing.assert_close(got, want)


# On a GPU the operators are triton_ops: AOT autograd traces their bodies, and every kernel launch
# must appear in the graph as a ``triton_kernel_wrapper_functional`` node for inductor to compile.
# This traces the forward of the ops on fake CUDA tensors (no GPU, interpreter off) and prints the
# kernels found in the graph; running the graph needs CUDA and is not attempted. (The fused LM
# head is left out: slicing a fake CUDA tensor needs a CUDA build of torch.)
_TRACE_ON_FAKE_CUDA = """
import torch
from functorch.compile import aot_function, make_boxed_func
from torch._subclasses.fake_tensor import FakeTensorMode
from tritonlm import kernels
from tritonlm.kernels._ops import traceable_kernels
assert traceable_kernels()
graphs = []
def keep(gm, _):
    graphs.append(gm)
    raise SystemExit(0)  # seen the forward graph; its kernels cannot run without a GPU
def forward(x, w, q, logits, targets):
    y = kernels.rmsnorm(x, w, backend="triton")
    s = kernels.softmax(y, backend="triton")
    a = kernels.attention(q, q, q, backend="triton")
    ce = kernels.cross_entropy(logits, targets, backend="triton", softcap=30.0)
    return y.sum() + s.sum() + a.float().sum() + ce
with FakeTensorMode():
    args = (torch.empty(8, 64, device="cuda"), torch.empty(64, device="cuda"),
            torch.empty(1, 2, 128, 64, device="cuda", dtype=torch.bfloat16), torch.empty(8, 1000, device="cuda"),
            torch.zeros(8, dtype=torch.long, device="cuda"))
    try:
        aot_function(forward, fw_compiler=keep)(*args)
    except SystemExit:
        pass
code = graphs[0].code
import re
print(sorted(set(re.findall(r"kernel_idx = (\\\\d+)", code))), code.count("triton_kernel_wrapper_functional("))
"""


def test_gpu_operators_trace_into_their_triton_kernels_without_a_gpu():
    import os
    import subprocess
    import sys

    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = {k: v for k, v in os.environ.items() if k not in ("TRITON_INTERPRET", "TRITONLM_OPAQUE_KERNELS")}
    out = subprocess.run([sys.executable, "-c", _TRACE_ON_FAKE_CUDA], cwd=repo, env=env, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-4000:]
    # one kernel node each: rmsnorm, softmax, attention, cross-entropy
    assert out.stdout.strip().endswith(" 4"), out.stdout


def test_compiled_lm_module_runs_a_training_step(device):
    """``torch.compile(model, fullgraph=True)`` itself (the module, as a user compiles it): its
    logits through the Triton cross-entropy, one optimizer step, the same as eager."""
    from tritonlm import kernels
    from tritonlm.train.optim import AdamW

    ids = torch.randint(0, 97, (2, 17), generator=torch.Generator().manual_seed(2)).to(device)
    after = {}
    for name in ("compiled", "eager"):
        model = _tiny_lm(device)
        forward = torch.compile(model, fullgraph=True, backend=BACKEND) if name == "compiled" else model
        optimizer = AdamW(model.parameters(), lr=1e-2)
        logits = forward(ids[:, :-1])
        loss = kernels.cross_entropy(logits, ids[:, 1:], backend="triton")
        loss.backward()
        optimizer.step()
        after[name] = (loss.detach(), [p.detach().clone() for p in model.parameters()])
    torch.testing.assert_close(after["compiled"][0], after["eager"][0], atol=1e-5, rtol=1e-5)
    for got, want in zip(after["compiled"][1], after["eager"][1]):
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-4)
