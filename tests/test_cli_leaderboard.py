"""``python -m train.leaderboard`` given bad inputs, through the real command line; and two jobs
sharing the data cache at the same time."""

from __future__ import annotations

import subprocess
import sys

from conftest import REPO, assert_user_error, run_cli


def test_missing_training_file_is_named_first(tmp_path):
    proc = run_cli("train.leaderboard", "--train-data", tmp_path / "nope.txt", "--out", tmp_path / "run",
                   env={"TRITONLM_CACHE": str(tmp_path / "cache")})
    assert_user_error(proc, r"nope.txt' is neither a file nor an available shared corpus")
    assert not (tmp_path / "run").exists()


def test_training_text_without_validation_text(tmp_path):
    text = tmp_path / "train.txt"
    text.write_text("hello world\n" * 100)
    proc = run_cli("train.leaderboard", "--train-data", text, "--out", tmp_path / "run",
                   env={"TRITONLM_CACHE": str(tmp_path / "cache")})
    assert_user_error(proc, r"needs a validation set: pass --val-data PATH")
    assert not (tmp_path / "run").exists()


def test_bad_budget_and_unknown_flag(tmp_path):
    assert_user_error(run_cli("train.leaderboard", "--budget", "soon"), r"cannot read duration 'soon'")
    proc = run_cli("train.leaderboard", "--max_lrr=1e-3")
    assert proc.returncode == 2 and "did you mean --max_lr" in proc.stderr


_PREPARE = """
import sys
from tritonlm.corpora.settings import DataSettings
from tritonlm.train.leaderboard.data import prepare_data
data = prepare_data(None, None, DataSettings(vocab_size=300, tokenizer_train_bytes=200_000,
                                             story_train_bytes=400_000, story_val_bytes=20_000))
print(data.train_tokens, data.val_tokens, data.tokenizer_dir)
"""


def test_two_jobs_share_the_data_cache_at_once(tmp_path):
    """Both prepare the same stories, tokenizer and token files at the same time: both finish,
    with the same files, and the cache holds no half-written leftovers."""
    env = {"TRITONLM_CACHE": str(tmp_path / "cache"), "PYTHONPATH": REPO}
    jobs = [subprocess.Popen([sys.executable, "-c", _PREPARE], cwd=REPO, env={**__import__("os").environ, **env},
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = [job.communicate(timeout=300) for job in jobs]
    for job, (out, err) in zip(jobs, outputs):
        assert job.returncode == 0, err[-3000:]
    paths = [out.splitlines()[-1] for out, _ in outputs]  # (one may reuse what the other made first)
    printed = "".join(out for out, _ in outputs)  # at least one job encoded: its summary is for people
    assert " tokens in " in printed and "EncodeStats(" not in printed, printed[-2000:]
    assert paths[0] == paths[1]
    from tritonlm.tokenizer import Tokenizer
    from tritonlm.tokenizer.tokenfile import read_token_header

    train_tokens, val_tokens, tokenizer_dir = paths[0].split()
    assert read_token_header(train_tokens).num_tokens > 0 and read_token_header(val_tokens).num_tokens > 0
    assert len(Tokenizer.from_dir(tokenizer_dir).vocab) == 300
    leftovers = [p for p in (tmp_path / "cache").rglob("*") if ".tmp" in p.name]
    assert not leftovers, leftovers
