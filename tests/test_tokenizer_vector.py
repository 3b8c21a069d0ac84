"""The numpy pre-tokeniser must split and count exactly like the GPT-2 regex it replaces."""

from __future__ import annotations

import random
from collections import Counter

import numpy as np
import pytest
import regex
from hypothesis import given, settings
from hypothesis import strategies as st

from tritonlm.tokenizer import vector_pretokenize as vp
from tritonlm.tokenizer.pretokenize import GPT2_REGEX, max_special_length, special_regex, split_on_specials

SPECIALS = ["<|endoftext|>", "<|a|>"]
# Every branch of the GPT-2 pattern: contractions (also mid-word, upper case, after spaces and
# punctuation), letters/numbers/other with and without a leading space, every kind of
# whitespace run, combining marks, emoji, and characters str.isspace and \s disagree on.
PIECES = [" ", "  ", "   ", "\n", "\n\n", " \n ", "\t", "\r\n", "\x0b", "\x1c", "\x85", "\u00a0", "\u2009",
          "\u3000", "'", "''", "'s", "'t", "'ll", "'ve", "'re", "'m", "'d", "'S", "'l", "'v", "'r", "s", "ll",
          "ve", "re", "don", "x", "Ünï", "日本", "\u0301", "123", "²", "½", "Ⅻ", "😀", ".", "?!", "-", "_",
          "<|", "|>", "<|endoftext|>", "<|a|>"]
text_strategy = st.lists(st.one_of(st.sampled_from(PIECES), st.text(max_size=6)), max_size=40).map("".join)


def vector_split(text: str) -> list[str]:
    starts = vp.pretoken_starts(vp.codepoints(text)).tolist()
    return [text[a:b] for a, b in zip(starts, starts[1:] + [len(text)])]


def regex_counts(text: str, specials) -> Counter:
    counts = Counter()
    for part in split_on_specials(text, specials):
        counts.update(GPT2_REGEX.findall(part))
    return counts


@settings(max_examples=400, deadline=None)
@given(text=st.one_of(st.text(), text_strategy))
def test_split_equals_gpt2_regex_on_random_text(text):
    assert vector_split(text) == GPT2_REGEX.findall(text)


def test_split_equals_gpt2_regex_on_dense_random_text():
    rng = random.Random(0)
    alphabet = [" ", " ", "\n", "\t", "a", "é", "1", "'", "s", "l", "v", "e", "r", "d", "m", "t", ".", "\u3000"]
    for _ in range(3000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 24)))
        assert vector_split(text) == GPT2_REGEX.findall(text), text


def test_split_equals_gpt2_regex_on_fixture_texts(fixture_file):
    for name in ["address.txt", "german.txt", "tinystories_sample.txt", "corpus.en"]:
        text = fixture_file(name).read_text(encoding="utf-8")
        assert vector_split(text) == GPT2_REGEX.findall(text), name


def test_char_classes_agree_with_the_regex_on_every_code_point():
    table = vp.char_classes()
    every_char = np.arange(vp.SEPARATOR_BASE, dtype=np.uint32).tobytes().decode("utf-32-le", "surrogatepass")
    classes = table[: vp.SEPARATOR_BASE]
    white = (classes == vp.WHITE) | (classes == vp.SPACE)
    for got, pattern in [(classes == vp.LETTER, r"\p{L}"), (classes == vp.NUMBER, r"\p{N}"),
                         (classes == vp.SPACE, r" "), (white, r"\s")]:
        expected = np.zeros(vp.SEPARATOR_BASE, dtype=bool)
        expected[[m.start() for m in regex.finditer(pattern, every_char)]] = True
        np.testing.assert_array_equal(got, expected)


@pytest.fixture
def small_blocks(monkeypatch):
    """Blocks of a few characters, so every text crosses many block cuts."""
    monkeypatch.setattr(vp, "BLOCK_CHARS", 7)


