"""Muon against independent references: the SVD's polar factor, the Newton–Schulz polynomial
applied to singular values one by one, two optimizer steps computed by hand in float64, and
AdamW for the parameters Muon leaves to it."""

from __future__ import annotations

import math

import pytest
import torch

from tritonlm.model import ModelConfig, TransformerLM
from tritonlm.train.muon import QUINTIC, Muon, hidden_matrices, muon_parameter_groups, newton_schulz, shape_scale
from tritonlm.train.optim import AdamW

CUBIC = (1.5, -0.5, 0.0)  # the classic Newton–Schulz iteration: converges to the polar factor itself


def polar_factor(matrix: torch.Tensor) -> torch.Tensor:
    u, _, vh = torch.linalg.svd(matrix.double(), full_matrices=False)
    return u @ vh


def spectral_newton_schulz(matrix: torch.Tensor, steps: int, coefficients=QUINTIC) -> torch.Tensor:
    """What Newton–Schulz does, computed on the singular values: U p(...p(Σ / ‖G‖_F)) Vᵀ."""
    a, b, c = coefficients
    u, s, vh = torch.linalg.svd(matrix.double(), full_matrices=False)
    s = s / (torch.linalg.matrix_norm(matrix.double())[..., None] + 1e-7)
    for _ in range(steps):
        s = a * s + b * s**3 + c * s**5
    return u @ torch.diag_embed(s) @ vh


@pytest.mark.parametrize("shape", [(5, 3), (3, 7), (16, 16), (2, 6, 4)], ids=str)
def test_cubic_newton_schulz_converges_to_the_svd_polar_factor(shape):
    torch.manual_seed(0)
    g = torch.randn(*shape, dtype=torch.float64) + 0.5 * torch.eye(*shape[-2:], dtype=torch.float64)
    got = newton_schulz(g, steps=60, coefficients=CUBIC, dtype=torch.float64)
    torch.testing.assert_close(got, polar_factor(g), rtol=0, atol=1e-9)


@pytest.mark.parametrize("dtype, atol", [(torch.float64, 1e-9), (torch.float32, 2e-5), (torch.bfloat16, 0.06)],
                         ids=["fp64", "fp32", "bf16"])
@pytest.mark.parametrize("shape", [(6, 4), (4, 9), (3, 33, 17)], ids=str)
def test_quintic_newton_schulz_is_its_polynomial_applied_to_the_singular_values(shape, dtype, atol):
    torch.manual_seed(1)
    g = torch.randn(*shape, dtype=torch.float64) * 3.0
    got = newton_schulz(g, steps=5, dtype=dtype)
    assert got.dtype == dtype and got.shape == g.shape
    torch.testing.assert_close(got.double(), spectral_newton_schulz(g, 5), rtol=0, atol=atol)
    # five quintic steps: every singular value near 1, the singular vectors the polar factor's
    singular_values = torch.linalg.svdvals(got.double())
    assert singular_values.min() > 0.6 and singular_values.max() < 1.25
    cosine = (got.double() * polar_factor(g)).sum() / (got.double().norm() * polar_factor(g).norm())
    assert cosine > 0.97


def test_newton_schulz_refuses_a_vector():
    with pytest.raises(ValueError, match="orthogonalises matrices"):
        newton_schulz(torch.randn(5))


def _by_hand(w0, grads, lr, beta, decay, steps):
    """Muon's definition in float64: EMA momentum, Nesterov look-ahead, spectral Newton–Schulz,
    shape scaling, decoupled decay from the weights before the step."""
    w, m = w0.double().clone(), torch.zeros_like(w0, dtype=torch.float64)
    scale = 0.2 * math.sqrt(max(w0.shape))
    for g in grads:
        g = g.double()
        m = beta * m + (1 - beta) * g
        u = (1 - beta) * g + beta * m
        w = w - lr * (scale * spectral_newton_schulz(u, steps) + decay * w)
    return w


@pytest.mark.parametrize("shape", [(3, 5), (7, 2)], ids=str)
def test_two_muon_steps_match_the_definition_computed_by_hand(shape):
    torch.manual_seed(2)
    w0 = torch.randn(*shape, dtype=torch.float64)
    grads = [torch.randn(*shape, dtype=torch.float64) for _ in range(2)]
    param = torch.nn.Parameter(w0.clone())
    opt = Muon([param], lr=0.05, momentum=0.9, ns_steps=3, ns_dtype=torch.float64, weight_decay=0.1)
    for g in grads:
        param.grad = g.clone()
        opt.step()
    torch.testing.assert_close(param.detach(), _by_hand(w0, grads, 0.05, 0.9, 0.1, 3), rtol=0, atol=1e-10)
    assert shape_scale(*shape) == pytest.approx(0.2 * math.sqrt(max(shape)))


