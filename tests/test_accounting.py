"""Accounting figures against the real models: parameter counts exactly (instantiated models, on
the meta device for the big ones), forward FLOPs exactly against torch's FlopCounterMode, the
activation estimate against the tensors autograd actually saves."""

from __future__ import annotations

import json

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from tritonlm.model import TransformerLM, presets
from tritonlm.model.accounting import (
    handout_activation_elements,
    GIB,
    activation_elements,
    count_parameters,
    forward_flops,
    max_batch_size,
    parameter_counts,
    total_forward_flops,
    training_flops,
    training_memory,
)
from tritonlm.model.accounting.report import main

ABLATIONS = [{}, {"norm": "post"}, {"norm": "none"}, {"ffn": "silu"}, {"qk_norm": True},
             {"tie_embeddings": True}, {"positions": "none", "d_ff": 77}]


def measured_forward_flops(cfg, batch, seq, device="cpu"):
    model = TransformerLM.from_config(cfg, device=device)
    ids = torch.zeros(batch, seq, dtype=torch.long, device=device)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(ids)
    return counter.get_total_flops()


def test_gpt2_xl_has_the_reference_parameter_count_and_flops():
    cfg = presets.gpt2_xl()
    assert count_parameters(cfg) == 2_127_057_600
    model = TransformerLM.from_config(cfg, device="meta")
    assert model.num_parameters() == 2_127_057_600
    assert total_forward_flops(cfg) == pytest.approx(4.51e12, rel=2e-3)
    assert measured_forward_flops(cfg, 1, 1024, device="meta") == total_forward_flops(cfg)
    assert training_flops(cfg) == 3 * total_forward_flops(cfg)


@pytest.mark.parametrize("name", ["gpt2_small", "gpt2_medium", "gpt2_large", "tinystories"])
def test_preset_parameter_counts_equal_the_instantiated_models(name):
    cfg = getattr(presets, name)()
    assert TransformerLM.from_config(cfg, device="meta").num_parameters() == count_parameters(cfg)


@pytest.mark.parametrize("overrides", ABLATIONS)
def test_parameter_groups_equal_the_model_for_every_ablation(overrides):
    cfg = presets.tiny(**overrides)
    model = TransformerLM.from_config(cfg)
    groups = parameter_counts(cfg)
    assert sum(groups.values()) == model.num_parameters()
    assert groups["token_embeddings"] == model.token_embeddings.weight.numel()
    ffn_key = next(k for k in groups if k.startswith("ffn"))
    assert groups[ffn_key] == sum(p.numel() for layer in model.layers for p in layer.ffn.parameters())


@pytest.mark.parametrize("overrides", ABLATIONS)
@pytest.mark.parametrize("batch, seq", [(1, 64), (3, 29)])
def test_forward_flops_equal_flop_counter_on_the_real_model(overrides, batch, seq):
    cfg = presets.tiny(**overrides)
    assert measured_forward_flops(cfg, batch, seq) == total_forward_flops(cfg, seq, batch)


def test_flop_groups_scale_as_expected_with_context():
    cfg = presets.gpt2_small()
    short, long = forward_flops(cfg, 1024), forward_flops(cfg, 4096)
    assert long["attention scores Q K^T"] == 16 * short["attention scores Q K^T"]  # quadratic
    assert long["ffn w2 (down)"] == 4 * short["ffn w2 (down)"]  # linear


def saved_activation_bytes(cfg, batch, seq):
    """Bytes of the distinct non-parameter tensors autograd saves during forward + loss."""
    model = TransformerLM.from_config(cfg)
    parameters = {p.untyped_storage().data_ptr() for p in model.parameters()}
    storages = {}

    def pack(t):
        storage = t.untyped_storage()
        if storage.data_ptr() not in parameters:
            storages[storage.data_ptr()] = storage.nbytes()
        return t

    ids = torch.randint(0, cfg.vocab_size, (batch, seq), generator=torch.Generator().manual_seed(0))
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model.loss(ids, ids)
    return sum(storages.values())


