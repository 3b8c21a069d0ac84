"""``python -m train.train`` given bad inputs, through the real command line: one ``error:`` line
naming the problem and the fix, exit code 2, and nothing written or changed."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import numpy as np
import pytest

from conftest import REPO, assert_user_error, run_cli, snapshot
from tritonlm.tokenizer.tokenfile import write_tokens

TINY = ["--model.vocab_size=64", "--model.context_length=16", "--model.d_model=32", "--model.num_layers=1",
        "--model.num_heads=2", "--batch_size=4", "--eval_iters=1", "--progress=false", "--device=cpu"]


@pytest.fixture(scope="module")
def tokens(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tokens")
    ids = np.random.default_rng(0).integers(0, 64, size=3_000)
    return write_tokens(folder / "train.tok", ids, 64), write_tokens(folder / "empty.tok", [], 64)


def train(*args, **kw):
    """``python -m train.train`` on the tiny model; a flag of ``args`` replaces TINY's of that name."""
    given = {a.split("=", 1)[0] for a in args}
    return run_cli("train.train", "--preset=tiny", *(t for t in TINY if t.split("=", 1)[0] not in given), *args, **kw)


def test_out_dir_naming_a_file(tmp_path, tokens):
    target = tmp_path / "notes.txt"
    target.write_text("keep me")
    proc = train(f"--train_data={tokens[0]}", f"--out_dir={target}")
    assert_user_error(proc, r"notes.txt is a file, not a folder; choose another --out_dir")
    assert target.read_text() == "keep me"


def test_missing_and_empty_token_files_leave_no_run_folder(tmp_path, tokens):
    proc = train(f"--train_data={tmp_path / 'nope.tok'}", f"--out_dir={tmp_path / 'run'}")
    assert_user_error(proc, r"nope.tok does not exist.*tokenizer.encode")
    proc = train(f"--train_data={tokens[1]}", f"--out_dir={tmp_path / 'run'}")
    assert_user_error(proc, r"empty.tok has 0 tokens, too few for context_length 16")
    assert not (tmp_path / "run").exists()


def test_unavailable_device_and_unknown_flag(tmp_path, tokens):
    proc = train(f"--train_data={tokens[0]}", f"--out_dir={tmp_path / 'run'}", "--device=cuda")
    if proc.returncode != 0:  # on a GPU machine this simply trains
        assert_user_error(proc, r"CUDA is not available; use --device=cpu")
        assert not (tmp_path / "run").exists()
    proc = train(f"--train_data={tokens[0]}", "--batch_sise=3")
    assert proc.returncode == 2 and "did you mean --batch_size" in proc.stderr


def test_failed_resume_changes_nothing_and_stale_temporaries_are_cleaned(tmp_path, tokens):
    run = tmp_path / "run"
    assert train(f"--train_data={tokens[0]}", f"--out_dir={run}", "--max_iters=2").returncode == 0
    before = snapshot(run)
    stale = run / ".checkpoint.pt.tmp999999999"  # what a save killed half-way leaves behind
    stale.write_bytes(b"x" * 1000)
    proc = train(f"--train_data={tokens[0]}", f"--out_dir={run}", "--resume", "--model.d_model=48")
    assert_user_error(proc, r"d_model")
    assert snapshot(run) == before  # config.json not rewritten, nothing added; the leftover cleaned up
    assert train(f"--train_data={tokens[0]}", f"--out_dir={run}", "--resume", "--max_iters=3").returncode == 0
    assert json.loads((run / "summary.json").read_text())["steps"] == 3


def test_second_job_on_the_same_run_folder_refuses(tmp_path, tokens):
    run = tmp_path / "run"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from pathlib import Path; from tritonlm.train.run_start import RunLock; "
         f"Path({str(run)!r}).mkdir(); lock = RunLock(Path({str(run)!r})); print('locked', flush=True); time.sleep(60)"],
        cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        proc = train(f"--train_data={tokens[0]}", f"--out_dir={run}", "--max_iters=2")
        assert_user_error(proc, rf"in use by another job \(pid {holder.pid}\)")
        assert sorted(p.name for p in run.iterdir()) == [".lock", ".lock.pid"]
    finally:
        holder.kill()
        holder.wait()
    time.sleep(0.1)
    assert train(f"--train_data={tokens[0]}", f"--out_dir={run}", "--max_iters=2").returncode == 0  # released


def test_a_flag_given_twice_in_either_spelling_is_refused(tmp_path, tokens):
    proc = train(f"--train_data={tokens[0]}", f"--out_dir={tmp_path / 'run'}", "--max-iters=2", "--max_iters=3")
    assert_user_error(proc, r"--max-iters and --max_iters set the same option")
    assert not (tmp_path / "run").exists()
    assert train(f"--train-data={tokens[0]}", f"--out-dir={tmp_path / 'run'}", "--max-iters=2").returncode == 0
