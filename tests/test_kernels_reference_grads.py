"""The hand-written backward passes of the from-scratch references, checked by finite differences.

``torch.autograd.gradcheck`` in float64 on small awkward shapes: masks, softcap, z-loss and
ignored targets included.
"""

from __future__ import annotations

import pytest
import torch
from torch.autograd import gradcheck

from tritonlm.kernels import attention_reference, cross_entropy_reference, rmsnorm_reference, softmax_reference


def _rand(*shape, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=gen, dtype=torch.float64).requires_grad_()


@pytest.mark.parametrize("shape, dim", [((3, 5), -1), ((2, 4, 3), 1), ((7,), 0)], ids=str)
def test_softmax_reference_backward(shape, dim):
    assert gradcheck(lambda x: softmax_reference(x, dim), (_rand(*shape),))


@pytest.mark.parametrize("q_len, k_len, causal", [(5, 5, True), (3, 6, True), (4, 7, False)])
def test_attention_reference_backward(q_len, k_len, causal):
    q, k, v = _rand(2, 2, q_len, 3, seed=1), _rand(2, 2, k_len, 3, seed=2), _rand(2, 2, k_len, 3, seed=3)
    assert gradcheck(lambda *a: attention_reference(*a, causal=causal), (q, k, v))


def test_attention_reference_backward_with_mask_and_broadcast_keys():
    q, k, v = _rand(2, 3, 4, 3, seed=4), _rand(1, 3, 5, 3, seed=5), _rand(1, 3, 5, 3, seed=6)
    mask = torch.rand(4, 5, generator=torch.Generator().manual_seed(7)) > 0.3
    mask[:, 0] = True  # every query sees at least one key
    assert gradcheck(lambda *a: attention_reference(*a, mask=mask), (q, k, v))


@pytest.mark.parametrize("softcap, z_loss", [(0.0, 0.0), (2.0, 0.0), (0.0, 0.1), (1.5, 0.05)])
def test_cross_entropy_reference_backward(softcap, z_loss):
    logits = _rand(2, 3, 7, seed=8)
    targets = torch.tensor([[1, -100, 6], [0, 3, -100]])
    assert gradcheck(lambda x: cross_entropy_reference(x, targets, softcap=softcap, z_loss=z_loss), (logits,))


def test_cross_entropy_reference_all_ignored_is_nan():
    logits = _rand(3, 5)
    assert torch.isnan(cross_entropy_reference(logits, torch.full((3,), -100)))


def test_rmsnorm_reference_backward():
    x, w = _rand(2, 3, 6, seed=9), _rand(6, seed=10)
    assert gradcheck(lambda a, b: rmsnorm_reference(a, b, 1e-5), (x, w))

