"""Compiled training computes eager's gradients: every hand-written ``autograd.Function`` (the
references' closed-form backwards and the SwiGLU gate) and the whole LM on the reference path.

These are the ops the CPU recipe compiles. torch 2.11 (the GPU machines' torch) routes the
gradient of a Function output that aliases one of the forward's intermediates (a tensor last
written in place, or ``.to`` of its own dtype) to the wrong input (pytorch/pytorch#180642): the
forward is right and every gradient upstream of the op is wrong. Finite differences cannot see
it (they run eagerly), so compiled gradients are compared with eager ones here, on the
``aot_eager`` backend (AOT autograd is where the bug lives; no C compiler is needed).
"""

from __future__ import annotations

import pytest
import torch

from tritonlm.kernels import attention_reference, cross_entropy_reference, rmsnorm_reference, softmax_reference
from tritonlm.model import TransformerLM
from tritonlm.model.functional import silu_gate
from tritonlm.model.presets import tiny


def _rand(*shape, dtype=torch.float32, seed=0, grad=True):
    t = torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)
    return t.requires_grad_(grad)


def _targets(*shape, vocab, seed=0):
    targets = torch.randint(0, vocab, shape, generator=torch.Generator().manual_seed(seed))
    targets.view(-1)[::3] = -100  # some ignored rows
    return targets


# name -> (function, inputs) on awkward shapes; each function returns one tensor
def _cases(dtype):
    x, w = _rand(3, 5, 13, dtype=dtype, seed=1), _rand(13, dtype=dtype, seed=2)
    q, k, v = (_rand(2, 3, 7, 5, dtype=dtype, seed=s) for s in (3, 4, 5))
    logits, targets = _rand(4, 5, 11, dtype=dtype, seed=6), _targets(4, 5, vocab=11)
    a, b = _rand(3, 7, 9, dtype=dtype, seed=7), _rand(3, 7, 9, dtype=dtype, seed=8)
    return {
        "rmsnorm": (lambda x, w: rmsnorm_reference(x, w, 1e-5), (x, w)),
        "softmax_last_dim": (lambda x: softmax_reference(x, -1), (x,)),
        "softmax_middle_dim": (lambda x: softmax_reference(x, 1), (x,)),
        "attention_causal": (lambda q, k, v: attention_reference(q, k, v, causal=True), (q, k, v)),
        "attention_full": (lambda q, k, v: attention_reference(q, k, v), (q, k, v)),
        "cross_entropy": (lambda z: cross_entropy_reference(z, targets, softcap=4.0, z_loss=1e-3), (logits,)),
        "silu_gate": (silu_gate, (a, b)),
    }


def _grads(fn, inputs, upstream_seed=9):
    out = fn(*inputs)
    upstream = torch.randn(out.shape, generator=torch.Generator().manual_seed(upstream_seed), dtype=out.dtype)
    return out.detach(), torch.autograd.grad(out, inputs, upstream)


@pytest.mark.parametrize("dtype, tol", [(torch.float32, 1e-5), (torch.bfloat16, 2e-2)], ids=["fp32", "bf16"])
@pytest.mark.parametrize("name", list(_cases(torch.float32)))
def test_hand_written_backward_compiles_to_eager_gradients(name, dtype, tol):
    fn, inputs = _cases(dtype)[name]
    torch._dynamo.reset()
    compiled = torch.compile(fn, fullgraph=True, backend="aot_eager")
    out_c, grads_c = _grads(compiled, inputs)
    out_e, grads_e = _grads(fn, inputs)
    torch.testing.assert_close(out_c, out_e, atol=tol, rtol=tol)
    for i, (got, want) in enumerate(zip(grads_c, grads_e)):
        torch.testing.assert_close(got, want, atol=tol, rtol=tol, msg=lambda m: f"{name}, input {i}: {m}")


@pytest.mark.parametrize("ffn", ["swiglu", "silu", "relu2"])
def test_lm_on_the_reference_path_compiles_to_eager_gradients(ffn):
    """The CPU recipe's model (``kernels="torch"``) with QK-norm and soft-capping: the loss and
    every parameter's gradient of one compiled step equal eager's."""
    cfg = tiny(vocab_size=97, context_length=16, d_model=32, num_layers=2, num_heads=2, qk_norm=True,
               logit_softcap=10.0, ffn=ffn, kernels="torch")
    torch.manual_seed(0)
    model = TransformerLM.from_config(cfg)
    ids = torch.randint(0, 97, (3, 17), generator=torch.Generator().manual_seed(1))

    def loss_fn(inputs, targets):
        return model.loss(inputs, targets, z_loss=1e-3)

    torch._dynamo.reset()
    results = {}
    for name, fn in (("compiled", torch.compile(loss_fn, fullgraph=True, backend="aot_eager")), ("eager", loss_fn)):
        model.zero_grad(set_to_none=True)
        loss = fn(ids[:, :-1], ids[:, 1:])
        loss.backward()
        results[name] = (loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters()})
    (loss_c, grads_c), (loss_e, grads_e) = results["compiled"], results["eager"]
    torch.testing.assert_close(loss_c, loss_e, atol=1e-5, rtol=1e-5)
    for name, grad in grads_e.items():
        torch.testing.assert_close(grads_c[name], grad, atol=1e-5, rtol=1e-4, msg=lambda m: f"{name}: {m}")
