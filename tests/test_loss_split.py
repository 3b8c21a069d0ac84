"""The loss-split experiment: repeats and rarity classes against direct definitions, and the split
of a real checkpoint's loss against PyTorch's cross-entropy on the same windows."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from tritonlm.model import TransformerLM, presets
from tritonlm.tokenizer import Tokenizer
from tritonlm.tokenizer.tokenfile import open_tokens, write_tokens
from tritonlm.train.checkpoint import save_checkpoint
from tritonlm.train.experiments import loss_split
from tritonlm.train.experiments.cli import main as experiments_main


def repeats_by_definition(windows: np.ndarray) -> np.ndarray:
    return np.array([[row[j + 1] in set(row[:j + 1].tolist()) for j in range(len(row) - 1)] for row in windows])


@pytest.mark.parametrize("shape, vocab", [((5, 2), 3), ((7, 33), 4), ((3, 129), 50), ((1, 17), 1000)])
def test_repeats_match_their_definition(shape, vocab):
    windows = np.random.default_rng(sum(shape) + vocab).integers(0, vocab, size=shape)
    assert np.array_equal(loss_split.repeats(windows), repeats_by_definition(windows))


def test_repeats_of_a_known_window():
    # ids:      5  7  5  9  7  7 ; targets are ids 1..5
    expected = [[False, True, False, True, True]]
    assert loss_split.repeats(np.array([[5, 7, 5, 9, 7, 7]])).tolist() == expected


def test_rarity_classes_follow_the_edges():
    frequency = np.array([0.0, 99.9, 100.0, 999.0, 1000.0, 5e5])
    assert loss_split.rarity_class(frequency).tolist() == [0, 0, 1, 1, 2, 2]


def test_per_million_counts_the_head_of_the_training_file():
    tokens = np.array([0, 0, 1, 2, 2, 2, 3, 3], dtype=np.uint16)
    assert loss_split.per_million(tokens, 5, sample=4).tolist() == [5e5, 2.5e5, 2.5e5, 0.0, 0.0]
    with pytest.raises(ValueError, match="no tokens"):
        loss_split.per_million(tokens[:0], 5)


def test_cells_cover_every_target_and_add_up_to_the_mean():
    rng = np.random.default_rng(1)
    losses = rng.exponential(size=(4, 31))
    rarity = rng.integers(0, 2, size=(4, 31))  # no common targets: an empty cell
    repeated = rng.random((4, 31)) < 0.4
    cells = loss_split.split(losses, rarity, repeated)
    assert [c["cell"] for c in cells][:2] == ["rare, repeat", "rare, first in window"]
    assert sum(c["share"] for c in cells) == pytest.approx(1.0)
    assert sum(c["contribution"] for c in cells) == pytest.approx(losses.mean())
    empty = [c for c in cells if c["rarity"] == "common"]
    assert all(c["share"] == 0 and c["mean_loss"] is None and c["contribution"] == 0 for c in empty)
    mask = (rarity == 1) & ~repeated
    assert cells[3]["mean_loss"] == pytest.approx(losses[mask].mean())


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A run folder as training writes it: a checkpoint, config.json and its two token files."""
    root = tmp_path_factory.mktemp("loss-split")
    run = root / "run"
    run.mkdir()
    torch.manual_seed(0)
    model = TransformerLM.from_config(presets.micro(vocab_size=64, context_length=16))
    save_checkpoint(model, None, 3, run / "checkpoint.pt")
    rng = np.random.default_rng(0)
    train = write_tokens(root / "train.tok", rng.integers(0, 60, size=5000), 64)
    val = write_tokens(root / "val.tok", rng.integers(0, 60, size=16 * 9 + 5), 64)
    (run / "config.json").write_text(json.dumps({"config": {"train_data": str(train), "val_data": str(val)}}))
    return run, model.eval(), val


def test_a_runs_split_adds_up_to_pytorchs_cross_entropy(tiny_run):
    run, model, val = tiny_run
    result = loss_split.measure_run(run, windows=100)
    assert result["windows"] == 9 and result["positions"] == 9 * 16  # every whole window, no more
    assert result["step"] == 3  # the checkpoint's step
    ids = torch.from_numpy(np.asarray(open_tokens(val)[0]).astype(np.int64))
    windows = torch.stack([ids[i * 16:i * 16 + 17] for i in range(9)])
    with torch.no_grad():
        reference = F.cross_entropy(model(windows[:, :-1]).flatten(0, 1).float(), windows[:, 1:].flatten())
    assert result["mean_loss"] == pytest.approx(reference.item(), rel=1e-5)
    assert sum(c["contribution"] for c in result["cells"]) == pytest.approx(reference.item(), rel=1e-5)
    assert result["rare_repeat_examples"] == []  # no tokenizer beside the run: nothing to decode


def test_the_rare_repeats_are_named_most_frequent_first(tmp_path):
    Tokenizer({i: bytes([i]) for i in range(256)}, []).save(tmp_path / "tokenizer")
    targets = np.array([[ord("a"), ord("b"), ord("b"), ord("c"), ord("b"), ord("a")]])
    rarity = np.array([[0, 0, 0, 0, 0, 2]])
    repeated = np.array([[True, True, True, False, True, True]])  # 'c' is first in window, the last 'a' common
    assert loss_split.rare_repeat_examples(tmp_path, targets, rarity, repeated) == ["b", "a"]


def test_the_command_writes_its_table_json_and_plot(tiny_run, tmp_path):
    run, _, _ = tiny_run
    assert experiments_main(["loss-split", "--runs", str(run), "--out", str(tmp_path), "--windows", "4"]) == 0
    out = tmp_path / "loss-split"
    saved = json.loads((out / "loss_split.json").read_text())
    assert [r["windows"] for r in saved["runs"]] == [4] and "git" in json.dumps(saved["metadata"])
    assert "| rare, repeat |" in (out / "loss_split.md").read_text()
    assert (out / "loss_split.png").stat().st_size > 1000


def test_a_folder_without_its_config_is_refused_by_name(tmp_path):
    with pytest.raises(FileNotFoundError, match="config.json is missing"):
        loss_split.measure_run(tmp_path, windows=4)


def test_a_validation_file_shorter_than_a_window_is_refused():
    with pytest.raises(ValueError, match="fewer than one window"):
        loss_split.validation_windows(np.arange(10), context=16, count=4)
