"""The built-in corpus: children's stories from a probabilistic grammar whose every story's exact
probability is known, so the job can report the loss of the best possible model.

``python -m train.leaderboard`` must run on a fresh machine with no network and no ``../shared``,
and its loss must mean something. So the project writes its own corpus: stories in the style of
TinyStories, assembled from a cast (names built from syllables, with the pronouns their endings
fix; animals; traits), places, towns, objects, colours, plot lines (a lost toy, a storm, a race,
a birthday, a fear of the dark, counting, ...), dialogue with varied speech verbs, feelings and
endings. The same seed always gives the same text.

The stories are written by a grammar (``grammar.Writer``): every random choice either writes
what it picks or opens a path the following text shows, and no two sequences of choices write
the same story (the tests parse stories back into their one derivation). So a story's
log-probability is the sum of its choices' log-probabilities, known as it is written, and the
corpus's **entropy rate** (total -log p over the tokens of a text, ``corpus_floor``) is the
validation loss of the best possible model: the floor the trained LM is measured against. Its
unigram entropy (``unigram_entropy``) is the loss of a model that ignores context.

``python -m tritonlm.corpora.stories --out stories.txt --size 5MB --seed 0`` (or its old name,
``python -m train.leaderboard.stories``) writes a corpus file (and its log-probability beside
it); documents are separated by a line ``<|endoftext|>``, like the shared corpora.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import re
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from tritonlm.tokenizer import END_OF_TEXT
from tritonlm.util.atomic import atomic_path, write_json_atomic
from tritonlm.util.cli import cli_main

from .grammar import write_document
from .story_grammar import write_story
from .story_words import PLOTS  # noqa: F401 - the plot lines, for callers and tests

GENERATOR_VERSION = 3  # bump when the text for a seed changes (cached corpora are keyed by it)
DOC_SEPARATOR = f"\n{END_OF_TEXT}\n"


def generate_story(rng: random.Random) -> str:
    """One story, drawn from ``rng`` (a ``random.Random``)."""
    return write_document(write_story, rng)[0]


def iter_stories(seed: int = 0) -> Iterator[tuple[str, float]]:
    """An endless, deterministic stream of (story, log-probability in nats) for ``seed``."""
    rng = random.Random(seed)
    while True:
        yield write_document(write_story, rng)


def corpus_documents(num_bytes: int, seed: int = 0) -> Iterator[tuple[str, float]]:
    """(document text with its separator, log-probability) for ``seed`` until the documents hold
    at least ``num_bytes`` UTF-8 bytes: a stream, so a corpus of any size is written in bounded
    memory. Documents end with a line ``<|endoftext|>`` (as in the shared corpora); the
    separators are certain (a story ends where its grammar ends), so they add nothing to -log p."""
    if num_bytes <= 0:
        raise ValueError(f"num_bytes must be positive, got {num_bytes}")
    size = 0
    for story, logp in iter_stories(seed):
        document = story + DOC_SEPARATOR
        yield document, logp
        size += len(document.encode("utf-8"))
        if size >= num_bytes:
            return


def generate_corpus_with_logprob(num_bytes: int, seed: int = 0) -> tuple[str, float, int]:
    """The text of ``corpus_documents``, its negative log-probability (nats) and its number of
    documents."""
    documents = list(corpus_documents(num_bytes, seed))
    return "".join(d for d, _ in documents), -sum(lp for _, lp in documents), len(documents)


def generate_corpus(num_bytes: int, seed: int = 0) -> str:
    """The text of ``generate_corpus_with_logprob``."""
    return generate_corpus_with_logprob(num_bytes, seed)[0]


def logprob_path(corpus: str | os.PathLike) -> Path:
    """Where ``write_corpus`` records a corpus's log-probability: ``NAME.logprob.json`` beside it."""
    corpus = Path(corpus)
    return corpus.with_name(corpus.name + ".logprob.json")


