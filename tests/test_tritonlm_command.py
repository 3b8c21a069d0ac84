"""The ``tritonlm`` command: every job a subcommand running the same ``main`` as its module."""

from __future__ import annotations

import importlib
import json
import math
import shutil
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

from conftest import REPO
from tritonlm import cli
from tritonlm.tokenizer.tokenfile import open_tokens, write_tokens
from tritonlm.train import train as train_cli
from tritonlm.train.run_folder import load_model

pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.mark.parametrize("name", list(cli.COMMANDS))
def test_every_subcommand_is_its_modules_main(name, capsys):
    module = importlib.import_module(cli.COMMANDS[name][0])
    assert callable(module.main)
    with pytest.raises(SystemExit) as stop:
        cli.main([name, "--help"])
    assert stop.value.code == 0 and "usage:" in capsys.readouterr().out


def test_help_lists_every_command_and_a_typo_gets_a_suggestion(capsys):
    assert cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    assert all(f"  {name} " in out for name in cli.COMMANDS)
    assert cli.main(["genrate"]) == 2 and "did you mean generate?" in capsys.readouterr().err
    assert cli.main([]) == 2


def test_the_console_script_and_python_m_tritonlm_run(tmp_path):
    runs = [[sys.executable, "-m", "tritonlm", "--help"]]
    if shutil.which("tritonlm"):
        runs.append(["tritonlm", "--help"])
    for argv in runs:
        proc = subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0 and "train-tokenizer" in proc.stdout, proc.stderr


def test_evaluate_scores_every_token_of_a_file(tmp_path, bpe_corpus, capsys):
    run = tmp_path / "run"
    assert train_cli.main([f"--train_data={bpe_corpus / 'train.bin'}", f"--out_dir={run}", "--max_iters=5",
                           "--model.context_length=16", "--model.d_model=32", "--model.num_layers=1",
                           "--model.num_heads=2", "--eval_interval=0", "--progress=false", "--device=cpu"]) == 0
    capsys.readouterr()
    assert cli.main(["evaluate", str(run), str(bpe_corpus / "valid.bin"), "--json", "--batch-size", "5"]) == 0
    result = json.loads(capsys.readouterr().out)
    # independent: every window of 16 scored by F.cross_entropy, summed over every predicted token
    model = load_model(run, "cpu", "torch")
    ids = torch.from_numpy(open_tokens(bpe_corpus / "valid.bin")[0].astype("int64"))
    total, count = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(ids) - 1, 16):
            window = ids[start:start + 17]
            logits = model(window[None, :-1])[0]
            total += float(F.cross_entropy(logits, window[1:], reduction="sum"))
            count += len(window) - 1
    assert result["tokens"] == count == len(ids) - 1
    assert result["loss"] == pytest.approx(total / count, rel=1e-5)
    assert result["perplexity"] == pytest.approx(math.exp(result["loss"]))
    other = write_tokens(tmp_path / "other.bin", [1, 2, 3, 4], 300, {"tokenizer": {"sha256": "0" * 64}})
    assert cli.main(["evaluate", str(run), str(other)]) == 2
    assert "made by another tokenizer" in capsys.readouterr().err
