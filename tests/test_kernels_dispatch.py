"""The Triton kernels are the code that runs: every op, both directions, at every layer a user can
reach (the registered operators, the differentiable operator / autograd.Function, the
``backend=`` entry point, the model with ``kernels="triton"``, decoding).

Each test records the Triton launches (``record_launches`` hooks the JIT / interpreter run
method, below any code of ours) and checks the values against ``torch.nn.functional``, an
independent implementation: a test passes only if the named kernels ran and computed the answer.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from tritonlm import kernels
from bench.kernel_checks import assert_all_close, output_and_grads, record_launches
from tritonlm.model import TransformerLM
from tritonlm.model.presets import tiny

RMSNORM_FWD, RMSNORM_BWD = "_rmsnorm_forward_kernel", "_rmsnorm_backward_kernel"
SOFTMAX_FWD, SOFTMAX_BWD = "_softmax_forward_kernel", "_softmax_backward_kernel"
ATTENTION_FWD = "_attention_forward_kernel"
ATTENTION_BWD = ("_attention_delta_kernel", "_attention_dkdv_kernel", "_attention_dq_kernel")
CE, SCALE = "_cross_entropy_kernel", "_scale_by_upstream_kernel"


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _launched_in_order(log, forward: tuple[str, ...], backward: tuple[str, ...], split: int) -> None:
    """Every forward kernel launched before ``split`` launches, every backward kernel after."""
    for name in forward:
        assert name in log.names[:split], f"{name} did not run in the forward: {log.names}"
    for name in backward:
        assert name in log.names[split:], f"{name} did not run in the backward: {log.names}"


# ------------------------------------------------------------------ registered operators, no autograd


def test_rmsnorm_operators_launch_their_kernels(device):
    x, w, dy = (torch.randn(*s, generator=_gen(1)).to(device) for s in ((5, 300), (300,), (5, 300)))
    with record_launches() as log:
        y, rstd = torch.ops.tritonlm.rmsnorm_forward(x, w, 1e-5)
        dx, dw = torch.ops.tritonlm.rmsnorm_backward(dy, x, w, rstd)
    assert log.names == [RMSNORM_FWD, RMSNORM_BWD]
    want = output_and_grads(lambda a, b: F.rms_norm(a, (300,), b, 1e-5), [x, w], dy)
    assert_all_close([y, dx, dw], [want[0], *want[1]], 2e-5, 1e-5, ["y", "dx", "dweight"])


def test_softmax_operators_launch_their_kernels(device):
    x, dy = (torch.randn(4, 1000, generator=_gen(2)).to(device) for _ in range(2))
    with record_launches() as log:
        y = torch.ops.tritonlm.softmax_forward(x)
        dx = torch.ops.tritonlm.softmax_backward(dy, y)
    assert log.names == [SOFTMAX_FWD, SOFTMAX_BWD]
    want = output_and_grads(lambda a: F.softmax(a, -1), [x], dy)
    assert_all_close([y, dx], [want[0], *want[1]], 2e-6, 1e-5, ["y", "dx"])


def test_attention_operators_launch_their_kernels(device):
    gen = _gen(3)
    q, k, v, do = (torch.randn(1, 2, 37, 16, generator=gen).to(device) for _ in range(4))
    with record_launches() as log:
        out, lse = torch.ops.tritonlm.attention_forward(q, k, v, True)
        dq, dk, dv = torch.ops.tritonlm.attention_backward(do, q, k, v, out, lse, True)
    assert log.names == [ATTENTION_FWD, *ATTENTION_BWD]
    want = output_and_grads(lambda *a: F.scaled_dot_product_attention(*a, is_causal=True), [q, k, v], do)
    assert_all_close([out, dq, dk, dv], [want[0], *want[1]], 2e-5, 1e-4, ["out", "dq", "dk", "dv"])


def test_cross_entropy_operators_launch_their_kernels(device):
    logits = torch.randn(6, 301, generator=_gen(4)).to(device)
    targets = torch.randint(0, 301, (6,), generator=_gen(5)).to(device)
    grad = torch.empty_like(logits)
    num_valid = torch.tensor(6.0, device=device)
    with record_launches() as log:
        losses = torch.ops.tritonlm.cross_entropy_losses(logits, targets, -100, 0.0, 0.0)
        losses_too = torch.ops.tritonlm.cross_entropy_losses_and_grad_(logits, targets, num_valid, grad, -100, 0.0,
                                                                       0.0)
        torch.ops.tritonlm.scale_by_upstream_(grad, torch.tensor(0.5, device=device))
    assert log.names == [CE, CE, SCALE]
    want = output_and_grads(lambda a: F.cross_entropy(a, targets), [logits], torch.tensor(0.5))
    torch.testing.assert_close(losses, F.cross_entropy(logits, targets, reduction="none"))
    torch.testing.assert_close(losses_too, losses)
    torch.testing.assert_close(grad, want[1][0])


# ------------------------------------------------------ differentiable layer and the backend= entry point

TARGETS = torch.randint(0, 70_001, (5,), generator=_gen(6))  # moved to the logits' device below


def _targets(like: torch.Tensor) -> torch.Tensor:
    return TARGETS.to(like.device)


ENTRY_POINTS = {
    # op: (function of the float inputs, F reference, input shapes, forward kernels, backward kernels)
    "rmsnorm": (lambda x, w: kernels.rmsnorm(x, w, backend="triton"),
                lambda x, w: F.rms_norm(x, (300,), w, 1e-5), [(2, 3, 300), (300,)], (RMSNORM_FWD,), (RMSNORM_BWD,)),
    "softmax": (lambda x: kernels.softmax(x, dim=1, backend="triton"), lambda x: F.softmax(x, 1),
                [(3, 300, 2)], (SOFTMAX_FWD,), (SOFTMAX_BWD,)),
    "attention": (lambda q, k, v: kernels.attention(q, k, v, causal=True, backend="triton"),
                  lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True),
                  [(2, 2, 21, 24)] * 3, (ATTENTION_FWD,), ATTENTION_BWD),
    "cross_entropy": (lambda x: kernels.cross_entropy(x, _targets(x), backend="triton"),
                      lambda x: F.cross_entropy(x, _targets(x)), [(5, 70_001)], (CE,), (SCALE,)),
    "linear_cross_entropy": (lambda h, w: kernels.linear_cross_entropy(h, w, _targets(h), backend="triton"),
                             lambda h, w: F.cross_entropy(h @ w.t(), _targets(h)),
                             [(5, 16), (70_001, 16)], (CE,), (SCALE,)),
}


@pytest.mark.parametrize("op", list(ENTRY_POINTS))
def test_entry_point_runs_the_triton_kernels_in_both_directions(device, op):
    fn, reference, shapes, forward, backward = ENTRY_POINTS[op]
    gen = _gen(7)
    inputs = [torch.randn(*s, generator=gen).to(device) / (s[-1] ** 0.5 if op == "linear_cross_entropy" else 1)
              for s in shapes]
    upstream = torch.tensor(0.7, device=device) if op.endswith("cross_entropy") else None
    with record_launches() as log:
        leaves = [t.clone().requires_grad_() for t in inputs]
        out = fn(*leaves)
        split = len(log.names)
        out.backward(upstream if upstream is not None else torch.ones_like(out))
    _launched_in_order(log, forward, backward, split)
    want = output_and_grads(reference, inputs, upstream)
    assert_all_close([out.detach(), *(t.grad for t in leaves)], [want[0], *want[1]], 3e-5, 1e-4,
                     ["out"] + [f"grad {i}" for i in range(len(leaves))])


def test_differentiable_operators_backpropagate_through_their_kernels(device):
    """``torch.ops.tritonlm.*_forward`` are differentiable themselves (``register_autograd``)."""
    gen = _gen(8)
    x, w = torch.randn(7, 33, generator=gen).to(device).requires_grad_(), torch.randn(33, generator=gen).to(device)
    w.requires_grad_()
    with record_launches() as log:
        y, _ = torch.ops.tritonlm.rmsnorm_forward(x, w, 1e-5)
        s = torch.ops.tritonlm.softmax_forward(y)
        s.square().sum().backward()
    assert log.names == [RMSNORM_FWD, SOFTMAX_FWD, SOFTMAX_BWD, RMSNORM_BWD]
    want = output_and_grads(lambda a, b: F.softmax(F.rms_norm(a, (33,), b, 1e-5), -1).square().sum(), [x, w])
    assert_all_close([x.grad, w.grad], want[1], 2e-5, 1e-4, ["dx", "dweight"])


def test_auto_runs_no_triton_kernel_off_gpu(device):
    if device != "cpu":
        pytest.skip("on a GPU auto means Triton")
    x = torch.randn(3, 5)
    with record_launches() as log:
        y = kernels.softmax(x, backend="auto")
    assert log.names == []
    torch.testing.assert_close(y, F.softmax(x, -1))


# ------------------------------------------------------------------------------ the model and decoding


def _tiny_triton_lm(device):
    cfg = tiny(vocab_size=97, context_length=20, d_model=32, num_layers=1, num_heads=2, qk_norm=True,
               kernels="triton")
    torch.manual_seed(0)
    return TransformerLM.from_config(cfg, device=device)


def test_model_training_step_runs_every_training_kernel(device):
    model = _tiny_triton_lm(device)
    ids = torch.randint(0, 97, (2, 21), generator=_gen(9)).to(device)
    with record_launches() as log:
        loss = model.loss(ids[:, :-1], ids[:, 1:])
        split = len(log.names)
        loss.backward()
    _launched_in_order(log, (RMSNORM_FWD, ATTENTION_FWD, CE), (SCALE, RMSNORM_BWD, *ATTENTION_BWD), split)
    # 2 block norms + q/k norms + the final norm, forward and backward.
    assert log.count(RMSNORM_FWD) == log.count(RMSNORM_BWD) == 5


def test_decoding_samples_through_the_triton_softmax(device):
    from tritonlm.train.generate import generate

    model = _tiny_triton_lm(device).eval()
    with record_launches() as log:
        out = generate(model, [1, 2, 3], max_new_tokens=3, temperature=0.8, top_p=0.9,
                       generator=torch.Generator(device="cpu").manual_seed(0))
    assert len(out) == 3
    assert log.count(SOFTMAX_FWD) == 3 and log.count(ATTENTION_FWD) >= 3
