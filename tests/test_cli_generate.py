"""``python -m train.generate`` given bad inputs (and a padded vocabulary), through the real command
line: one ``error:`` line naming the problem and the fix, exit code 2."""

from __future__ import annotations

import json

import pytest
import torch

from conftest import assert_user_error, run_cli
from tritonlm.model import TransformerLM, presets
from tritonlm.train.checkpoint import save_checkpoint


@pytest.fixture(scope="module")
def padded_run(tmp_path_factory):
    """A model with 320 ids trained on raw bytes (256 ids): its 64 padding rows made the most likely."""
    run = tmp_path_factory.mktemp("run")
    torch.manual_seed(0)
    model = TransformerLM.from_config(presets.micro(vocab_size=320, context_length=16))
    with torch.no_grad():
        model.lm_head.weight[256:] = model.lm_head.weight[:256].abs().max() * 50
    save_checkpoint(model, None, 1, run / "checkpoint.pt")
    return run


@pytest.mark.parametrize("temperature", ["0", "1.0"], ids=["greedy", "sampled"])
def test_padding_ids_are_never_sampled(padded_run, temperature):
    proc = run_cli("train.generate", padded_run, "--tokenizer", "bytes", "--prompt", "ab", "--max-new-tokens", "12",
                   "--temperature", temperature, "--device", "cpu")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "--- sample 1 (12 new tokens)" in proc.stdout


def test_bad_sampling_settings_are_refused_before_loading(tmp_path):
    proc = run_cli("train.generate", tmp_path / "no-run", "--temperature", "0", "--top-p", "1.5")
    assert_user_error(proc, r"top_p must be in \(0, 1\]")
    proc = run_cli("train.generate", tmp_path / "no-run")
    assert_user_error(proc, r"no checkpoint at .*no-run.*give a run folder")


def test_broken_tokenizer_files_are_named(padded_run, tmp_path):
    import shutil

    folder = tmp_path / "tok"
    folder.mkdir()
    vocab = {chr(0x100 + i) if i < 33 else chr(i): i for i in range(256)}
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    (folder / "special_tokens.json").write_text("[<|endoftext|>")  # corrupt JSON
    proc = run_cli("train.generate", padded_run, "--tokenizer", folder, "--prompt", "a")
    assert_user_error(proc, r"special_tokens.json is not valid JSON")
    (folder / "special_tokens.json").unlink()
    vocab["x"] = 10**12  # an absurd id: would allocate a list of that length
    (folder / "vocab.json").write_text(json.dumps(vocab))
    proc = run_cli("train.generate", padded_run, "--tokenizer", folder, "--prompt", "a")
    assert_user_error(proc, r"vocab.json maps 'x' to id 1000000000000.*corrupt")
    shutil.rmtree(folder)
