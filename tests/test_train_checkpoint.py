"""Checkpoints: exact round trip, RNG restore, config-mismatch messages, corrupt files."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from tritonlm.model import ModelConfig, TransformerLM
from tritonlm.train import AdamW, CheckpointError, load_checkpoint, read_checkpoint, save_checkpoint

CFG = dict(vocab_size=50, context_length=12, d_model=16, num_layers=2, num_heads=2)


def _trained(cfg: ModelConfig, steps: int = 2):
    torch.manual_seed(0)
    model = TransformerLM.from_config(cfg)
    opt = AdamW(model.parameters(), lr=1e-2, weight_decay=0.1)
    ids = torch.randint(0, cfg.vocab_size, (3, cfg.context_length))
    for _ in range(steps):
        opt.zero_grad()
        model.loss(ids, ids.roll(-1, 1)).backward()
        opt.step()
    return model, opt, ids


def test_round_trip_restores_model_optimizer_iteration_extra_and_rng(tmp_path):
    cfg = ModelConfig(**CFG)
    model, opt, ids = _trained(cfg)
    path = save_checkpoint(model, opt, 17, tmp_path / "ck.pt", note={"a": [1, 2]})
    expected = (random.random(), np.random.rand(), torch.rand(3))  # draws right after the save

    torch.manual_seed(123)
    fresh = TransformerLM.from_config(cfg)
    fresh_opt = AdamW(fresh.parameters(), lr=1e-2, weight_decay=0.1)
    assert load_checkpoint(path, fresh, fresh_opt, restore_rng=True) == 17
    assert (random.random(), np.random.rand()) == expected[:2] and torch.equal(torch.rand(3), expected[2])
    for (name, a), b in zip(model.state_dict().items(), fresh.state_dict().values()):
        assert torch.equal(a, b), name
    # both continue identically: the optimizer state came back too
    for m, o in ((model, opt), (fresh, fresh_opt)):
        o.zero_grad()
        m.loss(ids, ids).backward()
        o.step()
    for a, b in zip(model.parameters(), fresh.parameters()):
        assert torch.equal(a, b)
    payload = read_checkpoint(path)
    assert payload["extra"] == {"note": {"a": [1, 2]}}
    assert payload["model_config"]["d_model"] == 16 and "git_sha" in payload["metadata"]
    assert not list(tmp_path.glob(".*tmp*"))  # the temp file was renamed away


def test_loading_into_a_different_config_names_the_fields(tmp_path):
    model, opt, _ = _trained(ModelConfig(**CFG), steps=1)
    path = save_checkpoint(model, opt, 1, tmp_path / "ck.pt")
    other = TransformerLM.from_config(ModelConfig(**{**CFG, "d_model": 32, "num_layers": 3}))
    with pytest.raises(CheckpointError, match=r"d_model: checkpoint=16 model=32.*num_layers: checkpoint=2 model=3"):
        load_checkpoint(path, other)
    # the kernel backend does not change the weights: such a checkpoint loads
    same_weights = TransformerLM.from_config(ModelConfig(**CFG, kernels="torch"))
    assert load_checkpoint(path, same_weights) == 1


def test_state_dict_mismatch_without_config_is_reported(tmp_path):
    path = save_checkpoint(torch.nn.Linear(3, 4), None, 0, tmp_path / "lin.pt")
    with pytest.raises(CheckpointError, match=r"shape mismatches.*weight: checkpoint \(4, 3\) vs model \(5, 3\)"):
        load_checkpoint(path, torch.nn.Linear(3, 5))
    with pytest.raises(CheckpointError, match="no optimizer state"):
        lin = torch.nn.Linear(3, 4)
        load_checkpoint(path, lin, AdamW(lin.parameters()))


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty", "missing"])
def test_corrupt_or_missing_checkpoints_give_a_clear_error(tmp_path, damage):
    model, opt, _ = _trained(ModelConfig(**CFG), steps=1)
    path = save_checkpoint(model, opt, 1, tmp_path / "ck.pt")
    raw = path.read_bytes()
    if damage == "truncate":
        path.write_bytes(raw[: len(raw) // 2])
    elif damage == "garbage":
        path.write_bytes(b"not a checkpoint" * 100)
    elif damage == "empty":
        path.write_bytes(b"")
    else:
        path.unlink()
    with pytest.raises(CheckpointError, match="corrupt or truncated|does not exist"):
        load_checkpoint(path, model, opt)


def test_a_failed_save_leaves_the_previous_checkpoint_intact(tmp_path, monkeypatch):
    model, opt, _ = _trained(ModelConfig(**CFG), steps=1)
    path = save_checkpoint(model, opt, 1, tmp_path / "ck.pt")
    before = path.read_bytes()

    def crash(obj, f):
        f.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(CheckpointError, match="could not write the checkpoint .*disk full.*previous checkpoint.*intact"):
        save_checkpoint(model, opt, 2, path)
    assert path.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["ck.pt"]
