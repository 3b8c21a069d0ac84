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

from tokenizer.corpora import SharedDataMissing, fixture_path, shared_corpus  # noqa: E402

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
