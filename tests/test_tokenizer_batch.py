"""The numpy encoding paths (batch BPE, vectorised pre-tokens) must equal the plain ones."""

from __future__ import annotations

import random

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tritonlm.tokenizer.tokenizer as tokenizer_module
from tritonlm.tokenizer import Tokenizer, train_bpe
from tritonlm.tokenizer import vector_pretokenize as vp
from tritonlm.tokenizer.bpe_batch import PairTable, encode_words
from tritonlm.tokenizer.pretokenize import GPT2_REGEX

tiktoken = pytest.importorskip("tiktoken")
EOT = "<|endoftext|>"
HYPOTHESIS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
PIECES = [" ", "  ", "\n", "\n\n", " \n ", "\t", "\u3000", "123", " 56", "😀", "'s", "'ll", "hello", " world",
          "Ünïcödé", "日本語", "\u0301", ".", "!!", "aaaa", "    ", "----", EOT, "<|", "endoftext"]
awkward_text = st.lists(st.one_of(st.sampled_from(PIECES), st.text(max_size=8)), max_size=40).map("".join)


@pytest.fixture(scope="module")
def small_bpe(tmp_path_factory):
    """A 400-token BPE trained on repetitive text, so long runs ("aaaa") have merges."""
    rng = random.Random(0)
    words = ["aaaa", "abab", "banana", "aa", "the", "then", "  ", "!!!!", "été", "日本"]
    path = tmp_path_factory.mktemp("bpe") / "train.txt"
    path.write_text(" ".join(rng.choice(words) for _ in range(3000)), encoding="utf-8")
    return Tokenizer(*train_bpe(path, 300, [EOT], num_workers=1), special_tokens=[EOT])


def batch_ids(tok: Tokenizer, words: list[bytes]) -> list[tuple[int, ...]]:
    table = PairTable(tok._ranks, tok.vocab_size)
    flat, counts = encode_words(words, np.array(tok._byte_ids, dtype=np.int64), table)
    assert counts.sum() == flat.size and counts.size == len(words)
    ends = np.cumsum(counts).tolist()
    return [tuple(flat[a:b].tolist()) for a, b in zip([0] + ends[:-1], ends)]


def test_batch_bpe_equals_one_by_one_on_awkward_words(small_bpe):
    rng = random.Random(1)
    alphabet = ["a", "b", "n", "t", "h", "e", " ", "!", "é", "日"]
    texts = ["", "a", "aa", "aaa", "aaaaa", "aaaaaaaaaaa", "abababab", " banana", "!!!!!!!"]
    texts += ["".join(rng.choice(alphabet) for _ in range(rng.randint(1, 20))) for _ in range(2000)]
    expected = [tuple(small_bpe._bpe(t)) if t else () for t in texts]
    assert batch_ids(small_bpe, [t.encode("utf-8") for t in texts]) == expected


def test_batch_bpe_equals_one_by_one_on_gpt2_pretokens(gpt2, fixture_file):
    text = "".join(fixture_file(name).read_text(encoding="utf-8") for name in ["corpus.en", "german.txt"])
    pieces = sorted(set(GPT2_REGEX.findall(text)))
    assert batch_ids(gpt2, [p.encode("utf-8") for p in pieces]) == [gpt2._bpe(p) for p in pieces]


@pytest.fixture
def numpy_paths(monkeypatch):
    """Every text through the vectorised path, every new pre-token through the batch BPE."""
    monkeypatch.setattr(tokenizer_module, "VECTOR_MIN_CHARS", 0)
    monkeypatch.setattr(tokenizer_module, "BATCH_BPE_MIN", 1)


@HYPOTHESIS
@given(text=awkward_text)
def test_numpy_paths_equal_tiktoken_on_random_strings(gpt2, tiktoken_gpt2, numpy_paths, text):
    gpt2.clear_cache()
    assert gpt2.encode(text) == tiktoken_gpt2.encode(text, allowed_special="all")
    assert gpt2.encode(text) == tiktoken_gpt2.encode(text, allowed_special="all")  # warm cache


def test_numpy_paths_across_many_blocks(gpt2, tiktoken_gpt2, fixture_file, monkeypatch):
    monkeypatch.setattr(vp, "BLOCK_CHARS", 257)
    text = (fixture_file("tinystories_sample.txt").read_text(encoding="utf-8") + EOT) * 2
    ids = gpt2.encode_array(text)
    assert ids.dtype == np.int64 and len(text) > 20 * 257
    assert ids.tolist() == tiktoken_gpt2.encode(text, allowed_special="all")


def test_hash_collision_falls_back_to_the_regex_path(gpt2, tiktoken_gpt2, numpy_paths, monkeypatch):
    gpt2.clear_cache()
    monkeypatch.setattr(vp, "mixed_hashes", lambda keys, high: np.zeros(keys.size, dtype=np.uint64))  # one group
    text = f"one two three{EOT} two one, four four"
    assert gpt2.encode(text) == tiktoken_gpt2.encode(text, allowed_special="all")


@pytest.mark.parametrize("vector", [False, True], ids=["regex path", "numpy path"])
def test_caches_stay_bounded(gpt2, tiktoken_gpt2, monkeypatch, vector):
    """Over the limit a cache starts afresh: it holds at most the pre-tokens of the last text."""
    monkeypatch.setattr(tokenizer_module, "VECTOR_MIN_CHARS", 0 if vector else 10**9)
    monkeypatch.setattr(tokenizer_module, "CACHE_LIMIT", 50)
    monkeypatch.setattr(gpt2._ids, "limit", 50)
    rng = random.Random(0)
    texts = [" ".join("".join(rng.choice("abcdefgh") for _ in range(rng.choice([4, 12]))) for _ in range(300))
             for _ in range(3)]
    gpt2.clear_cache()
    for text in texts:
        assert gpt2.encode(text) == tiktoken_gpt2.encode(text)
        distinct = set(GPT2_REGEX.findall(text))
        if vector:
            assert len(gpt2._ids) == len(distinct)
        else:
            assert set(gpt2._cache) == distinct
    gpt2.clear_cache()
