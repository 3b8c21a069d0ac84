"""The embedded story corpus: deterministic, as large as asked, varied; and the unigram entropy."""

from __future__ import annotations

import math
import re
from collections import Counter

import numpy as np
import pytest
import torch

from train.leaderboard.stories import (
    DOC_SEPARATOR,
    END_OF_TEXT,
    PLOTS,
    corpus_stats,
    generate_corpus,
    iter_stories,
    parse_size,
    unigram_entropy,
    write_corpus,
)


def test_same_seed_same_text_and_different_seeds_differ():
    assert generate_corpus(30_000, seed=7) == generate_corpus(30_000, seed=7)
    assert generate_corpus(30_000, seed=7) != generate_corpus(30_000, seed=8)
    # A longer corpus of the same seed starts with the shorter one (a stream, not a resample).
    assert generate_corpus(60_000, seed=7).startswith(generate_corpus(30_000, seed=7))


@pytest.mark.parametrize("num_bytes", [1, 5_000, 123_457, 2_000_000])
def test_corpus_is_at_least_the_requested_size_and_not_much_more(num_bytes):
    text = generate_corpus(num_bytes, seed=0)
    size = len(text.encode("utf-8"))
    assert num_bytes <= size < num_bytes + 3_000  # at most one story too many
    assert text.endswith(DOC_SEPARATOR)


def test_documents_are_separated_by_an_end_of_text_line_and_well_formed():
    text = generate_corpus(200_000, seed=1)
    docs = text.split(DOC_SEPARATOR)[:-1]
    assert len(docs) > 100
    for doc in docs:
        assert doc.strip() and END_OF_TEXT not in doc and "\n" not in doc
        assert doc.count('"') % 2 == 0, doc  # every quote is closed
        assert doc[0].isupper() and doc[-1] in '.!?"', doc
        assert "{" not in doc and "}" not in doc, doc  # no unfilled template slot
        assert not re.search(r"[a-z,] (He|She|His|Her) ", doc), doc  # pronouns capitalised only where a sentence starts


def test_corpus_is_varied_enough_for_a_meaningful_loss_curve():
    text = generate_corpus(500_000, seed=2)
    stats = corpus_stats(text)
    assert stats.documents > 300
    assert stats.distinct_words > 500
    # Most sentences are not repeated verbatim: many more distinct sentences than stories.
    assert stats.distinct_sentences > 10 * stats.documents
    first_sentences = Counter(doc.split(". ")[0] for doc in text.split(DOC_SEPARATOR)[:-1])
    assert first_sentences.most_common(1)[0][1] < 0.02 * stats.documents
    # Every plot line shows up (each has a sentence of its own).
    markers = {"lost": "could not find", "storm": "Suddenly,", "race": "ran as fast as they could",
               "share": "wanted to play with it too", "dark": "When night came",
               "bake": "wanted to make", "help": "Please help me", "learn": "wanted to learn to",
               "birthday": "birthday", "treasure": "treasure map"}
    assert set(markers) == set(PLOTS)
    for plot, marker in markers.items():
        assert text.count(marker) > 10, plot


def test_pronouns_agree_with_the_hero():
    for story in _first(iter_stories(seed=3), 200):
        sentences = re.split(r"(?<=[.!?])\s+", story)
        # The sentence after the opening speaks of the hero with one pronoun; never both.
        second = sentences[1] if not sentences[0].startswith("There once") else sentences[2]
        words = set(re.findall(r"[A-Za-z]+", second))
        assert not ({"He", "his"} & words and {"She", "her"} & words), story


def test_write_corpus_writes_exactly_the_generated_text(tmp_path):
    path = write_corpus(tmp_path / "sub" / "stories.txt", 50_000, seed=4)
    assert path.read_text(encoding="utf-8") == generate_corpus(50_000, seed=4)
    assert [p.name for p in path.parent.iterdir()] == ["stories.txt"]  # no temp file left


@pytest.mark.parametrize("probs", [[1.0], [0.5, 0.5], [0.7, 0.2, 0.1], np.random.default_rng(0).dirichlet(np.ones(97)).tolist()])
def test_unigram_entropy_matches_torch_categorical(probs):
    counts = np.round(np.asarray(probs) * 10_000).astype(int)
    tokens = np.repeat(np.arange(len(counts)) * 3, counts)  # sparse ids: gaps must not matter
    np.random.default_rng(1).shuffle(tokens)
    empirical = torch.tensor(counts / counts.sum(), dtype=torch.float64)
    expected = torch.distributions.Categorical(probs=empirical).entropy().item()
    assert unigram_entropy(tokens) == pytest.approx(expected, rel=1e-12, abs=1e-12)
    assert unigram_entropy(tokens.astype(np.uint16).tolist()) == pytest.approx(expected, rel=1e-12, abs=1e-12)


def test_unigram_entropy_of_uniform_tokens_is_log_k_and_empty_is_an_error():
    assert unigram_entropy(np.arange(1000) % 10) == pytest.approx(math.log(10))
    with pytest.raises(ValueError, match="at least one token"):
        unigram_entropy([])


@pytest.mark.parametrize("text, expected", [("5MB", 5_000_000), ("300kB", 300_000), ("1.5M", 1_500_000), ("20000", 20_000)])
def test_parse_size(text, expected):
    assert parse_size(text) == expected


def _first(iterator, n):
    return [next(iterator) for _ in range(n)]
