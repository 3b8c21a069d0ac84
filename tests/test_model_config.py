"""ModelConfig validation, the kernels spec, presets."""

from __future__ import annotations

import pytest

from tritonlm.model import KernelPlan, ModelConfig, default_d_ff, presets


@pytest.mark.parametrize("overrides, message", [
    ({"d_model": 100, "num_heads": 3}, "not divisible by num_heads=3"),
    ({"d_model": 30, "num_heads": 6}, "head dimension must be even"),
    ({"num_layers": 0}, "num_layers must be a positive integer"),
    ({"vocab_size": -5}, "vocab_size must be a positive integer"),
    ({"d_ff": 2.5}, "d_ff must be a positive integer"),
    ({"norm": "sandwich"}, "norm='sandwich' is not one of pre, post, none"),
    ({"positions": "alibi"}, "positions='alibi' is not one of rope, none"),
    ({"ffn": "geglu"}, "ffn='geglu' is not one of swiglu, silu"),
    ({"rope_theta": 0.0}, "rope_theta must be positive"),
    ({"logit_softcap": -1.0}, "logit_softcap must be >= 0"),
    ({"kernels": "cuda"}, "unknown backend 'cuda'"),
    ({"kernels": "triton,matmul=torch"}, "unknown op 'matmul'"),
    ({"kernels": "torch,attention=torch,attention=triton"}, "given twice"),
    ({"kernels": "attention=torch,triton"}, "may only come first"),
])
def test_invalid_configs_fail_with_a_message_naming_the_problem(overrides, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        presets.tiny(**overrides)


def test_odd_head_dim_is_fine_without_rope():
    assert ModelConfig(d_model=30, num_heads=6, positions="none").head_dim == 5


@pytest.mark.parametrize("spec, expected", [
    ("auto", ("auto",) * 4),
    ("torch", ("torch",) * 4),
    ("triton,attention=torch", ("triton", "triton", "torch", "triton")),
    ("rmsnorm=triton", ("triton", "auto", "auto", "auto")),
    (" torch , softmax = triton ", ("torch", "triton", "torch", "torch")),
])
def test_kernel_spec_parsing(spec, expected):
    plan = KernelPlan.parse(spec)
    assert (plan.rmsnorm, plan.softmax, plan.attention, plan.cross_entropy) == expected


def test_default_d_ff():
    assert ModelConfig(d_model=512).d_ff == 1344  # 8/3 * 512 = 1365.3 -> 1344 (multiple of 64)
    assert ModelConfig(d_model=768).d_ff == 2048
    assert ModelConfig(d_model=512, ffn="silu").d_ff == 2048
    assert all(default_d_ff(d) % 64 == 0 for d in (16, 100, 999, 4096))


def test_presets_have_the_documented_shapes():
    ts = presets.tinystories()
    assert (ts.vocab_size, ts.context_length, ts.d_model, ts.d_ff, ts.num_layers, ts.num_heads, ts.rope_theta) == (
        10_000, 256, 512, 1344, 4, 16, 10_000.0)
    shapes = {name: (c.d_model, c.num_layers, c.num_heads, c.d_ff, c.vocab_size, c.context_length)
              for name, c in (("s", presets.gpt2_small()), ("m", presets.gpt2_medium()),
                              ("l", presets.gpt2_large()), ("xl", presets.gpt2_xl()))}
    assert shapes == {"s": (768, 12, 12, 3072, 50257, 1024), "m": (1024, 24, 16, 4096, 50257, 1024),
                      "l": (1280, 36, 20, 5120, 50257, 1024), "xl": (1600, 48, 25, 6400, 50257, 1024)}
    assert presets.preset("gpt2_xl", context_length=16384).context_length == 16384
    with pytest.raises(ValueError, match="unknown model preset"):
        presets.preset("gpt5")


def test_dict_round_trip_rejects_unknown_fields():
    cfg = presets.tiny(norm="post", qk_norm=True)
    assert ModelConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match=r"unknown ModelConfig field\(s\) \['n_embd'\]"):
        ModelConfig.from_dict({**cfg.to_dict(), "n_embd": 3})