def write_corpus(path: str | os.PathLike, num_bytes: int, seed: int = 0) -> Path:
    """Write ``generate_corpus(num_bytes, seed)`` to ``path`` atomically, and its exact negative
    log-probability beside it (``logprob_path``); returns the path of the text."""
    nll, documents, size = 0.0, 0, 0
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as out:
        for document, logp in corpus_documents(num_bytes, seed):
            out.write(document)
            nll, documents, size = nll - logp, documents + 1, size + len(document.encode("utf-8"))
    write_json_atomic(logprob_path(path), {"nll_nats": nll, "documents": documents, "seed": seed, "bytes": size,
                                           "generator_version": GENERATOR_VERSION})
    return Path(path)


def corpus_floor(corpus: str | os.PathLike, num_tokens: int) -> float | None:
    """The entropy rate of a generated corpus in nats per token of its token file: the total
    -log p of its stories over its ``num_tokens`` tokens, the validation loss of the best possible
    model. None for a text without a recorded log-probability."""
    path = logprob_path(corpus)
    if not path.is_file() or num_tokens <= 0:
        return None
    return json.loads(path.read_text())["nll_nats"] / num_tokens


def unigram_entropy(tokens: Iterable[int] | np.ndarray) -> float:
    """Entropy in nats per token of the empirical unigram distribution of a token stream.

    This is the cross-entropy of the best context-free predictor of the stream, in the same
    unit (nats) as the LM's validation loss: a model below it has learnt to use context.
    """
    ids = np.asarray(tokens if isinstance(tokens, np.ndarray) else list(tokens)).ravel()
    if ids.size == 0:
        raise ValueError("unigram_entropy needs at least one token")
    counts = np.bincount(ids.astype(np.int64))
    p = counts[counts > 0] / ids.size
    return float(-(p * np.log(p)).sum())


@dataclass(frozen=True)
class CorpusStats:
    documents: int
    bytes: int
    words: int
    distinct_words: int
    distinct_sentences: int
    word_entropy_nats: float


def corpus_stats(text: str) -> CorpusStats:
    """Counts that show how varied a corpus is (documents, vocabulary, distinct sentences)."""
    docs = [d for d in text.split(END_OF_TEXT) if d.strip()]
    words = re.findall(r"[A-Za-z']+", text)
    counts = Counter(w.lower() for w in words)
    total = sum(counts.values())
    entropy = -sum(c / total * math.log(c / total) for c in counts.values()) if total else 0.0
    sentences = {s.strip() for d in docs for s in re.split(r"(?<=[.!?\"])\s+", d) if s.strip()}
    return CorpusStats(len(docs), len(text.encode("utf-8")), total, len(counts), len(sentences), entropy)


def parse_size(text: str) -> int:
    """``"5MB"``, ``"300kB"``, ``"1.5M"`` or ``"20000"`` -> bytes (powers of 1000)."""
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([kKmMgG]?)[bB]?\s*", text)
    if not match:
        raise argparse.ArgumentTypeError(f"cannot read size {text!r}; use e.g. 5MB, 300kB or 20000")
    scale = {"": 1, "k": 1e3, "m": 1e6, "g": 1e9}[match.group(2).lower()]
    return int(float(match.group(1)) * scale)


@cli_main
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tritonlm.corpora.stories", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="file to write")
    parser.add_argument("--size", type=parse_size, default=parse_size("5MB"), help="bytes, e.g. 5MB")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--show", type=int, default=1, help="print this many stories")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    path = write_corpus(args.out, args.size, args.seed)
    seconds = time.perf_counter() - start
    text = path.read_text(encoding="utf-8")
    stats = corpus_stats(text)
    for story in text.split(DOC_SEPARATOR)[: args.show]:
        print(story, end="\n\n")
    print(f"wrote {path}: {stats.bytes / 1e6:.2f} MB, {stats.documents} stories in {seconds:.1f} s "
          f"({stats.bytes / 1e6 / seconds:.1f} MB/s); {stats.distinct_words} distinct words, "
          f"{stats.distinct_sentences} distinct sentences, word entropy {stats.word_entropy_nats:.2f} nats")
    return 0


if __name__ == "__main__":
    sys.exit(main())