@pytest.mark.parametrize("kernels", ["torch", "triton", "torch,attention=triton", "torch,cross_entropy=triton"])
@pytest.mark.parametrize("overrides", [{}, {"ffn": "silu", "norm": "post"}, {"qk_norm": True, "positions": "none"}])
def test_activation_estimate_is_within_ten_percent_of_what_autograd_saves(kernels, overrides):
    """Reference path and Triton kernels (interpreted on the CPU): flash attention keeps no
    T x T tensor, the fused LM head + loss no logits, and the estimate follows."""
    cfg = presets.micro(kernels=kernels, context_length=32, **overrides)
    estimate = training_memory(cfg, batch_size=3, seq_len=32).activation_total
    measured = saved_activation_bytes(cfg, 3, 32)
    assert 0.9 < estimate / measured < 1.1


def test_memory_components_and_largest_batch():
    cfg = presets.gpt2_small()
    n = count_parameters(cfg)
    mem = training_memory(cfg, batch_size=4)
    assert (mem.parameters, mem.gradients, mem.optimizer_state) == (4 * n, 4 * n, 8 * n)
    assert mem.activation_total == 4 * training_memory(cfg, batch_size=1).activation_total
    budget = 80 * GIB
    b = max_batch_size(cfg, budget)
    assert b > 0
    assert training_memory(cfg, batch_size=b).total <= budget < training_memory(cfg, batch_size=b + 1).total
    assert max_batch_size(presets.gpt2_xl(), 16 * GIB) == 0  # params+grads+moments alone are 31.7 GiB
    assert sum(activation_elements(cfg, 2048).values()) > 2 * sum(activation_elements(cfg, 1024).values())


def test_cli_prints_tables_and_writes_json(tmp_path, capsys):
    out = tmp_path / "acc.json"
    assert main(["--preset", "gpt2-xl", "--memory-gb", "80", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "2,127,057,600" in text and "4.513e+12" in text and "Largest batch that fits in 80 GiB" in text
    figures = json.loads(out.read_text())["gpt2-xl"]
    assert figures["total_parameters"] == 2_127_057_600
    assert figures["max_batch_size"] == max_batch_size(presets.gpt2_xl(), 80 * GIB)


def test_cli_model_field_flags_override_the_preset(capsys):
    assert main(["--preset", "tiny", "--d-model", "96", "--num_heads", "3", "--tie_embeddings", "true",
                 "--context", "128"]) == 0
    text = capsys.readouterr().out
    cfg = presets.tiny(d_model=96, num_heads=3, tie_embeddings=True, context_length=128)
    assert f"{count_parameters(cfg):,}" in text and "context 128" in text
    assert main(["--preset", "tiny", "--num_heads", "5"]) == 2
    assert "not divisible by num_heads=5" in capsys.readouterr().err


def test_handout_activation_count_follows_its_list_op_by_op():
    """The handout's AdamW question: one B x T x width tensor per op it lists, written out here
    for an odd shape (B 3, T 5, d 8, h 2, d_ff 10, V 7, L 2)."""
    cfg = presets.tiny(vocab_size=7, d_model=8, num_heads=2, d_ff=10, num_layers=2, context_length=5)
    B, T, d, h, f, V, L = 3, 5, 8, 2, 10, 7, 2
    per_block = (2 * B * T * d  # two RMSNorms
                 + 3 * B * T * d  # Q, K, V
                 + B * h * T * T + B * h * T * T  # Q^T K, softmax
                 + B * T * d + B * T * d  # weighted sum, output projection
                 + B * T * f + B * T * f + B * T * d)  # W1, SiLU, W2
    expected = L * per_block + B * T * d + B * T * V + B * T * V  # final norm, output embedding, cross-entropy
    assert sum(handout_activation_elements(cfg, batch_size=B).values()) == expected
