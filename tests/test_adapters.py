"""tests/adapters.py (the CS336 course's adapter functions) against independent references.

Every layer adapter is compared with the same computation written here from PyTorch built-ins
(``F.linear``, ``F.rms_norm``, ``F.scaled_dot_product_attention``, RoPE as complex rotation), on
random weights and awkward shapes; the optimizer with ``torch.optim.AdamW``; the tokenizer with
tiktoken; BPE training with the exact reference merges. Weights are passed by the course's
state-dict keys, so a key the course uses and the model lacks fails here first.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import adapters

EPS = 1e-5
THETA = 10_000.0
ATOL, RTOL = 2e-5, 2e-5


def randn(*shape: int, scale: float = 1.0) -> torch.Tensor:
    return torch.randn(*shape) * scale


# ------------------------------------------------------------------ the reference, from built-ins
def ref_rope(x: torch.Tensor, positions: torch.Tensor, theta: float = THETA) -> torch.Tensor:
    """Pairs (x[2k], x[2k+1]) as complex numbers, multiplied by e^{i pos theta^(-2k/d)}."""
    d = x.shape[-1]
    freqs = theta ** (-torch.arange(0, d, 2, dtype=torch.float64) / d)  # (d/2,)
    angles = positions.to(torch.float64)[..., None] * freqs  # (..., seq, d/2)
    pairs = torch.view_as_complex(x.double().reshape(*x.shape[:-1], d // 2, 2).contiguous())
    return torch.view_as_real(pairs * torch.polar(torch.ones_like(angles), angles)).flatten(-2).to(x.dtype)


def ref_attention(x, wq, wk, wv, wo, heads: int, positions=None) -> torch.Tensor:
    def split(t):  # (..., seq, d_model) -> (..., heads, seq, d_head)
        return t.reshape(*t.shape[:-1], heads, t.shape[-1] // heads).transpose(-3, -2)

    q, k, v = split(F.linear(x, wq)), split(F.linear(x, wk)), split(F.linear(x, wv))
    if positions is not None:
        q, k = ref_rope(q, positions), ref_rope(k, positions)
    out = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    return F.linear(out.transpose(-3, -2).flatten(-2), wo)


def ref_swiglu(x, w1, w2, w3) -> torch.Tensor:
    return F.linear(F.silu(F.linear(x, w1)) * F.linear(x, w3), w2)


def ref_block(x, w: dict, heads: int, prefix: str = "") -> torch.Tensor:
    d = x.shape[-1]
    positions = torch.arange(x.shape[-2])
    normed = F.rms_norm(x, (d,), w[prefix + "ln1.weight"], eps=EPS)
    h = x + ref_attention(normed, *(w[prefix + f"attn.{p}_proj.weight"] for p in ("q", "k", "v", "output")),
                          heads, positions)
    normed = F.rms_norm(h, (d,), w[prefix + "ln2.weight"], eps=EPS)
    return h + ref_swiglu(normed, *(w[prefix + f"ffn.w{i}.weight"] for i in (1, 2, 3)))


def block_weights(d_model: int, d_ff: int, prefix: str = "") -> dict[str, torch.Tensor]:
    scale = d_model ** -0.5
    w = {prefix + f"attn.{p}_proj.weight": randn(d_model, d_model, scale=scale) for p in ("q", "k", "v", "output")}
    w.update({prefix + "ln1.weight": 1 + 0.1 * randn(d_model), prefix + "ln2.weight": 1 + 0.1 * randn(d_model),
              prefix + "ffn.w1.weight": randn(d_ff, d_model, scale=scale),
              prefix + "ffn.w2.weight": randn(d_model, d_ff, scale=d_ff ** -0.5),
              prefix + "ffn.w3.weight": randn(d_ff, d_model, scale=scale)})
    return w


@pytest.fixture(autouse=True)
def seeded():
    torch.manual_seed(0)


# ----------------------------------------------------------------------------------- layers
@pytest.mark.parametrize("lead", [(), (3,), (2, 5)])
def test_linear_embedding_swiglu(lead):
    d_in, d_out, d_ff, vocab = 13, 7, 24, 50
    x, w = randn(*lead, d_in), randn(d_out, d_in)
    torch.testing.assert_close(adapters.run_linear(d_in, d_out, w, x), F.linear(x, w), atol=ATOL, rtol=RTOL)
    table, ids = randn(vocab, d_out), torch.randint(0, vocab, (*lead, 4))
    assert torch.equal(adapters.run_embedding(vocab, d_out, table, ids), F.embedding(ids, table))
    w1, w2, w3 = randn(d_ff, d_in), randn(d_in, d_ff), randn(d_ff, d_in)
    torch.testing.assert_close(adapters.run_swiglu(d_in, d_ff, w1, w2, w3, x), ref_swiglu(x, w1, w2, w3),
                               atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("dim", [0, -1, 1])
def test_softmax_silu_rmsnorm_and_their_gradients(dim):
    x = randn(4, 9, 33, scale=20.0).requires_grad_()  # large logits: the max must be subtracted
    ours, ref = adapters.run_softmax(x, dim), torch.softmax(x, dim)
    torch.testing.assert_close(ours, ref)
    grad = randn(*x.shape)
    torch.testing.assert_close(*(torch.autograd.grad(y, x, grad)[0] for y in (ours, ref)))
    torch.testing.assert_close(adapters.run_silu(x), F.silu(x))
    weight = 1 + 0.1 * randn(33)
    torch.testing.assert_close(adapters.run_rmsnorm(33, EPS, weight, x), F.rms_norm(x, (33,), weight, eps=EPS))


@pytest.mark.parametrize("with_mask", [False, True])
def test_scaled_dot_product_attention(with_mask):
    q, k, v = randn(2, 3, 5, 8), randn(2, 3, 7, 8), randn(2, 3, 7, 6)
    mask = torch.rand(5, 7) > 0.3 if with_mask else None
    if mask is not None:
        mask[:, 0] = True  # every query sees at least one key
    ref = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    torch.testing.assert_close(adapters.run_scaled_dot_product_attention(q, k, v, mask), ref, atol=ATOL, rtol=RTOL)


@pytest.mark.parametrize("lead", [(2,), (2, 3)])
def test_rope_at_given_positions(lead):
    d_k, seq = 16, 9
    x = randn(*lead, seq, d_k)
    positions = torch.randint(0, 40, (*lead, seq))  # not 0..seq-1: positions are honoured as given
    torch.testing.assert_close(adapters.run_rope(d_k, THETA, 64, x, positions), ref_rope(x, positions),
                               atol=ATOL, rtol=RTOL)


@pytest.mark.parametrize("rope", [False, True])
def test_multihead_self_attention(rope):
    d_model, heads, seq = 48, 3, 11  # head dim 16; an odd sequence length
    x = randn(2, seq, d_model)
    wq, wk, wv, wo = (randn(d_model, d_model, scale=d_model ** -0.5) for _ in range(4))
    if rope:
        positions = torch.arange(seq).expand(2, seq)
        ours = adapters.run_multihead_self_attention_with_rope(d_model, heads, 32, THETA, wq, wk, wv, wo, x, positions)
        ref = ref_attention(x, wq, wk, wv, wo, heads, positions[:, None])
    else:
        ours = adapters.run_multihead_self_attention(d_model, heads, wq, wk, wv, wo, x)
        ref = ref_attention(x, wq, wk, wv, wo, heads)
    torch.testing.assert_close(ours, ref, atol=1e-4, rtol=1e-4)


def test_transformer_block():
    d_model, heads, d_ff, seq = 32, 4, 40, 10
    weights, x = block_weights(d_model, d_ff), randn(3, seq, d_model)
    ours = adapters.run_transformer_block(d_model, heads, d_ff, 16, THETA, weights, x)
    torch.testing.assert_close(ours, ref_block(x, weights, heads), atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("seq", [16, 5])  # the full context, and shorter
def test_transformer_lm(seq):
    vocab, ctx, d_model, layers, heads, d_ff = 97, 16, 32, 2, 4, 48
    weights = {"token_embeddings.weight": randn(vocab, d_model), "ln_final.weight": 1 + 0.1 * randn(d_model),
               "lm_head.weight": randn(vocab, d_model, scale=d_model ** -0.5)}
    for i in range(layers):
        weights.update(block_weights(d_model, d_ff, prefix=f"layers.{i}."))
    ids = torch.randint(0, vocab, (2, seq))
    ours = adapters.run_transformer_lm(vocab, ctx, d_model, layers, heads, d_ff, THETA, weights, ids)
    x = F.embedding(ids, weights["token_embeddings.weight"])
    for i in range(layers):
        x = ref_block(x, weights, heads, prefix=f"layers.{i}.")
    ref = F.linear(F.rms_norm(x, (d_model,), weights["ln_final.weight"], eps=EPS), weights["lm_head.weight"])
    torch.testing.assert_close(ours, ref, atol=2e-4, rtol=2e-4)


def test_a_weight_the_model_lacks_is_an_error():
    weights = block_weights(16, 24)
    weights["attn.qkv_proj.weight"] = randn(48, 16)
    with pytest.raises(RuntimeError, match="qkv_proj"):
        adapters.run_transformer_block(16, 2, 24, 8, THETA, weights, randn(1, 4, 16))


# --------------------------------------------------------------------------------- training
def test_cross_entropy_and_its_gradient():
    logits = randn(37, 101, scale=30.0).requires_grad_()
    targets = torch.randint(0, 101, (37,))
    ours, ref = adapters.run_cross_entropy(logits, targets), F.cross_entropy(logits, targets)
    torch.testing.assert_close(ours, ref)
    torch.testing.assert_close(torch.autograd.grad(ours, logits)[0], torch.autograd.grad(ref, logits)[0])


@pytest.mark.parametrize("max_norm", [1e-2, 1e4])  # clipped, and left alone
def test_gradient_clipping_matches_torch(max_norm):
    params = [torch.nn.Parameter(randn(*shape)) for shape in ((5, 3), (7,), (2, 2, 2))]
    params.append(torch.nn.Parameter(randn(3), requires_grad=False))  # no gradient: skipped
    for p in params[:3]:
        p.grad = randn(*p.shape)
    reference = [torch.nn.Parameter(p.detach().clone()) for p in params[:3]]
    for r, p in zip(reference, params):
        r.grad = p.grad.clone()
    torch.nn.utils.clip_grad_norm_(reference, max_norm)
    adapters.run_gradient_clipping(params, max_norm)
    for p, r in zip(params[:3], reference):
        torch.testing.assert_close(p.grad, r.grad, atol=1e-6, rtol=1e-5)


def test_adamw_follows_torch_adamw():
    """The course accepts an AdamW within 1e-4 of torch's after 1000 steps: ours applies the
    decay after the Adam step (as the handout writes it), torch before, which differs only in
    the second order of lr."""
    def train(optimizer_cls) -> torch.Tensor:
        torch.manual_seed(42)
        model = torch.nn.Linear(3, 2, bias=False)
        opt = optimizer_cls(model.parameters(), lr=1e-3, weight_decay=0.01, betas=(0.9, 0.999), eps=1e-8)
        for _ in range(1000):
            opt.zero_grad()
            x = torch.rand(3)
            target = torch.stack([x[0] + x[1], -x[2]])
            ((model(x) - target) ** 2).sum().backward()
            opt.step()
        return model.weight.detach()

    ours, ref = train(adapters.get_adamw_cls()), train(torch.optim.AdamW)
    assert (ours - ref).abs().max() > 0  # a different implementation, not torch's own class
    torch.testing.assert_close(ours, ref, atol=1e-4, rtol=0)


def test_cosine_schedule_at_its_landmarks():
    top, bottom, warm, cycle = 1.0, 0.1, 7, 21
    lr = [adapters.run_get_lr_cosine_schedule(it, top, bottom, warm, cycle) for it in range(30)]
    assert lr[0] == 0 and lr[3] == pytest.approx(3 / 7) and lr[warm] == pytest.approx(top)
    assert lr[14] == pytest.approx((top + bottom) / 2)  # half way through the cosine
    assert lr[cycle] == pytest.approx(bottom) and lr[25] == bottom
    assert all(a >= b for a, b in zip(lr[warm:], lr[warm + 1:]))


def test_get_batch_draws_every_window_with_its_next_tokens():
    data, batch, ctx = np.arange(100), 32, 7
    starts = set()
    for _ in range(50):
        x, y = adapters.run_get_batch(data, batch, ctx, "cpu")
        assert x.shape == y.shape == (batch, ctx) and x.dtype == y.dtype == torch.long
        assert torch.equal(y, x + 1) and torch.equal(x[:, 1:], x[:, :-1] + 1)
        starts.update(x[:, 0].tolist())
    assert starts == set(range(len(data) - ctx))  # every start that leaves room for the targets
    with pytest.raises(RuntimeError):
        adapters.run_get_batch(data, batch, ctx, "cuda:99")


@pytest.mark.parametrize("to_file", [False, True])
def test_checkpoint_round_trip_resumes_exactly(tmp_path, to_file):
    def build():
        torch.manual_seed(2)
        net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
        return net, adapters.get_adamw_cls()(net.parameters(), lr=1e-2)

    def step(net, opt):
        opt.zero_grad()
        net(x).square().mean().backward()
        opt.step()

    x = randn(5, 4)
    net, opt = build()
    for _ in range(3):
        step(net, opt)
    target = io.BytesIO() if to_file else tmp_path / "checkpoint.pt"
    adapters.run_save_checkpoint(net, opt, 3, target)
    if to_file:
        target.seek(0)
    fresh, fresh_opt = build()
    assert adapters.run_load_checkpoint(target, fresh, fresh_opt) == 3
    step(net, opt), step(fresh, fresh_opt)
    for a, b in zip(net.parameters(), fresh.parameters()):
        assert torch.equal(a, b)


# -------------------------------------------------------------------------------- tokenizer
def test_tokenizer_matches_tiktoken(gpt2_files, tiktoken_gpt2, fixture_file):
    from tritonlm.tokenizer.vocab_files import load_merges, load_vocab

    tokenizer = adapters.get_tokenizer(load_vocab(gpt2_files[0]), load_merges(gpt2_files[1]), ["<|endoftext|>"])
    text = fixture_file("tinystories_sample.txt").read_text()
    ids = tokenizer.encode(text)
    assert ids == tiktoken_gpt2.encode(text, allowed_special="all")
    assert tokenizer.decode(ids) == text
    lines = text.splitlines(keepends=True)
    assert list(tokenizer.encode_iterable(iter(lines))) == ids


def test_train_bpe_gives_the_reference_merges(fixture_file):
    from tritonlm.tokenizer.vocab_files import load_merges, load_vocab

    vocab, merges = adapters.run_train_bpe(fixture_file("corpus.en"), 500, ["<|endoftext|>"])
    assert merges == load_merges(fixture_file("train-bpe-reference-merges.txt"))
    assert set(vocab.values()) == set(load_vocab(fixture_file("train-bpe-reference-vocab.json")).values())
    assert sorted(vocab) == list(range(500))