def test_without_nesterov_the_momentum_itself_is_orthogonalised():
    torch.manual_seed(3)
    w0, g = torch.randn(4, 6, dtype=torch.float64), torch.randn(4, 6, dtype=torch.float64)
    param = torch.nn.Parameter(w0.clone())
    opt = Muon([param], lr=0.1, momentum=0.5, nesterov=False, ns_steps=4, ns_dtype=torch.float64)
    param.grad = g.clone()
    opt.step()
    expected = w0 - 0.1 * 0.2 * math.sqrt(6) * spectral_newton_schulz(0.5 * g, 4)
    torch.testing.assert_close(param.detach(), expected, rtol=0, atol=1e-10)


def test_muon_false_groups_are_updated_exactly_like_adamw():
    torch.manual_seed(4)
    matrix, vector = torch.nn.Parameter(torch.randn(4, 4)), torch.nn.Parameter(torch.randn(7))
    twin = torch.nn.Parameter(vector.detach().clone())
    ours = Muon([{"params": [matrix]}, {"params": [vector], "muon": False}], lr=1e-2, betas=(0.8, 0.9),
                weight_decay=0.05)
    adamw = AdamW([twin], lr=1e-2, betas=(0.8, 0.9), eps=1e-8, weight_decay=0.05)
    for _ in range(3):
        g = torch.randn(7)
        matrix.grad, vector.grad, twin.grad = torch.randn(4, 4), g.clone(), g.clone()
        ours.step()
        adamw.step()
    assert torch.equal(vector.detach(), twin.detach())
    assert set(ours.state[vector]) == {"step", "exp_avg", "exp_avg_sq"} and set(ours.state[matrix]) == {"momentum_buffer"}


def test_a_vector_in_a_muon_group_is_refused_with_the_fix():
    with pytest.raises(ValueError, match=r"shape \(5,\).*muon=False"):
        Muon([torch.nn.Parameter(torch.randn(5))])
    with pytest.raises(ValueError, match="momentum"):
        Muon([torch.nn.Parameter(torch.randn(2, 2))], momentum=1.0)


@pytest.mark.parametrize("tie", [False, True], ids=["untied", "tied"])
def test_groups_give_muon_the_block_matrices_and_adamw_everything_else(tie):
    model = TransformerLM.from_config(ModelConfig(vocab_size=50, context_length=8, d_model=16, num_layers=2,
                                                  num_heads=2, qk_norm=True, tie_embeddings=tie, kernels="torch"))
    groups = muon_parameter_groups(model, weight_decay=0.1, muon_lr_scale=5.0)
    muon = [g for g in groups if g["muon"]]
    assert len(muon) == 1 and muon[0]["lr_scale"] == 5.0
    names = {id(p): n for n, p in model.named_parameters()}
    muon_names = sorted(names[id(p)] for p in muon[0]["params"])
    expected = sorted(f"layers.{i}.{m}.weight" for i in range(2)
                      for m in ("attn.q_proj", "attn.k_proj", "attn.v_proj", "attn.output_proj", "ffn.w1", "ffn.w2", "ffn.w3"))
    assert muon_names == expected and [id(p) for p in hidden_matrices(model)] == [id(p) for p in muon[0]["params"]]
    listed = [id(p) for g in groups for p in g["params"]]
    assert sorted(listed) == sorted(id(p) for p in model.parameters())  # each parameter exactly once
    adamw = {id(p) for g in groups if not g["muon"] for p in g["params"]}
    for module in (model.lm_head, model.token_embeddings, model.ln_final, model.layers[0].attn.q_norm):
        assert id(module.weight) in adamw


def test_state_dict_round_trip_continues_exactly():
    torch.manual_seed(5)
    model = TransformerLM.from_config(ModelConfig(vocab_size=40, context_length=8, d_model=16, num_layers=1,
                                                  num_heads=2, kernels="torch"))
    ids = torch.randint(0, 40, (3, 9))

    def step(m, opt):
        opt.zero_grad()
        m.loss(ids[:, :-1], ids[:, 1:]).backward()
        opt.step()

    def make(m):
        return Muon(muon_parameter_groups(m, 0.1, 2.0), lr=1e-2, ns_dtype=torch.float32)

    opt = make(model)
    step(model, opt)
    twin = TransformerLM.from_config(model.config)
    twin.load_state_dict(model.state_dict())
    twin_opt = make(twin)
    twin_opt.load_state_dict(opt.state_dict())
    for _ in range(2):
        step(model, opt)
        step(twin, twin_opt)
    for (name, a), b in zip(model.state_dict().items(), twin.state_dict().values()):
        assert torch.equal(a, b), name
