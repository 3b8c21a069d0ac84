"""Test setup shared by every test module.

Triton kernels run under Triton's CPU interpreter when no GPU is present: TRITON_INTERPRET must
be set before triton is first imported, so it is set here, at collection time. On a machine with
CUDA the same tests run the compiled kernels on the GPU.
"""

from __future__ import annotations

import os

import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

import pytest  # noqa: E402

from tritonlm.corpora.shared import SharedDataMissing, fixture_path, shared_corpus  # noqa: E402

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


@pytest.fixture
def device() -> str:
    """The device the tests run on: the GPU when present, else the CPU (kernels interpreted)."""
    return DEVICE


@pytest.fixture
def fixture_file():
    """Path of a file in ``shared/fixtures``; the test is skipped when the shared folder is absent."""

    def get(name: str):
        try:
            return fixture_path(name)
        except SharedDataMissing as e:
            pytest.skip(str(e))

    return get


@pytest.fixture
def corpus_file():
    """Decompressed (cached) shared corpus, optionally only its first bytes; skips when absent."""

    def get(name: str, max_bytes: int | None = None):
        try:
            return shared_corpus(name, max_bytes)
        except SharedDataMissing as e:
            pytest.skip(str(e))

    return get


@pytest.fixture
def single_thread():
    """One torch thread for the test: on the 2 shared CI cores it is faster and steadier."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


GPT2_EOT = "<|endoftext|>"


@pytest.fixture(scope="module")
def gpt2_files():
    """The GPT-2 vocab.json and merges.txt fixtures (skipped without the shared folder)."""
    try:
        return fixture_path("gpt2_vocab.json"), fixture_path("gpt2_merges.txt")
    except SharedDataMissing as e:
        pytest.skip(str(e))


@pytest.fixture(scope="module")
def gpt2(gpt2_files):
    """Our tokenizer on the GPT-2 files, with <|endoftext|> as a special token."""
    from tritonlm.tokenizer import Tokenizer

    return Tokenizer.from_files(*gpt2_files, special_tokens=[GPT2_EOT])


@pytest.fixture(scope="module")
def tiktoken_gpt2(gpt2_files):
    """tiktoken's Encoding built offline from the same files: ranks = vocab ids."""
    tiktoken = pytest.importorskip("tiktoken")
    from tritonlm.tokenizer.pretokenize import GPT2_PATTERN
    from tritonlm.tokenizer.vocab_files import load_vocab

    ranks = {token: i for i, token in load_vocab(gpt2_files[0]).items() if token != GPT2_EOT.encode()}
    return tiktoken.Encoding("gpt2-fixture", pat_str=GPT2_PATTERN, mergeable_ranks=ranks,
                             special_tokens={GPT2_EOT: 50256})


REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_cli(module: str, *args: str, cwd=None, env: dict | None = None, timeout: float = 300):
    """Run ``python -m module args...`` as a user would (a fresh process, no interpreter set)."""
    import subprocess
    import sys

    full_env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    full_env["PYTHONPATH"] = REPO
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-m", module, *map(str, args)], cwd=cwd or REPO, env=full_env,
                          capture_output=True, text=True, timeout=timeout)


def assert_user_error(proc, pattern: str, code: int = 2) -> None:
    """Exit ``code``, and stderr ends with one ``error:`` line matching ``pattern``; no traceback."""
    import re

    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == code, f"exit {proc.returncode}\n{proc.stdout[-1500:]}\n{proc.stderr[-3000:]}"
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert lines and lines[-1].startswith("error: ") and re.search(pattern, lines[-1]), proc.stderr[-2000:]


def snapshot(folder) -> dict:
    """Every file under ``folder`` with its bytes (to check that a failed command changed nothing)."""
    from pathlib import Path

    root = Path(folder)
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()} if root.exists() else {}


@pytest.fixture(scope="session")
def bpe_corpus(tmp_path_factory):
    """A BPE tokenizer (vocab 300, folder ``tok``) trained on generated stories (``train.txt``,
    ``valid.txt``), and both splits encoded with it (``train.bin``, ``valid.bin``)."""
    from tritonlm.corpora.stories import generate_corpus
    from tritonlm.tokenizer import Tokenizer, train_bpe
    from tritonlm.tokenizer.corpus_encoder import encode_file

    folder = tmp_path_factory.mktemp("bpe_corpus")
    (folder / "train.txt").write_text(generate_corpus(60_000, 0))
    (folder / "valid.txt").write_text(generate_corpus(8_000, 1))
    vocab, merges = train_bpe(str(folder / "train.txt"), 300, ["<|endoftext|>"])
    Tokenizer(vocab, merges, ["<|endoftext|>"]).save(folder / "tok")
    for split in ("train", "valid"):
        encode_file(folder / f"{split}.txt", folder / "tok", folder / f"{split}.bin", num_workers=1)
    return folder
