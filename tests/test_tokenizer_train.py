"""BPE training: exact reference results, an independent slow trainer, chunking, bad input, Ctrl-C."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
import regex

from tritonlm.tokenizer import train_bpe
from tritonlm.tokenizer.chunks import plan_chunks
from tritonlm.tokenizer.pretokenize import GPT2_PATTERN, last_boundary, special_regex
from tritonlm.tokenizer.vocab_files import load_merges, load_vocab

EOT = "<|endoftext|>"
REPO = Path(__file__).resolve().parent.parent


def simple_reference_bpe(text: str, vocab_size: int, special_tokens: list[str]):
    """Deliberately plain BPE: recount every pair from scratch before each merge."""
    pieces = [text]
    if special_tokens:
        alternation = "|".join(regex.escape(t) for t in sorted(special_tokens, key=len, reverse=True))
        pieces = regex.split(alternation, text)
    words = Counter()
    for piece in pieces:
        for pre in regex.findall(GPT2_PATTERN, piece):
            words[tuple(bytes([b]) for b in pre.encode("utf-8"))] += 1
    vocab = [t.encode() for t in special_tokens] + [bytes([b]) for b in range(256)]
    merges = []
    while len(vocab) < vocab_size:
        pairs = Counter()
        for word, n in words.items():
            for pair in zip(word, word[1:]):
                pairs[pair] += n
        if not pairs:
            break
        best = max(pairs, key=lambda p: (pairs[p], p))
        merges.append(best)
        vocab.append(best[0] + best[1])
        merged = Counter()
        for word, n in words.items():
            out, i = [], 0
            while i < len(word):
                if i + 1 < len(word) and (word[i], word[i + 1]) == best:
                    out.append(best[0] + best[1])
                    i += 2
                else:
                    out.append(word[i])
                    i += 1
            merged[tuple(out)] += n
        words = merged
    return vocab, merges


def random_corpus(seed: int, n_words: int = 1500) -> str:
    rng = random.Random(seed)
    syllables = ["th", "e", "an", "qu", "ö", "ß", "日本", "x", "zz", "a", "ing", "é", "😀", "7", "42"]
    seps = [" ", " ", " ", "  ", "\n", "\n\n", " \n", "\t", ", ", ". ", "'s ", "'ll ", "!? ", f" {EOT} ", EOT]
    parts = []
    for _ in range(n_words):
        parts.append("".join(rng.choice(syllables) for _ in range(rng.randint(1, 4))))
        parts.append(rng.choice(seps))
    return "".join(parts)


def test_reference_merges_and_vocab_on_corpus_en(fixture_file):
    corpus = fixture_file("corpus.en")
    ref_merges = load_merges(fixture_file("train-bpe-reference-merges.txt"))
    ref_vocab = load_vocab(fixture_file("train-bpe-reference-vocab.json"))
    for workers, chunk in ((1, 1 << 22), (2, 9000)):
        vocab, merges = train_bpe(corpus, 500, [EOT], num_workers=workers, chunk_bytes=chunk)
        assert merges == ref_merges
        assert set(vocab.values()) == set(ref_vocab.values())
        assert sorted(vocab) == list(range(500))


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("workers", [1, 3])
def test_fast_trainer_matches_simple_reference_on_random_corpora(tmp_path, seed, workers):
    text = random_corpus(seed)
    path = tmp_path / "random.txt"
    path.write_text(text, encoding="utf-8")
    vocab_size = 256 + 1 + 120
    vocab, merges = train_bpe(path, vocab_size, [EOT], num_workers=workers, chunk_bytes=700)
    ref_vocab, ref_merges = simple_reference_bpe(text, vocab_size, [EOT])
    assert merges == ref_merges
    assert [vocab[i] for i in range(len(vocab))] == ref_vocab


@pytest.mark.parametrize("name", ["tinystories_sample.txt", "german.txt", "address.txt", "corpus.en"])
def test_fast_trainer_matches_simple_reference_on_real_text(tmp_path, fixture_file, name):
    text = fixture_file(name).read_text(encoding="utf-8")[:20000]
    path = tmp_path / "real.txt"
    path.write_text(text, encoding="utf-8")
    ref_vocab, ref_merges = simple_reference_bpe(text, 256 + 150, [])
    for workers in (1, 2):
        vocab, merges = train_bpe(path, 256 + 150, [], num_workers=workers, chunk_bytes=997)
        assert merges == ref_merges
        assert [vocab[i] for i in range(len(vocab))] == ref_vocab


def test_training_stops_early_when_no_pair_is_left(tmp_path):
    path = tmp_path / "tiny.txt"
    path.write_text("ab ab", encoding="utf-8")
    vocab, merges = train_bpe(path, 1000, [])
    assert merges == [(b"a", b"b"), (b" ", b"ab")]
    assert len(vocab) == 258


def test_special_tokens_are_never_merged_across(tmp_path):
    path = tmp_path / "docs.txt"
    path.write_text(f"hello{EOT}hello{EOT}{EOT}hello", encoding="utf-8")
    vocab, merges = train_bpe(path, 300, [EOT])
    assert vocab[0] == EOT.encode()
    assert all(b"<|" not in a + b for a, b in merges)
    assert b"hello" in vocab.values()


@pytest.mark.parametrize("seed", range(6))
def test_chunks_cover_the_file_and_cut_only_at_boundaries(tmp_path, seed):
    text = random_corpus(seed, 400)
    path = tmp_path / "c.txt"
    path.write_bytes(text.encode("utf-8"))
    chunks = list(plan_chunks(path, [EOT, EOT + EOT], chunk_bytes=97))
    assert chunks[0].start == 0 and chunks[-1].end == path.stat().st_size
    assert all(a.end == b.start for a, b in zip(chunks, chunks[1:]))
    data = path.read_bytes()
    pieces = [data[c.start : c.end].decode("utf-8") for c in chunks]  # cuts never split a character
    split = special_regex([EOT, EOT + EOT])
    tokens = lambda s: [t for part in split.split(s) for t in regex.findall(GPT2_PATTERN, part)]
    assert [t for p in pieces for t in tokens(p)] == tokens(text)


def test_last_boundary_never_cuts_a_special_token():
    specials = special_regex(["<| a b |>"])
    buf = "word <| a b |>tail more"
    # the last whitespace boundary before the look-ahead limit (after "b") lies inside the
    # special token, so the cut moves to the token's start
    assert last_boundary(buf, specials, len("<| a b |>")) == 5
    assert last_boundary(buf, None, 0) == 18


# ---- bad input ---------------------------------------------------------------------------

def test_missing_path_and_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        train_bpe(tmp_path / "nope.txt", 300, [EOT])
    with pytest.raises(IsADirectoryError, match="is a directory"):
        train_bpe(tmp_path, 300, [EOT])


def test_empty_file(tmp_path):
    path = tmp_path / "empty.txt"
    path.write_bytes(b"")
    with pytest.raises(ValueError, match="empty"):
        train_bpe(path, 300, [EOT])


@pytest.mark.parametrize("workers", [1, 2])
def test_non_utf8_names_the_byte_offset(tmp_path, workers):
    path = tmp_path / "latin1.txt"
    good = ("plain ascii words " * 400).encode()
    path.write_bytes(good + "café".encode("latin-1") + b" more")
    offset = len(good) + 3
    with pytest.raises(ValueError, match=f"byte offset {offset}"):
        train_bpe(path, 300, [EOT], num_workers=workers, chunk_bytes=1000)


def test_vocab_size_too_small_and_bad_special_tokens(tmp_path):
    path = tmp_path / "t.txt"
    path.write_text("some text", encoding="utf-8")
    with pytest.raises(ValueError, match="at least 256 byte tokens"):
        train_bpe(path, 256, [EOT])
    with pytest.raises(ValueError, match="empty string"):
        train_bpe(path, 300, [""])
    with pytest.raises(ValueError, match="given twice"):
        train_bpe(path, 300, [EOT, EOT])


def run_cli(*args, cwd=REPO):
    return subprocess.run([sys.executable, "-m", "tokenizer.train", *map(str, args)],
                          capture_output=True, text=True, cwd=cwd)


def test_cli_trains_and_reports(tmp_path, fixture_file):
    out = tmp_path / "tok"
    result = run_cli(fixture_file("corpus.en"), "--vocab-size", 400, "--special-token", EOT, "--out", out, "--quiet")
    assert result.returncode == 0, result.stderr
    for name in ("vocab.json", "merges.txt", "special_tokens.json", "train_summary.json"):
        assert (out / name).is_file()
    assert "bytes/token" in result.stdout and "peak RSS" in result.stdout and "longest tokens" in result.stdout


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="the trainer reads its own peak from /proc")
def test_cli_reports_its_own_peak_memory_not_its_launchers(tmp_path):
    text = tmp_path / "in.txt"
    text.write_text(random_corpus(3, 3000), encoding="utf-8")
    ballast = b"x" * 500_000_000  # the launcher is resident with 500 MB when it starts the trainer
    result = run_cli(text, "--vocab-size", 300, "--out", tmp_path / "tok", "--workers", 1, "--quiet")
    del ballast
    assert result.returncode == 0, result.stderr
    summary = json.loads((tmp_path / "tok" / "train_summary.json").read_text())
    assert 5 < summary["peak_rss"]["main_mb"] < 300, summary["peak_rss"]


@pytest.mark.parametrize("case", ["missing", "directory", "non_utf8", "small_vocab", "empty_special", "dup_special", "empty"])
def test_cli_bad_input_gives_one_clear_error_and_writes_nothing(tmp_path, case):
    text = tmp_path / "in.txt"
    text.write_text("hello world", encoding="utf-8")
    args = {"missing": [tmp_path / "nope.txt", "--vocab-size", 300],
            "directory": [tmp_path, "--vocab-size", 300],
            "non_utf8": [text, "--vocab-size", 300],
            "small_vocab": [text, "--vocab-size", 200],
            "empty_special": [text, "--vocab-size", 300, "--special-token", ""],
            "dup_special": [text, "--vocab-size", 300, "--special-token", EOT, "--special-token", EOT],
            "empty": [text, "--vocab-size", 300]}[case]
    if case == "non_utf8":
        text.write_bytes(b"ok \xff\xfe bad")
    if case == "empty":
        text.write_bytes(b"")
    out = tmp_path / "out"
    result = run_cli(*args, "--out", out, "--quiet")
    assert result.returncode == 2
    assert result.stderr.startswith("error: ") and "Traceback" not in result.stderr
    assert not out.exists()


def _children_of(pid: int) -> list[int]:
    kids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                if int(fields[1]) == pid and fields[0] != "Z":
                    kids.append(int(entry))
            except (OSError, IndexError):
                pass
    return kids


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="needs /proc to find worker processes")
def test_ctrl_c_during_training_leaves_no_workers(tmp_path):
    path = tmp_path / "big.txt"
    path.write_text(random_corpus(7, 20000) * 100, encoding="utf-8")  # ~15 MB: seconds of work
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [sys.executable, "-m", "tokenizer.train", str(path), "--vocab-size", "2000", "--out", str(out),
         "--workers", "2", "--chunk-mb", "0.05", "--quiet"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        # Ctrl-C as at a terminal: a test run started in the background (`cmd &` in a script)
        # ignores SIGINT, and an ignored signal stays ignored in every process it starts.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.monotonic() + 30
    workers = []
    while time.monotonic() < deadline and len(workers) < 2:
        workers = _children_of(proc.pid)
        time.sleep(0.05)
    assert len(workers) >= 2, "workers never started"
    assert not out.exists(), "training finished before the workers were seen: the corpus is too small to interrupt"
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr
    time.sleep(0.2)
    assert [w for w in workers if _state(w) not in ("Z", None)] == []
    assert not out.exists()


def _state(pid: int):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return None


def test_the_merge_examples_of_the_merge_loop_docstrings():
    """The examples in tokenizer/merges.py, checked: two merges of a tiny corpus, and what merging
    (t, h) does to the word "thither"."""
    from tritonlm.tokenizer.merges import learn_merges

    _, merges = learn_merges({b"low": 5, b"lower": 2, b"lot": 1}, 256 + 2, [])
    assert merges == [(b"l", b"o"), (b"lo", b"w")]
    vocab, merges = learn_merges({b"thither": 3}, 256 + 2, [])
    assert merges[0] == (b"t", b"h")  # the only pair seen twice in the word
    # after it, (th, i), (i, th), (th, e) and (e, r) are each seen 3 times; ties go to the greatest
    assert merges[1] == max([(b"th", b"i"), (b"i", b"th"), (b"th", b"e"), (b"e", b"r")])
