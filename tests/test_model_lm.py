"""The attention module, block and LM against the same architecture assembled from torch built-ins
(F.linear, F.embedding, F.rms_norm, F.scaled_dot_product_attention, F.cross_entropy), loading a
state dict written with the docs/architecture.md key names; every ablation; forward and gradients."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from tritonlm.model import ModelConfig, MultiHeadSelfAttention, TransformerBlock, TransformerLM, presets
from test_model_layers import rope_float64_complex

DTYPES = [
    pytest.param(torch.float32, 2e-5, 1e-4, id="float32"),
    pytest.param(torch.bfloat16, 6e-2, 5e-2, id="bfloat16"),
]


# ------------------------------------------------------------------ the built-in reference model
def design_state_dict(cfg: ModelConfig, seed: int = 0, dtype=torch.float32) -> dict[str, torch.Tensor]:
    """Random weights under the docs/architecture.md key names, written without looking at the model."""
    g = torch.Generator().manual_seed(seed)
    d, f, V, dk = cfg.d_model, cfg.d_ff, cfg.vocab_size, cfg.head_dim
    rand = lambda *shape, scale=None: (torch.randn(*shape, generator=g) * (scale or shape[-1] ** -0.5)).to(dtype)  # noqa: E731
    gain = lambda n: (1 + 0.2 * torch.randn(n, generator=g)).to(dtype)  # noqa: E731
    sd = {"token_embeddings.weight": rand(V, d, scale=1.0)}
    for i in range(cfg.num_layers):
        p = f"layers.{i}."
        for name in ("q_proj", "k_proj", "v_proj", "output_proj"):
            sd[p + f"attn.{name}.weight"] = rand(d, d)
        if cfg.qk_norm:
            sd[p + "attn.q_norm.weight"], sd[p + "attn.k_norm.weight"] = gain(dk), gain(dk)
        sd[p + "ffn.w1.weight"], sd[p + "ffn.w2.weight"] = rand(f, d), rand(d, f)
        if cfg.ffn == "swiglu":
            sd[p + "ffn.w3.weight"] = rand(f, d)
        if cfg.norm != "none":
            sd[p + "ln1.weight"], sd[p + "ln2.weight"] = gain(d), gain(d)
    if cfg.norm == "pre":
        sd["ln_final.weight"] = gain(d)
    sd["lm_head.weight"] = sd["token_embeddings.weight"] if cfg.tie_embeddings else rand(V, d)
    return sd


def builtin_attention(sd, prefix, cfg, x, positions):
    B, T, d = x.shape
    heads = lambda t: t.view(B, T, cfg.num_heads, cfg.head_dim).transpose(1, 2)  # noqa: E731
    q, k, v = (heads(F.linear(x, sd[f"{prefix}{n}_proj.weight"])) for n in "qkv")
    if cfg.qk_norm:
        q = F.rms_norm(q.float(), (cfg.head_dim,), sd[prefix + "q_norm.weight"].float(), cfg.norm_eps).to(x.dtype)
        k = F.rms_norm(k.float(), (cfg.head_dim,), sd[prefix + "k_norm.weight"].float(), cfg.norm_eps).to(x.dtype)
    if cfg.positions == "rope":
        q = rope_float64_complex(q, positions, cfg.rope_theta).to(x.dtype)
        k = rope_float64_complex(k, positions, cfg.rope_theta).to(x.dtype)
    out = F.scaled_dot_product_attention(q.float(), k.float(), v.float(), is_causal=True).to(x.dtype)
    return F.linear(out.transpose(1, 2).reshape(B, T, d), sd[prefix + "output_proj.weight"])


def builtin_lm_logits(sd: dict, cfg: ModelConfig, ids: torch.Tensor) -> torch.Tensor:
    norm = lambda x, w: F.rms_norm(x.float(), (cfg.d_model,), w.float(), cfg.norm_eps).to(x.dtype)  # noqa: E731
    positions = torch.arange(ids.shape[-1])
    x = F.embedding(ids, sd["token_embeddings.weight"])
    for i in range(cfg.num_layers):
        p = f"layers.{i}."

        def ffn(h):
            pre = F.linear(h, sd[p + "ffn.w1.weight"])
            up = F.relu(pre) ** 2 if cfg.ffn == "relu2" else F.silu(pre)
            if cfg.ffn == "swiglu":
                up = up * F.linear(h, sd[p + "ffn.w3.weight"])
            return F.linear(up, sd[p + "ffn.w2.weight"])

        attn = lambda h: builtin_attention(sd, p + "attn.", cfg, h, positions)  # noqa: E731
        if cfg.norm == "pre":
            h = x + attn(norm(x, sd[p + "ln1.weight"]))
            x = h + ffn(norm(h, sd[p + "ln2.weight"]))
        elif cfg.norm == "post":
            h = norm(x + attn(x), sd[p + "ln1.weight"])
            x = norm(h + ffn(h), sd[p + "ln2.weight"])
        else:
            h = x + attn(x)
            x = h + ffn(h)
    if cfg.norm == "pre":
        x = norm(x, sd["ln_final.weight"])
    logits = F.linear(x, sd["lm_head.weight"])
    cap = cfg.logit_softcap
    return cap * torch.tanh(logits / cap) if cap else logits


ABLATIONS = [
    pytest.param({}, id="baseline"),
    pytest.param({"norm": "post"}, id="post-norm"),
    pytest.param({"norm": "none"}, id="no-norm"),
    pytest.param({"positions": "none"}, id="nope"),
    pytest.param({"ffn": "silu"}, id="silu-ffn"),
    pytest.param({"ffn": "relu2"}, id="relu2-ffn"),
    pytest.param({"qk_norm": True}, id="qk-norm"),
    pytest.param({"tie_embeddings": True}, id="tied"),
    pytest.param({"logit_softcap": 5.0}, id="softcap"),
]


def odd_config(**overrides) -> ModelConfig:
    """Awkward sizes: odd vocabulary, 3 heads of 6 dims, d_ff not a multiple of anything."""
    base = dict(vocab_size=67, context_length=19, d_model=18, num_layers=2, num_heads=3, d_ff=37, rope_theta=300.0)
    return ModelConfig(**{**base, **overrides})


@pytest.mark.parametrize("dtype, atol, rtol", DTYPES)
@pytest.mark.parametrize("overrides", ABLATIONS)
def test_lm_matches_builtin_model_on_design_state_dict(dtype, atol, rtol, overrides):
    cfg = odd_config(**overrides)
    model = TransformerLM.from_config(cfg, dtype=dtype)
    sd = design_state_dict(cfg, dtype=dtype)
    model.load_state_dict(sd, strict=True)  # the docs/architecture.md keys, nothing more, nothing less
    ids = torch.randint(0, cfg.vocab_size, (3, 19), generator=torch.Generator().manual_seed(5))
    torch.testing.assert_close(model(ids), builtin_lm_logits(sd, cfg, ids), atol=atol * 10, rtol=rtol * 10)


@pytest.mark.parametrize("overrides", ABLATIONS)
def test_lm_loss_and_parameter_gradients_match_builtin(overrides):
    cfg = odd_config(**overrides)
    model = TransformerLM.from_config(cfg)
    sd = {k: v.clone().requires_grad_() for k, v in design_state_dict(cfg).items()}
    if cfg.tie_embeddings:
        sd["lm_head.weight"] = sd["token_embeddings.weight"]
    model.load_state_dict(sd)
    ids = torch.randint(0, cfg.vocab_size, (2, 17), generator=torch.Generator().manual_seed(6))
    targets = torch.roll(ids, -1, dims=1)
    loss = model.loss(ids, targets)
    ref = F.cross_entropy(builtin_lm_logits(sd, cfg, ids).flatten(0, 1), targets.flatten())
    torch.testing.assert_close(loss, ref, atol=1e-5, rtol=1e-5)
    loss.backward()
    ref.backward()
    for name, param in model.named_parameters():
        torch.testing.assert_close(param.grad, sd[name].grad, atol=1e-5, rtol=1e-4, msg=name)


def test_loss_z_loss_and_ignore_index_against_hand_computation():
    cfg = odd_config()
    model = TransformerLM.from_config(cfg)
    ids = torch.randint(0, cfg.vocab_size, (2, 9), generator=torch.Generator().manual_seed(7))
    targets = ids.clone()
    targets[0, :4] = -100
    logits = model(ids).flatten(0, 1)
    keep = targets.flatten() != -100
    ce = F.cross_entropy(logits, targets.flatten(), ignore_index=-100)
    z = torch.logsumexp(logits, -1)[keep].pow(2).mean()
    torch.testing.assert_close(model.loss(ids, targets, z_loss=1e-3), ce + 1e-3 * z)
    torch.testing.assert_close(model.loss(ids, targets), ce)


@pytest.mark.parametrize("use_rope, qk_norm", [(True, False), (False, True)])
def test_attention_module_matches_builtin_on_leading_dims(use_rope, qk_norm):
    cfg = odd_config(positions="rope" if use_rope else "none", qk_norm=qk_norm)
    attn = MultiHeadSelfAttention(cfg.d_model, cfg.num_heads, cfg.context_length,
                                  cfg.rope_theta if use_rope else None, qk_norm=qk_norm)
    with torch.no_grad():
        for p in attn.parameters():
            p.normal_(0.0, 0.3, generator=torch.Generator().manual_seed(p.numel()))
    sd = {f"attn.{k}": v for k, v in attn.state_dict().items()}
    x = torch.randn(4, 11, cfg.d_model, generator=torch.Generator().manual_seed(9)).requires_grad_()
    ref = builtin_attention(sd, "attn.", cfg, x, torch.arange(11))
    out = attn(x)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-4)
    g, g_ref = (torch.autograd.grad(o.sum(), x)[0] for o in (attn(x), ref))
    torch.testing.assert_close(g, g_ref, atol=5e-5, rtol=1e-4)
    # no batch dimension at all, and a 2-D batch: same per-sequence result
    torch.testing.assert_close(attn(x[0]), out[0], atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(attn(x.view(2, 2, 11, -1)), out.view(2, 2, 11, -1), atol=1e-6, rtol=1e-5)


def test_heads_are_contiguous_row_blocks_and_attention_is_causal():
    attn = MultiHeadSelfAttention(8, 2)
    x = torch.randn(1, 6, 8)
    out = attn(x)
    x2 = x.clone()
    x2[:, 4:] = torch.randn(1, 2, 8)  # changing later tokens never changes earlier outputs
    torch.testing.assert_close(attn(x2)[:, :4], out[:, :4])
    with torch.no_grad():  # zeroing head 1's value rows leaves columns 4..7 of the pre-projection at 0
        attn.v_proj.weight[4:] = 0
        attn.output_proj.weight.copy_(torch.eye(8))
    assert torch.all(attn(x)[..., 4:] == 0)


def test_block_signature_and_keys():
    block = TransformerBlock(16, 4, 40, max_seq_len=32, theta=10_000.0)
    assert set(block.state_dict()) == {"ln1.weight", "ln2.weight", "attn.q_proj.weight", "attn.k_proj.weight",
                                       "attn.v_proj.weight", "attn.output_proj.weight", "ffn.w1.weight",
                                       "ffn.w2.weight", "ffn.w3.weight"}
    assert block(torch.randn(2, 5, 16)).shape == (2, 5, 16)


def test_weight_tying_shares_one_matrix_and_counts_it_once():
    tied = TransformerLM.from_config(presets.micro(tie_embeddings=True))
    untied = TransformerLM.from_config(presets.micro())
    assert tied.lm_head.weight is tied.token_embeddings.weight
    assert untied.num_parameters() - tied.num_parameters() == 97 * 16
    std = tied.lm_head.weight.std().item()  # initialised like lm_head, not like an std-1 embedding
    assert std < 0.5


def test_positional_argument_constructor_and_config_round_trip():
    model = TransformerLM(97, 16, 16, 1, 2, 48, 10_000.0, norm="post", ffn="silu", kernels="torch")
    assert model.config == presets.micro(norm="post", ffn="silu", kernels="torch")
    assert model.config.d_ff == 48
    rebuilt = TransformerLM.from_config(ModelConfig.from_dict(model.config.to_dict()))
    rebuilt.load_state_dict(model.state_dict())
    ids = torch.randint(0, 97, (1, 16))
    torch.testing.assert_close(rebuilt(ids), model(ids))


def test_too_long_input_is_a_clear_error():
    model = TransformerLM.from_config(presets.micro())
    with pytest.raises(ValueError, match="exceeds context_length=16"):
        model(torch.zeros(1, 17, dtype=torch.long))


def test_explicit_triton_request_fails_clearly_where_triton_cannot_run(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    with pytest.raises(RuntimeError, match="cannot run here"):
        TransformerLM.from_config(presets.micro(kernels="triton"))
    model = TransformerLM.from_config(presets.micro(kernels="auto"))  # auto falls back to the reference
    assert str(model.kernel_plan) == "rmsnorm=torch,softmax=torch,attention=torch,cross_entropy=torch"
    mixed = TransformerLM.from_config(presets.micro(kernels="torch,attention=auto"))
    assert mixed.layers[0].attn.kernel_plan.attention == "torch"


@pytest.mark.parametrize("spec", ["triton", "triton,attention=torch", "torch,rmsnorm=triton,cross_entropy=triton"])
def test_triton_kernels_in_the_model_match_the_reference(spec):
    """Under TRITON_INTERPRET=1 (conftest, no GPU) the Triton kernels run inside the model."""
    cfg = presets.micro(kernels=spec, context_length=8)
    model = TransformerLM.from_config(cfg)
    reference = TransformerLM.from_config(presets.micro(kernels="torch", context_length=8))
    reference.load_state_dict(model.state_dict())
    ids = torch.randint(0, 97, (2, 8), generator=torch.Generator().manual_seed(8))
    loss, ref_loss = model.loss(ids, ids), reference.loss(ids, ids)
    torch.testing.assert_close(loss, ref_loss, atol=1e-4, rtol=1e-4)
    loss.backward()
    ref_loss.backward()
    for (name, p), q in zip(model.named_parameters(), reference.parameters()):
        torch.testing.assert_close(p.grad, q.grad, atol=1e-4, rtol=1e-3, msg=name)


@pytest.mark.parametrize("ffn", ["swiglu", "relu2"])
def test_zero_initialised_output_projections_start_every_block_as_the_identity(ffn):
    cfg = odd_config(ffn=ffn, zero_init_output=True)
    torch.manual_seed(8)
    model = TransformerLM.from_config(cfg)
    for layer in model.layers:
        assert not layer.attn.output_proj.weight.any() and not layer.ffn.w2.weight.any()
        assert layer.attn.q_proj.weight.std() > 0 and layer.ffn.w1.weight.std() > 0  # the rest as usual
    ids = torch.randint(0, cfg.vocab_size, (2, 11), generator=torch.Generator().manual_seed(9))
    sd = model.state_dict()
    # no block adds anything yet: logits are the head applied to the normalised embeddings
    x = sd["token_embeddings.weight"][ids]
    expected = F.linear(F.rms_norm(x, (cfg.d_model,), sd["ln_final.weight"], cfg.norm_eps), sd["lm_head.weight"])
    torch.testing.assert_close(model(ids), expected, atol=1e-5, rtol=1e-5)
    # and the zeroed matrices still learn: their gradient is not zero
    model.loss(ids, torch.roll(ids, -1, dims=1)).backward()
    assert model.layers[0].attn.output_proj.weight.grad.abs().sum() > 0 and model.layers[1].ffn.w2.weight.grad.abs().sum() > 0
