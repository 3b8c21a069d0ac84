"""A probabilistic grammar written as code: documents whose exact probability is known.

A document is written by a function ``write(w: Writer)`` that emits fixed text (``w.text``) and
makes random choices: ``w.choose(options)`` emits the option it picks, ``w.branch(n)`` picks a
path that emits nothing itself (a plot, whether an optional sentence comes). Every choice adds
its log-probability to ``w.logp``, so a document's log-probability is known the moment it is
written: ``log p(text) = sum of the log-probabilities of its choices``, provided the grammar is
*unambiguous* (no other sequence of choices writes the same text).

``derivations(write, text)`` finds every sequence of choices that writes ``text``, by replaying
``write`` and following, at each choice, only the options the text continues with: one
derivation for every text is what makes ``w.logp`` exact, and the tests check it on the story
grammar's texts. ``enumerate_documents(write)`` lists every document of a grammar small enough to
enumerate, with its probability, so that exact entropies can be computed.
"""

from __future__ import annotations

import math
import random
from typing import Callable, Iterator, Sequence


class Writer:
    """Builds one document from fixed text and choices, summing the choices' log-probability."""

    def __init__(self, chooser: "Chooser"):
        self.chooser = chooser
        self.parts: list[str] = []
        self.length = 0  # characters written so far
        self.logp = 0.0

    def text(self, piece: str) -> None:
        self.chooser.check(self, piece)
        self.parts.append(piece)
        self.length += len(piece)

    def choose(self, options: Sequence[str], weights: Sequence[float] | None = None,
               exclude: int | None = None) -> int:
        """Pick one of ``options`` (uniformly, or by ``weights``; never the one at ``exclude``, a
        uniform choice among the others), write it, return its index."""
        if exclude is not None:
            if weights is not None:
                raise ValueError("exclude= is for uniform choices")
            index = self.chooser.pick(self, options, None, exclude=exclude)
            self.logp -= math.log(len(options) - 1)
        else:
            index = self.chooser.pick(self, options, weights)
            self.logp += _log_probability(index, len(options), weights)
        self.text(options[index])
        return index

    def branch(self, n: int, weights: Sequence[float] | None = None) -> int:
        """Pick one of ``n`` paths (uniformly, or by ``weights``) without writing anything."""
        index = self.chooser.pick(self, None, weights, n)
        self.logp += _log_probability(index, n, weights)
        return index

    def chance(self, p: float) -> bool:
        """True with probability ``p`` (a branch of two paths)."""
        return self.branch(2, (p, 1.0 - p)) == 0

    def document(self) -> str:
        return "".join(self.parts)


def _log_probability(index: int, n: int, weights: Sequence[float] | None) -> float:
    if weights is None:
        return -math.log(n)
    return math.log(weights[index] / sum(weights))


class Chooser:
    """Makes the choices of a ``Writer``; ``check`` sees every piece of text it writes."""

    def pick(self, w: Writer, options: Sequence[str] | None, weights: Sequence[float] | None, n: int = 0,
             exclude: int | None = None) -> int:
        raise NotImplementedError

    def check(self, w: Writer, piece: str) -> None:
        pass


class SamplingChooser(Chooser):
    """Random choices from a seeded ``random.Random``: the generator."""

    def __init__(self, rng: random.Random):
        self.rng = rng

    def pick(self, w, options, weights, n=0, exclude=None):
        count = len(options) if options is not None else n
        if exclude is not None:
            index = self.rng.randrange(count - 1)
            return index + (index >= exclude)
        if weights is None:
            return self.rng.randrange(count)
        return self.rng.choices(range(count), weights)[0]


def write_document(write: Callable[[Writer], None], rng: random.Random) -> tuple[str, float]:
    """One random document of the grammar ``write``, and its log-probability (nats)."""
    w = Writer(SamplingChooser(rng))
    write(w)
    return w.document(), w.logp


# ------------------------------------------------------------------------ parsing, enumeration
class _Mismatch(Exception):
    """The replayed choices write text that the target does not have."""


class _Undecided(Exception):
    """The replay reached a choice it was not told how to make."""

    def __init__(self, candidates: list[int]):
        self.candidates = candidates


class _ReplayChooser(Chooser):
    """Replays ``forced`` choices; at the next choice reports the options ``text`` allows."""

    def __init__(self, forced: list[int], text: str | None):
        self.forced, self.text, self.made = forced, text, 0

    def pick(self, w, options, weights, n=0, exclude=None):
        if self.made < len(self.forced):
            self.made += 1
            return self.forced[self.made - 1]
        count = len(options) if options is not None else n
        possible = [i for i in range(count) if (weights is None or weights[i] > 0) and i != exclude]
        if options is not None and self.text is not None:  # only the options the text goes on with
            possible = [i for i in possible if self.text.startswith(options[i], w.length)]
        raise _Undecided(possible)

    def check(self, w, piece):
        if self.text is not None and not self.text.startswith(piece, w.length):
            raise _Mismatch


def _search(write: Callable[[Writer], None], text: str | None, limit: int) -> Iterator[tuple[list[int], Writer]]:
    """Every complete sequence of choices (writing ``text``, when given), depth first."""
    stack: list[list[int]] = [[]]
    found = 0
    while stack:
        forced = stack.pop()
        w = Writer(_ReplayChooser(forced, text))
        try:
            write(w)
        except _Mismatch:
            continue
        except _Undecided as undecided:
            stack.extend(forced + [i] for i in reversed(undecided.candidates))
            continue
        if text is None or w.length == len(text):
            found += 1
            if found > limit:
                raise ValueError(f"more than {limit} derivations: the grammar is too large to enumerate")
            yield forced, w


def derivations(write: Callable[[Writer], None], text: str, limit: int = 1000) -> list[list[int]]:
    """Every sequence of choices with which ``write`` writes exactly ``text``: one for every text
    of an unambiguous grammar, none for a text it cannot write."""
    return [forced for forced, _ in _search(write, text, limit)]


def enumerate_documents(write: Callable[[Writer], None], limit: int = 100_000) -> list[tuple[str, float]]:
    """Every (document, probability) of a grammar small enough to enumerate (at most ``limit``
    derivations)."""
    return [(w.document(), math.exp(w.logp)) for _, w in _search(write, None, limit)]
