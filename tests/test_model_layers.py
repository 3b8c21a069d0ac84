"""Model building blocks against independent references (torch built-ins, float64 recomputation),
forward and gradients, on random inputs with awkward shapes."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch.autograd import gradcheck

from tritonlm.model import (
    Embedding,
    Linear,
    RMSNorm,
    RotaryPositionalEmbedding,
    SiLUFFN,
    SwiGLU,
    scaled_dot_product_attention,
    silu,
    softmax,
)
from tritonlm.model.functional import silu, silu_gate

# (dtype, atol, rtol) chosen together: bf16 has an 8-bit mantissa.
DTYPES = [
    pytest.param(torch.float32, 1e-5, 1e-5, id="float32"),
    pytest.param(torch.bfloat16, 2e-2, 2e-2, id="bfloat16"),
]
SHAPES = [(7,), (3, 5), (2, 3, 11)]  # leading dims, incl. none and odd sizes


def leaf(*shape, dtype=torch.float32, scale=1.0, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(*shape, generator=g) * scale).to(dtype).requires_grad_()


def assert_close_with_grads(ours, ref, inputs, atol, rtol):
    """Forward values and the gradients w.r.t. every input of a random upstream gradient agree."""
    torch.testing.assert_close(ours, ref, atol=atol, rtol=rtol)
    upstream = torch.randn(ours.shape, generator=torch.Generator().manual_seed(1)).to(ours.dtype)
    g_ours = torch.autograd.grad(ours, inputs, upstream, retain_graph=True)
    g_ref = torch.autograd.grad(ref, inputs, upstream)
    for a, b in zip(g_ours, g_ref):
        torch.testing.assert_close(a, b, atol=atol * 10, rtol=rtol * 10)


@pytest.mark.parametrize("dtype, atol, rtol", DTYPES)
@pytest.mark.parametrize("lead", SHAPES)
def test_linear_matches_f_linear(dtype, atol, rtol, lead):
    layer = Linear(13, 6, dtype=dtype)
    assert layer.weight.shape == (6, 13) and set(layer.state_dict()) == {"weight"}
    x = leaf(*lead, 13, dtype=dtype)
    assert_close_with_grads(layer(x), F.linear(x, layer.weight), (x, layer.weight), atol, rtol)


@pytest.mark.parametrize("dtype, atol, rtol", DTYPES)
def test_embedding_matches_f_embedding_including_repeated_ids(dtype, atol, rtol):
    emb = Embedding(19, 5, dtype=dtype)
    ids = torch.tensor([[0, 18, 3, 3], [7, 7, 7, 1]])
    assert_close_with_grads(emb(ids), F.embedding(ids, emb.weight), (emb.weight,), atol, rtol)


@pytest.mark.parametrize("dtype, atol, rtol", DTYPES)
@pytest.mark.parametrize("lead", SHAPES)
def test_rmsnorm_matches_f_rms_norm(dtype, atol, rtol, lead):
    norm = RMSNorm(9, eps=1e-5, dtype=dtype)
    with torch.no_grad():
        norm.weight.copy_(torch.randn(9))
    x = leaf(*lead, 9, dtype=dtype, scale=3.0)
    out = norm(x)
    assert out.dtype == dtype
    ref = F.rms_norm(x.float(), (9,), norm.weight.float(), eps=1e-5).to(dtype)
    assert_close_with_grads(out, ref, (x, norm.weight), atol, rtol)


@pytest.mark.parametrize("dtype, atol, rtol", DTYPES)
@pytest.mark.parametrize("dim", [-1, 0, 1])
def test_softmax_matches_f_softmax_even_for_huge_values(dtype, atol, rtol, dim):
    x = leaf(4, 6, 5, dtype=dtype, scale=1e4)  # exp would overflow without the max shift
    out = softmax(x, dim=dim)
    assert torch.isfinite(out).all()
    assert_close_with_grads(out, F.softmax(x.float(), dim=dim).to(dtype), (x,), atol, rtol)


@pytest.mark.parametrize("dtype, atol, rtol", DTYPES)
def test_silu_matches_f_silu(dtype, atol, rtol):
    x = leaf(3, 17, dtype=dtype, scale=4.0)
    assert_close_with_grads(silu(x), F.silu(x), (x,), atol, rtol)


@pytest.mark.parametrize("dtype, atol, rtol", DTYPES)
@pytest.mark.parametrize("lead, q_len, k_len, d", [((2,), 5, 5, 8), ((2, 3), 4, 7, 6), ((1, 2, 2), 1, 9, 3)])
def test_sdpa_matches_torch_with_boolean_masks_and_leading_dims(dtype, atol, rtol, lead, q_len, k_len, d):
    q, k, v = leaf(*lead, q_len, d, dtype=dtype, seed=1), leaf(*lead, k_len, d, dtype=dtype, seed=2), leaf(
        *lead, k_len, d, dtype=dtype, seed=3)
    mask = torch.rand(q_len, k_len, generator=torch.Generator().manual_seed(4)) > 0.4
    mask[:, 0] = True  # every query sees at least one key
    for m in (None, mask, mask.expand(*lead, q_len, k_len)):
        ours = scaled_dot_product_attention(q, k, v, mask=m)
        ref = F.scaled_dot_product_attention(q.float(), k.float(), v.float(), attn_mask=m).to(dtype)
        assert_close_with_grads(ours, ref, (q, k, v), atol, rtol)


def rope_float64_complex(x: torch.Tensor, positions: torch.Tensor, theta: float) -> torch.Tensor:
    """Independent RoPE: pairs as complex numbers times exp(i * pos * theta^(-2k/d)), in float64."""
    d = x.shape[-1]
    pairs = torch.view_as_complex(x.double().reshape(*x.shape[:-1], d // 2, 2).contiguous())
    freqs = theta ** (-torch.arange(0, d, 2, dtype=torch.float64) / d)
    angles = positions.double()[..., None] * freqs
    rotation = torch.polar(torch.ones_like(angles), angles)  # (..., seq, d/2)
    return torch.view_as_real(pairs * rotation).reshape(x.shape)


@pytest.mark.parametrize("dtype, atol, rtol", DTYPES)
@pytest.mark.parametrize("theta, d_k", [(10_000.0, 16), (500.0, 6)])
def test_rope_matches_float64_complex_rotation(dtype, atol, rtol, theta, d_k):
    rope = RotaryPositionalEmbedding(theta, d_k, max_seq_len=64)
    assert rope.state_dict() == {}  # tables are not part of the model's weights
    x = leaf(2, 3, 10, d_k, dtype=dtype)
    positions = torch.randint(0, 64, (2, 1, 10), generator=torch.Generator().manual_seed(0))
    ref = rope_float64_complex(x.detach(), positions, theta)
    torch.testing.assert_close(rope(x, positions).double(), ref, atol=atol * 4, rtol=rtol)
    default = rope(x)  # positions default to 0..seq-1
    torch.testing.assert_close(default.double(), rope_float64_complex(x.detach(), torch.arange(10), theta),
                               atol=atol * 4, rtol=rtol)
    # a rotation preserves norms, so the gradient of sum(out^2) is 2x
    (grad,) = torch.autograd.grad(rope(x, positions).float().pow(2).sum(), x)
    torch.testing.assert_close(grad.float(), 2 * x.detach().float(), atol=atol * 20, rtol=rtol * 4)


def test_rope_keeps_float32_tables_in_a_bfloat16_model():
    rope = RotaryPositionalEmbedding(10_000.0, 8, 4096).to(torch.bfloat16)
    assert rope.cos.dtype == torch.float32
    x = torch.randn(1, 4096, 8)
    torch.testing.assert_close(rope(x).double(), rope_float64_complex(x, torch.arange(4096), 10_000.0),
                               atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("dtype, atol, rtol", DTYPES)
def test_swiglu_matches_hand_formula(dtype, atol, rtol):
    ffn = SwiGLU(12, 40, dtype=dtype)
    assert [tuple(ffn.state_dict()[f"w{i}.weight"].shape) for i in (1, 2, 3)] == [(40, 12), (12, 40), (40, 12)]
    x = leaf(2, 5, 12, dtype=dtype)
    a, b = x @ ffn.w1.weight.T, x @ ffn.w3.weight.T
    ref = (a * torch.sigmoid(a) * b) @ ffn.w2.weight.T
    assert_close_with_grads(ffn(x), ref, (x, ffn.w1.weight, ffn.w2.weight, ffn.w3.weight), atol, rtol)


def test_silu_ffn_matches_hand_formula():
    ffn = SiLUFFN(8, 32)
    assert set(ffn.state_dict()) == {"w1.weight", "w2.weight"}
    x = leaf(3, 8)
    assert_close_with_grads(ffn(x), F.silu(x @ ffn.w1.weight.T) @ ffn.w2.weight.T, (x, ffn.w1.weight), 1e-5, 1e-5)


@pytest.mark.parametrize("make, std", [
    (lambda: Linear(300, 500).weight, math.sqrt(2 / 800)),
    (lambda: Embedding(700, 300).weight, 1.0),
])
def test_initialisation_is_truncated_normal_with_the_design_std(make, std):
    torch.manual_seed(0)
    w = make().detach()
    assert w.abs().max() <= 3 * std + 1e-6  # cut at 3 std
    # a normal truncated at +-3 sigma has std 0.9866 sigma; 150k samples pin it to ~0.5%
    assert abs(w.std().item() / std - 0.9866) < 0.01
    assert abs(w.mean().item()) < 0.01 * std


def test_rmsnorm_gain_starts_at_one():
    assert torch.equal(RMSNorm(10).weight, torch.ones(10))


def test_swiglu_gate_matches_silu_times_b_with_gradcheck():
    a, b = (torch.randn(3, 5, dtype=torch.float64, requires_grad=True) for _ in range(2))
    torch.testing.assert_close(silu_gate(a, b), silu(a) * b)
    assert gradcheck(silu_gate, (a, b))
