"""The embedded story corpus: deterministic, as large as asked, varied; every story has exactly one
derivation in its grammar, so its recorded log-probability (and the corpus floor) is exact; and
the unigram entropy."""

from __future__ import annotations

import math
import re
from collections import Counter

import numpy as np
import pytest
import torch

from tritonlm.corpora.stories import (
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
               "birthday": "birthday", "treasure": "treasure map", "count": "counted the"}
    assert set(markers) == set(PLOTS)
    for plot, marker in markers.items():
        assert text.count(marker) > 10, plot


def test_pronouns_agree_with_the_hero():
    for story, _ in _first(iter_stories(seed=3), 200):
        sentences = re.split(r"(?<=[.!?])\s+", story)
        # The sentence after the opening speaks of the hero with one pronoun; never both.
        second = sentences[1] if not sentences[0].startswith(("There once", "It was a")) else sentences[2]
        words = set(re.findall(r"[A-Za-z]+", second))
        assert not ({"He", "his"} & words and {"She", "her"} & words), story


def test_write_corpus_writes_exactly_the_generated_text(tmp_path):
    path = write_corpus(tmp_path / "sub" / "stories.txt", 50_000, seed=4)
    assert path.read_text(encoding="utf-8") == generate_corpus(50_000, seed=4)
    assert sorted(p.name for p in path.parent.iterdir()) == ["stories.txt", "stories.txt.logprob.json"]  # no temp file


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


def test_every_story_has_exactly_one_derivation_and_its_log_probability():
    """Parsing a story back finds one sequence of choices, whose probability is the one recorded:
    so -log p of a corpus (its floor) is exact, not an estimate."""
    import random

    from tritonlm.corpora.grammar import Writer, derivations, write_document
    from tritonlm.corpora.stories import write_story

    rng = random.Random(11)
    for _ in range(150):
        story, logp = write_document(write_story, rng)
        found = derivations(write_story, story)
        assert len(found) == 1, story

        class Replay:
            def __init__(self, choices):
                self.choices = iter(choices)

            def pick(self, w, options, weights, n=0, exclude=None):
                return next(self.choices)

            def check(self, w, piece):
                pass

        w = Writer(Replay(found[0]))
        write_story(w)
        assert w.document() == story and w.logp == pytest.approx(logp, abs=1e-9)


def test_a_text_the_grammar_cannot_write_has_no_derivation():
    from tritonlm.corpora.grammar import derivations
    from tritonlm.corpora.stories import generate_story, write_story

    story = generate_story(__import__("random").Random(3))
    assert derivations(write_story, story.replace(".", "!", 1).replace(" ", "  ", 1)) == []


def _toy_grammar(w):
    """Small enough to enumerate: 2 x 2 x (1 + 3) documents; 'a cat' / 'a cattle' share a prefix."""
    w.choose(["The cat", "The cattle"], (3, 1))
    if w.chance(0.25):
        w.text(" slept")
        w.choose([" well.", " badly.", " a lot."])
    else:
        w.choose([" ran.", " sang."])


def test_the_floor_of_an_enumerable_grammar_equals_its_exact_entropy(tmp_path):
    """The entropy computed by enumeration, and the floor of a sampled corpus: the mean -log p the
    generator records converges to it; and each text's recorded probability is its exact one."""
    import random

    from tritonlm.corpora.grammar import enumerate_documents, write_document

    documents = enumerate_documents(_toy_grammar)
    probabilities = dict(documents)
    assert len(probabilities) == len(documents) == 10 and sum(probabilities.values()) == pytest.approx(1.0)
    exact_entropy = -sum(p * math.log(p) for p in probabilities.values())
    rng = random.Random(0)
    samples = [write_document(_toy_grammar, rng) for _ in range(20_000)]
    for text, logp in samples[:200]:
        assert math.exp(logp) == pytest.approx(probabilities[text], rel=1e-12)
    mean_nll = -sum(logp for _, logp in samples) / len(samples)
    assert mean_nll == pytest.approx(exact_entropy, rel=0.02)


def test_corpus_floor_is_the_recorded_nll_over_the_tokens(tmp_path):
    from tritonlm.corpora.stories import corpus_floor, generate_corpus_with_logprob, logprob_path, write_corpus

    path = write_corpus(tmp_path / "val.txt", 30_000, seed=5)
    text, nll, documents = generate_corpus_with_logprob(30_000, seed=5)
    recorded = __import__("json").loads(logprob_path(path).read_text())
    assert path.read_text() == text and recorded["nll_nats"] == pytest.approx(nll) and recorded["documents"] == documents
    assert corpus_floor(path, 10_000) == pytest.approx(nll / 10_000)
    assert corpus_floor(tmp_path / "other.txt", 10_000) is None