@settings(max_examples=300, deadline=None)
@given(text=text_strategy)
def test_counts_equal_regex_counts_with_specials_and_block_cuts(text):
    specials = special_regex(SPECIALS)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(vp, "BLOCK_CHARS", 7)
        assert vp.count_pretokens(text, specials, max_special_length(SPECIALS)) == regex_counts(text, specials)
    assert vp.count_pretokens(text, specials, max_special_length(SPECIALS)) == regex_counts(text, specials)
    assert vp.count_pretokens(text) == Counter(GPT2_REGEX.findall(text))


def test_blocks_are_cut_at_boundaries_and_cover_the_text(small_blocks):
    text = "The cat's hat.\n\n  It sat<|a|>on   the mat 12345 times!" * 3
    specials = special_regex(SPECIALS)
    blocks = list(vp.boundary_blocks(text, specials, max_special_length(SPECIALS)))
    assert "".join(blocks) == text and len(blocks) > 5
    assert [p for b in blocks for p in GPT2_REGEX.findall(b)] == GPT2_REGEX.findall(text)


@pytest.mark.parametrize("text", ["ab!!", "abcdefghijkl!!!!!!!!!!!!", "abcdefghijklmnopq!!!!!!!!!!!!!!!!!", "日本!!",
                                  "ab\x00!", "one two, three"],
                         ids=["short key", "two-word key", "long", "wide", "nul", "lengths"])
def test_hash_collisions_are_caught_and_fall_back_to_the_regex(monkeypatch, text):
    """Whatever shares a hash, the check finds different pre-tokens: by key (short ones), by
    character (long, wide, or with U+0000) or by length."""
    monkeypatch.setattr(vp, "mixed_hashes", lambda keys, high: np.zeros(keys.size, dtype=np.uint64))  # one group
    with pytest.raises(vp.HashCollision):
        vp.distinct_pretokens(vp.codepoints(text))
    assert vp.count_pretokens(text) == Counter(GPT2_REGEX.findall(text))


def polynomial_reference(token: str) -> int:
    return sum((ord(c) + 1) * int(vp._HASH_BASE) ** j for j, c in enumerate(token)) % 2**64


@settings(max_examples=300, deadline=None)
@given(text=st.one_of(st.text(), text_strategy, st.text(alphabet=st.characters(max_codepoint=0x1FF)),
                      st.lists(st.text(alphabet="ab é\n", min_size=7, max_size=19), max_size=8).map(" ".join)))
def test_keys_are_the_bytes_of_short_pretokens_and_a_hash_of_the_others(text):
    cp = vp.codepoints(text)
    tokens = vp.split_pretokens(cp)
    for start, length, key, high, exact in zip(*(field.tolist() for field in tokens)):
        token = text[start : start + length]
        assert exact == (length <= vp.EXACT_CHARS and all(0 < ord(c) < 256 for c in token))
        # an exact key is the token's Latin-1 bytes: different tokens, different keys
        expected = int.from_bytes(token.encode("latin-1"), "little") if exact else polynomial_reference(token)
        assert key + (high << 64) == expected


def test_distinct_pretokens_group_every_occurrence():
    text = "a b a  b\n\na's a"
    cp = vp.codepoints(text)
    found = vp.distinct_pretokens(cp)
    distinct = [text[a:b] for a, b in zip(found.starts.tolist(), found.ends.tolist())]
    assert [distinct[i] for i in found.inverse] == GPT2_REGEX.findall(text)
    assert dict(zip(distinct, found.counts.tolist())) == Counter(GPT2_REGEX.findall(text))


def test_marked_codepoints_tag_each_special_token():
    specials = special_regex(SPECIALS)
    cp = vp.marked_codepoints("x<|a|>y<|endoftext|>", specials, {t: i for i, t in enumerate(SPECIALS)})
    assert cp[0] == ord("x") and cp[1] == vp.SEPARATOR_BASE + 2 and cp[6] == ord("y")
    assert cp[7] == vp.SEPARATOR_BASE + 1 and set(cp[2:6].tolist()) == {vp.SEPARATOR_BASE}
