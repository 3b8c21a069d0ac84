"""The small shared pieces: token files, the corpus cache, backend selection, run metadata."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tritonlm.kernels import resolve_backend
from tritonlm.corpora.shared import SharedDataMissing, shared_corpus
from tritonlm.tokenizer.tokenfile import (
    TokenFileError,
    TokenFileWriter,
    dtype_for_vocab,
    open_tokens,
    write_tokens,
)
from tritonlm.util.runinfo import run_metadata


@pytest.mark.parametrize("vocab_size, dtype", [(256, np.uint16), (65536, np.uint16), (65537, np.uint32), (100_000, np.uint32)])
def test_token_file_round_trip_records_dtype_and_vocab(tmp_path, vocab_size, dtype):
    rng = np.random.default_rng(0)
    ids = rng.integers(0, vocab_size, size=1234)
    path = write_tokens(tmp_path / "t.bin", ids, vocab_size)
    read, info = open_tokens(path)
    assert info.dtype == np.dtype(dtype) and info.vocab_size == vocab_size and info.num_tokens == 1234
    np.testing.assert_array_equal(read, ids)
    assert dtype_for_vocab(vocab_size) == np.dtype(dtype)


def test_token_file_rejects_out_of_range_ids_and_leaves_no_file(tmp_path):
    target = tmp_path / "t.bin"
    with pytest.raises(TokenFileError, match="outside the vocabulary"):
        with TokenFileWriter(target, 100) as w:
            w.write([1, 2, 3])
            w.write([100])
    assert list(tmp_path.iterdir()) == []


def test_token_file_detects_foreign_and_truncated_files(tmp_path):
    foreign = tmp_path / "foreign.bin"
    foreign.write_bytes(np.arange(100, dtype=np.uint16).tobytes())
    with pytest.raises(TokenFileError, match="not a tritonlm token file"):
        open_tokens(foreign)
    good = write_tokens(tmp_path / "good.bin", np.arange(50), 50)
    good.write_bytes(good.read_bytes()[:-3])
    with pytest.raises(TokenFileError, match="truncated"):
        open_tokens(good)
    with pytest.raises(TokenFileError, match="does not exist"):
        open_tokens(tmp_path / "missing.bin")


def test_shared_corpus_prefix_cuts_at_a_line(tmp_path, monkeypatch):
    shared = tmp_path / "shared"
    (shared / "data").mkdir(parents=True)
    import lzma

    text = "".join(f"línea número {i}\n" for i in range(5000))
    with lzma.open(shared / "data" / "toy.txt.xz", "wt", encoding="utf-8") as f:
        f.write(text)
    monkeypatch.setenv("TRITONLM_SHARED", str(shared))
    monkeypatch.setenv("TRITONLM_CACHE", str(tmp_path / "cache"))
    full = shared_corpus("toy")
    assert full.read_text(encoding="utf-8") == text
    prefix = shared_corpus("toy", max_bytes=1000).read_bytes()
    assert len(prefix) <= 1000 and prefix.endswith(b"\n") and text.encode().startswith(prefix)
    with pytest.raises(SharedDataMissing):
        shared_corpus("absent")


def test_shared_corpora_joined_in_order(tmp_path, monkeypatch):
    shared = tmp_path / "shared"
    (shared / "data").mkdir(parents=True)
    import lzma

    first = "".join(f"book {i}: naïve café\n" for i in range(3000)) + "<|endoftext|>"  # no final newline
    second = "".join(f"review {i}\n" for i in range(2000))
    with lzma.open(shared / "data" / "books.txt.xz", "wt", encoding="utf-8") as f:
        f.write(first)
    (shared / "data" / "reviews.txt").write_text(second, encoding="utf-8")
    monkeypatch.setenv("TRITONLM_SHARED", str(shared))
    monkeypatch.setenv("TRITONLM_CACHE", str(tmp_path / "cache"))
    joined = shared_corpus("books+reviews").read_text(encoding="utf-8")
    assert joined == first + "\n" + second
    cut = len(first.encode()) + 500
    prefix = shared_corpus("books+reviews", max_bytes=cut).read_bytes()
    assert cut - 20 < len(prefix) <= cut and prefix.endswith(b"\n")
    assert joined.encode().startswith(prefix)
    with pytest.raises(SharedDataMissing, match="absent"):
        shared_corpus("books+absent")


def test_backend_resolution():
    assert resolve_backend("auto", "cpu") == "torch"
    assert resolve_backend("torch", "cpu") == "torch"
    with pytest.raises(ValueError, match="unknown kernel backend"):
        resolve_backend("cuda", "cpu")
    if not torch.cuda.is_available():
        # conftest enables the interpreter, so an explicit request runs the kernels interpreted.
        assert resolve_backend("triton", "cpu") == "triton"


def test_backend_explains_why_triton_cannot_run(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    with pytest.raises(RuntimeError, match="need a CUDA GPU"):
        resolve_backend("triton", "cpu")


def test_run_metadata_names_code_versions_and_device():
    import re
    import subprocess

    from tritonlm.util import runinfo

    meta = run_metadata()
    assert torch.__version__.startswith(meta["versions"]["torch"].split("+")[0])
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=runinfo.REPO_ROOT, capture_output=True, text=True)
    if head.returncode == 0:  # a checkout: the commit itself, marked when the tree has changes
        assert re.fullmatch(r"[0-9a-f]{40}(\+dirty)?", meta["git_sha"]) and meta["git_sha"][:40] == head.stdout.strip()
    assert meta["device"] == runinfo.device_description()


def test_git_sha_is_dirty_for_changed_code_but_not_for_rewritten_results(tmp_path, monkeypatch):
    import subprocess

    from tritonlm.util import runinfo

    def git(*args):
        subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=tmp_path, check=True,
                       capture_output=True)

    (tmp_path / "docs" / "results").mkdir(parents=True)
    (tmp_path / "code.py").write_text("x = 1\n")
    (tmp_path / "docs" / "results" / "report.json").write_text("{}")
    (tmp_path / "docs" / "results.md").write_text("# results\n")
    git("init", "-q")
    git("add", ".")
    git("commit", "-qm", "start")
    monkeypatch.setattr(runinfo, "REPO_ROOT", tmp_path)
    head = runinfo.git_sha()
    assert len(head) == 40
    (tmp_path / "docs" / "results" / "report.json").write_text('{"loss": 3.1}')  # a run wrote its result
    (tmp_path / "docs" / "results.md").write_text("# results, regenerated\n")
    (tmp_path / "notes.txt").write_text("untracked")
    assert runinfo.git_sha() == head
    (tmp_path / "code.py").write_text("x = 2\n")
    assert runinfo.git_sha() == head + "+dirty"


def test_git_sha_outside_a_checkout_is_unknown(tmp_path, monkeypatch):
    from tritonlm.util import runinfo

    monkeypatch.setattr(runinfo, "REPO_ROOT", tmp_path)
    assert runinfo.git_sha() == "unknown"
