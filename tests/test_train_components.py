"""Training building blocks against independent references: torch built-ins and float64 maths."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from tritonlm.tokenizer.tokenfile import write_tokens
from tritonlm.train import (AdamW, TokenIdError, clip_grad_norm, cross_entropy, get_batch, load_tokens, lr_cosine_schedule,
                   lr_wsd_schedule, parameter_groups)
from tritonlm.train.schedule import lr_at_progress

pytestmark = pytest.mark.usefixtures("single_thread")


# ------------------------------------------------------------------------------ cross-entropy
@pytest.mark.parametrize("shape, vocab, scale", [((7,), 11, 1.0), ((3, 5), 257, 10.0), ((2, 3, 4), 33, 1e4)])
def test_cross_entropy_matches_torch_forward_and_backward(shape, vocab, scale):
    g = torch.Generator().manual_seed(0)
    logits = (torch.randn(*shape, vocab, generator=g, dtype=torch.float64) * scale).requires_grad_()
    targets = torch.randint(0, vocab, shape, generator=g)
    ours = cross_entropy(logits, targets, backend="torch")
    ref = F.cross_entropy(logits.reshape(-1, vocab), targets.reshape(-1))
    assert torch.isfinite(ours)
    torch.testing.assert_close(ours.double(), ref, rtol=1e-6, atol=1e-6)
    (g1,) = torch.autograd.grad(ours, logits)
    (g2,) = torch.autograd.grad(ref, logits)
    torch.testing.assert_close(g1.double(), g2, rtol=1e-5, atol=1e-7)


def test_cross_entropy_ignores_positions_and_rejects_bad_shapes():
    logits, targets = torch.randn(4, 6, 9), torch.randint(0, 9, (4, 6))
    targets[0, :3] = -100
    ref = F.cross_entropy(logits.reshape(-1, 9), targets.reshape(-1), ignore_index=-100)
    torch.testing.assert_close(cross_entropy(logits, targets, backend="torch"), ref)
    with pytest.raises(ValueError, match="trailing vocab"):
        cross_entropy(logits, targets[:, :-1])


# ---------------------------------------------------------------------------------------- AdamW
def _twin_params(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    shapes = [(5, 7), (13,), (3, 1, 4)]
    a = [torch.nn.Parameter(torch.randn(s, generator=g)) for s in shapes]
    b = [torch.nn.Parameter(p.detach().clone()) for p in a]
    return a, b


@pytest.mark.parametrize("foreach", [True, False])
@pytest.mark.parametrize("lr, betas, eps, wd", [(1e-3, (0.9, 0.999), 1e-8, 0.0), (3e-3, (0.8, 0.95), 1e-6, 0.1),
                                                 (1e-2, (0.9, 0.99), 1e-8, 0.5)])
def test_adamw_tracks_torch_adamw_over_many_steps(lr, betas, eps, wd, foreach):
    """Same decoupled semantics as torch.optim.AdamW; the two differ only in where eps enters
    (ours: sqrt(v) + eps, torch: sqrt(v_hat) + eps) and whether decay uses the pre- or
    post-update weights, both O(lr * eps) / O(lr^2 wd) effects."""
    ours_p, ref_p = _twin_params()
    ours, ref = AdamW(ours_p, lr=lr, betas=betas, eps=eps, weight_decay=wd, foreach=foreach), torch.optim.AdamW(
        ref_p, lr=lr, betas=betas, eps=eps, weight_decay=wd)
    g = torch.Generator().manual_seed(1)
    for step in range(200):
        grads = [torch.randn(p.shape, generator=g) for p in ours_p]
        for i, (p, q, grad) in enumerate(zip(ours_p, ref_p, grads)):
            skip = i == 1 and step % 3 == 0  # a parameter without gradient keeps its own step count
            p.grad, q.grad = (None, None) if skip else (grad.clone(), grad.clone())
        ours.step()
        ref.step()
    for p, q in zip(ours_p, ref_p):
        torch.testing.assert_close(p, q, rtol=1e-4, atol=max(10 * lr * lr * wd, 1e-5) * 200 ** 0.5)


def test_adamw_first_step_follows_the_design_formula_in_float64():
    p = torch.nn.Parameter(torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64))
    grad = torch.tensor([0.3, -0.1, 2.0], dtype=torch.float64)
    lr, (b1, b2), eps, wd = 0.01, (0.9, 0.999), 1e-8, 0.1
    opt = AdamW([p], lr=lr, betas=(b1, b2), eps=eps, weight_decay=wd)
    expected = p.detach().clone()
    m, v = (1 - b1) * grad, (1 - b2) * grad**2
    lr_t = lr * math.sqrt(1 - b2) / (1 - b1)
    expected = expected - lr_t * m / (v.sqrt() + eps)
    expected = expected - lr * wd * expected
    p.grad = grad
    opt.step()
    torch.testing.assert_close(p.detach(), expected, rtol=0, atol=1e-15)


def test_adamw_state_dict_round_trip_continues_identically():
    a, b = _twin_params()
    opt_a = AdamW(a, lr=1e-2, weight_decay=0.1)
    for _ in range(3):
        for p in a:
            p.grad = torch.ones_like(p)
        opt_a.step()
    with torch.no_grad():
        for p, q in zip(a, b):
            q.copy_(p)
    opt_b = AdamW(b, lr=1e-2, weight_decay=0.1)
    opt_b.load_state_dict(opt_a.state_dict())
    for opt, params in ((opt_a, a), (opt_b, b)):
        for p in params:
            p.grad = torch.full_like(p, 0.5)
        opt.step()
    for p, q in zip(a, b):
        assert torch.equal(p, q)


def test_parameter_groups_spare_norms_and_embeddings_only_when_asked():
    from tritonlm.model import ModelConfig, TransformerLM

    model = TransformerLM.from_config(ModelConfig(vocab_size=32, context_length=8, d_model=16, num_layers=1, num_heads=2))
    spared = parameter_groups(model, 0.1, decay_norms_and_embeddings=False)
    assert [g["weight_decay"] for g in spared] == [0.1, 0.0]
    no_decay = {id(p) for p in spared[1]["params"]}
    names = {n for n, p in model.named_parameters() if id(p) in no_decay}
    assert "token_embeddings.weight" in names and "ln_final.weight" in names
    assert not any("q_proj" in n or "ffn.w1" in n for n in names)
    assert len(parameter_groups(model, 0.1, decay_norms_and_embeddings=True)) == 1


# ------------------------------------------------------------------------------------ clipping
@pytest.mark.parametrize("max_norm", [1e-2, 1.0, 1e6])
def test_clip_grad_norm_matches_torch(max_norm):
    a, b = _twin_params(3)
    g = torch.Generator().manual_seed(4)
    for p, q in zip(a, b):
        grad = torch.randn(p.shape, generator=g)
        p.grad, q.grad = grad.clone(), grad.clone()
    ours = clip_grad_norm(a, max_norm)
    ref = torch.nn.utils.clip_grad_norm_(b, max_norm)
    torch.testing.assert_close(ours, ref)
    for p, q in zip(a, b):
        torch.testing.assert_close(p.grad, q.grad)
    if max_norm == 1e-2:  # clipped to the requested norm
        assert abs(math.sqrt(sum(float((p.grad**2).sum()) for p in a)) - max_norm) < 1e-6


def test_clip_grad_norm_skips_parameters_without_gradients():
    a, _ = _twin_params()
    a[0].grad = torch.full_like(a[0], 3.0)
    norm = clip_grad_norm(a, 1.0)
    assert float(norm) == pytest.approx(3.0 * math.sqrt(a[0].numel()))
    assert a[1].grad is None


# ----------------------------------------------------------------------------------- schedules
def test_cosine_schedule_key_points():
    kw = dict(max_lr=1.0, min_lr=0.1, warmup_iters=10, cosine_cycle_iters=110)
    assert lr_cosine_schedule(0, **kw) == 0.0
    assert lr_cosine_schedule(5, **kw) == pytest.approx(0.5)
    assert lr_cosine_schedule(10, **kw) == pytest.approx(1.0)
    assert lr_cosine_schedule(60, **kw) == pytest.approx(0.55)  # half way down the cosine
    assert lr_cosine_schedule(35, **kw) == pytest.approx(0.1 + 0.45 * (1 + math.cos(math.pi / 4)))
    assert lr_cosine_schedule(110, **kw) == pytest.approx(0.1)
    assert lr_cosine_schedule(500, **kw) == 0.1


def test_wsd_schedule_key_points():
    kw = dict(max_lr=1.0, min_lr=0.0, warmup_iters=10, decay_iters=20, total_iters=100)
    assert [lr_wsd_schedule(t, **kw) for t in (0, 5, 10, 50, 80)] == pytest.approx([0, 0.5, 1, 1, 1])
    assert lr_wsd_schedule(90, **kw) == pytest.approx(0.5)
    assert lr_wsd_schedule(100, **kw) == 0.0 and lr_wsd_schedule(150, **kw) == 0.0


@pytest.mark.parametrize("schedule", ["cosine", "wsd"])
def test_progress_schedule_reaches_min_at_the_end(schedule):
    lrs = [lr_at_progress(p, schedule, 1.0, 0.1, 0.1, 0.2) for p in np.linspace(0, 1, 101)]
    assert lrs[0] == 0.0 and max(lrs) == pytest.approx(1.0) and lrs[-1] == pytest.approx(0.1)
    assert all(b <= a + 1e-12 for a, b in zip(lrs[10:], lrs[11:]))  # never rises after warmup
    with pytest.raises(ValueError, match="unknown schedule"):
        lr_at_progress(0.5, "linear", 1.0, 0.1, 0.1, 0.2)


# ------------------------------------------------------------------------------------ batches
def test_get_batch_shapes_dtype_shift_and_uniform_starts():
    data = np.arange(100, dtype=np.uint16)
    rng = np.random.default_rng(0)
    context, counts = 7, np.zeros(100, dtype=int)
    for _ in range(200):
        x, y = get_batch(data, 32, context, "cpu", rng=rng)
        assert x.shape == y.shape == (32, context) and x.dtype == y.dtype == torch.int64
        assert torch.equal(y, x + 1) and torch.equal(x[:, 1:], x[:, :-1] + 1)
        np.add.at(counts, x[:, 0].numpy(), 1)
    starts = counts[: 100 - context]
    assert counts[100 - context :].sum() == 0  # the last start is len - context - 1
    assert starts.min() > 0  # every start is drawn
    expected = counts.sum() / len(starts)  # chi-square against the uniform distribution
    chi2 = ((starts - expected) ** 2 / expected).sum()
    assert chi2 < len(starts) + 5 * math.sqrt(2 * len(starts))


def test_get_batch_reads_token_files_and_reports_out_of_vocab_ids(tmp_path):
    ids = np.random.default_rng(1).integers(0, 300, size=500)
    data = load_tokens(write_tokens(tmp_path / "ok.tok", ids, 300))
    assert data.ids.dtype == np.uint16 and data.vocab_size == 300
    x, y = get_batch(data, 4, 16, "cpu")
    assert int(x.max()) < 300 and torch.equal(x[:, 1:], y[:, :-1])
    bad = load_tokens(write_tokens(tmp_path / "bad.tok", ids, 300))
    object.__setattr__(bad, "vocab_size", 100)  # a file whose ids exceed the vocabulary it claims
    with pytest.raises(TokenIdError, match="outside the vocabulary"):
        get_batch(bad, 8, 16, "cpu")


def test_get_batch_rejects_unavailable_devices_and_short_data():
    data = np.arange(50)
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="CUDA is not available"):
            get_batch(data, 2, 4, "cuda")
    else:
        with pytest.raises(RuntimeError, match="CUDA device"):
            get_batch(data, 2, 4, f"cuda:{torch.cuda.device_count() + 7}")
    with pytest.raises(RuntimeError, match="not supported"):
        get_batch(data, 2, 4, "meta")
    with pytest.raises(ValueError, match="too few"):
        get_batch(data, 2, 50, "cpu")
    with pytest.raises(ValueError, match="1-D"):
        get_batch(data.reshape(5, 10), 2, 4, "cpu")


def test_resolve_device_takes_a_configs_auto_and_refuses_a_missing_gpu():
    from tritonlm.train.data import DeviceUnavailable, resolve_device

    assert resolve_device("auto") == torch.device("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device("cpu") == torch.device("cpu")
    if not torch.cuda.is_available():
        with pytest.raises(DeviceUnavailable, match="use device='cpu'"):
            resolve_device("cuda")
