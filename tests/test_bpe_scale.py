"""BPE at scale: memory is measured over the whole process tree; the experiment trains, profiles,
compares two vocabularies and keeps finished cases."""

from __future__ import annotations

import json
import random
import sys

import pytest

from conftest import assert_user_error, run_cli
from tritonlm.tokenizer.vocab_files import load_vocab
from tritonlm.train.experiments import bpe_scale
from tritonlm.train.experiments.bpe_scale import BpeCase, compare_vocabularies
from tritonlm.train.experiments.results import main as results_main
from tritonlm.train.experiments.results import module_command
from tritonlm.util.process_memory import run_sampling_memory
from tritonlm.util.runinfo import git_sha

HOLD_150_MB = "b = b'x' * 150_000_000; import time; time.sleep(1.5)"


def test_peak_memory_counts_the_workers_too():
    parent = ("import subprocess, sys; child = subprocess.Popen([sys.executable, '-c', sys.argv[1]]); "
              + HOLD_150_MB + "; child.wait(); print('done')")
    run = run_sampling_memory([sys.executable, "-c", parent, HOLD_150_MB])
    assert run.returncode == 0 and run.stdout.strip() == "done"
    # Two processes hold 150 MB each at the same time: the tree's peak is their sum.
    assert 300 <= run.peak_tree_rss_mb < 450, run.peak_tree_rss_mb
    assert 150 <= run.largest_process_rss_mb < 225


def test_a_peak_shorter_than_the_sampling_interval_is_still_counted():
    # The 200 MB live for a fraction of a second right after start-up; the samples fall at 0 s
    # (before exec), 2 s and 4 s, long after they are freed even on a loaded machine.
    brief = "b = b'x' * 200_000_000; del b; import time; time.sleep(3.0)"
    run = run_sampling_memory([sys.executable, "-c", brief], interval=2.0)
    assert run.sampled_tree_rss_mb < 150  # sampled at start-up and after the 200 MB are freed
    assert run.peak_tree_rss_mb >= 200 and run.largest_process_rss_mb >= 200


def test_comparison_of_two_vocabularies():
    first = {0: b"a", 1: b"b", 2: b" the", 3: b" extraordinarily"}
    second = {0: b"a", 1: b"b", 2: b" the", 3: b" cinematography", 4: b" film"}
    c = compare_vocabularies(first, second)
    assert c["sizes"] == [4, 5] and c["shared"] == 3 and c["first_in_second"] == pytest.approx(0.75)
    assert c["longest_only_in_first"] == [" extraordinarily"]
    assert c["longest_only_in_second"] == [" cinematography", " film"]
    assert c["longest_words"] == [[" extraordinarily", " the", "a", "b"], [" cinematography", " film", " the", "a", "b"]]
    assert c["mean_bytes"] == pytest.approx([(1 + 1 + 4 + 16) / 4, (1 + 1 + 4 + 15 + 5) / 5])


def _write_corpus(path, signature: str, seed: int) -> None:
    rng = random.Random(seed)
    syllables = ["ka", "lo", "mir", "ten", "su", "bra", "vel", "on", "dri", "pa", "eth", "gu"]
    words = ["".join(rng.choice(syllables) for _ in range(rng.randint(1, 4))) for _ in range(400)]
    docs = []
    for _ in range(300):
        body = " ".join(rng.choice(words) for _ in range(40))
        docs.append(f"{body} {signature} {body[:30]}.\n")
    path.write_text("<|endoftext|>\n".join(docs), encoding="utf-8")


@pytest.fixture
def small_shared(tmp_path, monkeypatch):
    data = tmp_path / "shared" / "data"
    data.mkdir(parents=True)
    _write_corpus(data / "books.txt", "extraordinarily", seed=1)
    _write_corpus(data / "reviews.txt", "cinematography", seed=2)
    monkeypatch.setenv("TRITONLM_SHARED", str(tmp_path / "shared"))
    monkeypatch.setenv("TRITONLM_CACHE", str(tmp_path / "cache"))
    return (BpeCase("books-300", "books", 300), BpeCase("both-400", "books+reviews", 400))


def test_bpe_scale_trains_profiles_compares_and_keeps_finished_cases(tmp_path, small_shared, monkeypatch):
    result = bpe_scale.run(tmp_path / "out", profile=True, cases=small_shared)
    out = tmp_path / "out" / "bpe-scale"
    for case, measured in zip(small_shared, result["cases"]):
        vocab = load_vocab(out / case.name / "vocab.json")
        assert len(vocab) == case.vocab_size == measured["vocab_size"]
        learned = [t for t in vocab.values() if len(t) > 1 and t != b"<|endoftext|>"]
        assert len(measured["longest_tokens"][0].encode()) == max(map(len, learned))
        assert measured["peak_tree_rss_mb"] > 10 and measured["wall_s"] > 0
        profile = measured["profile"]["top_by_self_time"]
        assert profile and [r["self_s"] for r in profile] == sorted((r["self_s"] for r in profile), reverse=True)
        assert not (out / case.name / "profiled").exists()
    comparison = result["comparison"]
    # The reviews' word is a token of the joint vocabulary alone; the books' word is in both.
    assert any("cinematography" in t for t in comparison["longest_only_in_second"])
    assert not any("extraordinarily" in t for t in comparison["longest_only_in_second"])
    assert comparison["shared"] >= 257  # the 256 bytes and <|endoftext|>
    report = (out / "bpe_scale.md").read_text()
    assert "books-300" in report and "both-400" in report and "Profile of" in report
    written = json.loads((out / "bpe_scale.json").read_text())
    assert [case["metadata"]["git_sha"] for case in written["cases"]] == [git_sha()] * 2  # what measured each
    assert (out / "token_lengths.png").stat().st_size > 1000
    # The results page carries the table, with its plot pointing into the collected folder.
    docs = tmp_path / "docs"
    results_main(["--collect", str(out), "--results-dir", str(docs / "results"), "--page", str(docs / "results.md")])
    page = (docs / "results.md").read_text()
    assert "](results/bpe-scale/token_lengths.png)" in page and (docs / "results/bpe-scale/token_lengths.png").is_file()
    assert "both-400" in page and f"`{module_command(written['metadata'])}`" in page  # the command that made it

    def must_not_train(*args, **kwargs):
        raise AssertionError("a finished case was trained again")

    monkeypatch.setattr(bpe_scale, "run_sampling_memory", must_not_train)
    again = bpe_scale.run(tmp_path / "out", profile=True, cases=small_shared)
    assert again["cases"] == result["cases"]


def test_bpe_scale_without_the_shared_corpora_fails_in_one_line(tmp_path):
    proc = run_cli("train.experiments", "bpe-scale", "--out", tmp_path / "out",
                   env={"TRITONLM_SHARED": str(tmp_path / "nowhere"), "TRITONLM_CACHE": str(tmp_path / "cache")})
    assert_user_error(proc, "shared data folder not found .*TRITONLM_SHARED")
