"""GPT-2 pre-tokenisation vectorised with numpy: boundaries, then distinct pre-tokens by hash.

The ``regex`` module spends ~200 ns per pre-token, which caps training and encoding speed.
Here the same split is computed from the character classes of the whole text at once:

* every code point gets a class: letter (``\\p{L}``), number (``\\p{N}``), space, other
  whitespace (``\\s``), other, or *separator* (a special token: a hard text boundary);
* a pre-token starts where the class changes (a single space joins the run after it), at the
  last character of a whitespace run of two or more that precedes a non-space (GPT-2's
  ``\\s+(?!\\S)``), and around contractions (``'s 't 're 've 'm 'll 'd``) that begin a match;
* pre-tokens are grouped by a polynomial hash, and every group is then checked character by
  character against its first member, so the result is exact: on a collision the caller falls
  back to the regex (``HashCollision``).

The classes come from the ``regex`` module itself, so they match ``GPT2_PATTERN`` exactly; the
tests compare both on random and real text.
"""

from __future__ import annotations

import functools
from collections import Counter
from typing import Iterator, NamedTuple

import numpy as np
import regex

from tokenizer.pretokenize import GPT2_REGEX, last_boundary, split_on_specials

LETTER, NUMBER, OTHER, SPACE, WHITE, SEPARATOR = range(6)
SEPARATOR_BASE = 0x110000  # code points from here on mark special tokens, never text
BLOCK_CHARS = 1 << 20  # callers cut longer texts at boundaries: bounded memory, strong hashes
_HASH_BASE = np.uint64(0x9E3779B97F4A7C15)  # odd, so it is invertible modulo 2**64
_HASH_BASE_INVERSE = np.uint64(pow(int(_HASH_BASE), -1, 2**64))
_MIX = np.uint64(0xBF58476D1CE4E5B9)  # splitmix64's multiplier
_APOSTROPHE = ord("'")
_ONE_LETTER = [ord(c) for c in "sdmt"]
_TWO_LETTERS = [(ord(a), ord(b)) for a, b in ("ll", "ve", "re")]


class HashCollision(Exception):
    """Two different pre-tokens got the same hash (astronomically rare): use the regex path."""


@functools.cache
def char_classes() -> np.ndarray:
    """Class of every code point (index ``SEPARATOR_BASE`` is the separator class)."""
    table = np.full(SEPARATOR_BASE + 1, OTHER, dtype=np.uint8)
    every_char = np.arange(SEPARATOR_BASE, dtype=np.uint32).tobytes().decode("utf-32-le", "surrogatepass")
    for cls, pattern in ((LETTER, r"\p{L}+"), (NUMBER, r"\p{N}+"), (WHITE, r"\s+")):
        for run in regex.finditer(pattern, every_char):
            table[run.start() : run.end()] = cls
    table[ord(" ")] = SPACE
    table[SEPARATOR_BASE] = SEPARATOR
    return table


def codepoints(text: str) -> np.ndarray:
    """``text`` as a uint32 array of code points (one element per character)."""
    return np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)


def pretoken_starts(cp: np.ndarray) -> np.ndarray:
    """Indices where GPT-2 pre-tokens start in the code points ``cp`` (each separator code
    point, ``>= SEPARATOR_BASE``, is a pre-token of its own and a text boundary)."""
    n = cp.size
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    c = char_classes()[np.minimum(cp, SEPARATOR_BASE)]
    white = (c == SPACE) | (c == WHITE)
    solid = c <= OTHER
    prev, cur = c[:-1], c[1:]
    next_solid = np.append(solid[2:], False)  # for i in 1..n-1: is c[i + 1] solid
    start = np.ones(n, dtype=bool)
    start[1:] = (
        (solid[1:] & ((solid[:-1] & (cur != prev)) | (prev == WHITE) | (prev == SEPARATOR)))
        | (white[1:] & ~white[:-1])  # a whitespace run begins
        | (white[1:] & white[:-1] & next_solid)  # last of a 2+ run before a non-space: \s+(?!\S)
        | (cur == SEPARATOR)
    )
    _split_contractions(cp, start)
    return np.flatnonzero(start)


def _split_contractions(cp: np.ndarray, start: np.ndarray) -> None:
    """An apostrophe that begins a match and is followed by s, d, m, t, ll, ve or re makes a
    pre-token of those characters only (GPT-2's first alternative)."""
    n = cp.size
    apostrophes = np.flatnonzero(cp == _APOSTROPHE)
    apostrophes = apostrophes[start[apostrophes] & (apostrophes + 1 < n)]
    if apostrophes.size == 0:
        return
    first = cp[apostrophes + 1]
    second = np.where(apostrophes + 2 < n, cp[np.minimum(apostrophes + 2, n - 1)], 0)
    length = np.isin(first, _ONE_LETTER).astype(np.int64)
    for a, b in _TWO_LETTERS:
        length[(length == 0) & (first == a) & (second == b)] = 2
    found = length > 0
    at, length = apostrophes[found], length[found]
    start[at + 1] = False  # the letters after the apostrophe belong to it
    after = at + 1 + length
    start[after[after < n]] = True  # the rest of the letter run starts afresh


@functools.cache
def _power_tables(n: int) -> tuple[np.ndarray, np.ndarray]:
    """``B**i`` and ``B**-i`` (mod 2**64) for ``i < n``."""
    powers = np.empty((2, n), dtype=np.uint64)
    powers[:, 0] = 1
    np.cumprod(np.full(n - 1, _HASH_BASE, dtype=np.uint64), out=powers[0, 1:])
    np.cumprod(np.full(n - 1, _HASH_BASE_INVERSE, dtype=np.uint64), out=powers[1, 1:])
    return powers[0], powers[1]


def token_hashes(cp: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Polynomial hash (mod 2**64) of each pre-token, independent of its position."""
    n = cp.size
    powers, inverse_powers = _power_tables(1 << max(12, (n - 1).bit_length()))
    prefix = np.zeros(n + 1, dtype=np.uint64)
    np.cumsum((cp.astype(np.uint64) + np.uint64(1)) * powers[:n], out=prefix[1:])
    ends = np.append(starts[1:], n)
    hashes = (prefix[ends] - prefix[starts]) * inverse_powers[starts]
    # Mix (a bijection) so that the high bits, which grouping keeps, depend on every character.
    hashes ^= hashes >> np.uint64(31)
    hashes *= _MIX
    hashes ^= hashes >> np.uint64(29)
    return hashes


def _group_by_hash(hashes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(first, inverse, counts)`` of the groups of equal hashes, like ``np.unique``.

    Sorting plain integers is ~10x faster than an argsort, so each key packs the hash's high
    bits above the pre-token's index: equal hashes end up adjacent, first occurrence first.
    """
    t = hashes.size
    bits = max((t - 1).bit_length(), 1)
    keys = (hashes >> np.uint64(bits)) << np.uint64(bits) | np.arange(t, dtype=np.uint64)
    keys.sort()
    order = (keys & np.uint64((1 << bits) - 1)).astype(np.int64)
    hashed = keys >> np.uint64(bits)
    head = np.empty(t, dtype=bool)
    head[0] = True
    np.not_equal(hashed[1:], hashed[:-1], out=head[1:])
    inverse = np.empty(t, dtype=np.int64)
    inverse[order] = np.cumsum(head) - 1
    heads = np.flatnonzero(head)
    return order[heads], inverse, np.diff(np.append(heads, t))


class DistinctPretokens(NamedTuple):
    starts: np.ndarray  # start of each distinct pre-token's first occurrence
    ends: np.ndarray  # its end
    counts: np.ndarray  # occurrences of each distinct pre-token
    inverse: np.ndarray  # for every pre-token in order, the index of its distinct pre-token


def distinct_pretokens(cp: np.ndarray) -> DistinctPretokens:
    """The distinct pre-tokens of ``cp`` (separators included), exact: raises
    ``HashCollision`` when two different pre-tokens share a hash."""
    n = cp.size
    starts = pretoken_starts(cp)
    if n == 0:
        empty = np.zeros(0, dtype=np.int64)
        return DistinctPretokens(empty, empty, empty, empty)
    ends = np.append(starts[1:], n)
    first, inverse, counts = _group_by_hash(token_hashes(cp, starts))
    _check_groups(cp, starts, ends, first[inverse])
    return DistinctPretokens(starts[first], ends[first], counts, inverse)


def _check_groups(cp: np.ndarray, starts: np.ndarray, ends: np.ndarray, representative: np.ndarray) -> None:
    """Every pre-token must equal, character by character, the first one with its hash."""
    lengths = ends - starts
    if np.any(lengths != lengths[representative]):
        raise HashCollision
    shift = starts[representative] - starts  # per pre-token: where its representative lies
    if np.any(shift):
        # (n,): each character's counterpart in the representative pre-token
        counterpart = np.arange(cp.size) + np.repeat(shift, lengths)
        if np.any(cp != cp[counterpart]):
            raise HashCollision


def text_pretokens(block: str, cp: np.ndarray, found: DistinctPretokens) -> tuple[np.ndarray, list[str]]:
    """The rows of ``found`` that are text, not special-token separators, and their strings."""
    rows = np.flatnonzero(cp[found.starts] < SEPARATOR_BASE)
    spans = map(slice, found.starts[rows].tolist(), found.ends[rows].tolist())
    return rows, list(map(block.__getitem__, spans))


def boundary_blocks(text: str, special_find: regex.Pattern | None, max_special: int) -> Iterator[str]:
    """``text`` in consecutive blocks of about ``BLOCK_CHARS`` characters cut at boundaries
    (see ``tokenizer.pretokenize``), so each block pre-tokenises on its own."""
    start = 0
    while len(text) - start > BLOCK_CHARS:
        want = BLOCK_CHARS
        cut = last_boundary(text[start : start + want], special_find, max_special)
        while not cut and start + want < len(text):
            want *= 2  # no boundary yet (one enormous word): look further
            cut = last_boundary(text[start : start + want], special_find, max_special)
        if not cut:
            break
        yield text[start : start + cut]
        start += cut
    yield text[start:]


def marked_codepoints(text: str, special_find: regex.Pattern | None, special_index: dict[str, int] | None = None):
    """Code points of ``text`` with every special token turned into separators: its first
    character becomes ``SEPARATOR_BASE + 1 + special_index[token]`` (or ``SEPARATOR_BASE``
    when no index is given), the rest ``SEPARATOR_BASE``."""
    cp = codepoints(text)
    matches = [] if special_find is None else list(special_find.finditer(text))
    if matches:
        cp = cp.copy()
        for match in matches:
            cp[match.start() : match.end()] = SEPARATOR_BASE
            if special_index is not None:
                cp[match.start()] = SEPARATOR_BASE + 1 + special_index[match.group()]
    return cp


def count_pretokens(text: str, special_find: regex.Pattern | None = None, max_special: int = 0) -> Counter[str]:
    """Counts of the GPT-2 pre-tokens of ``text``, special tokens (matched by
    ``special_find``) removed: the same as counting ``GPT2_REGEX.findall`` over the text
    between special tokens, ~4x faster."""
    counts: Counter[str] = Counter()
    for block in boundary_blocks(text, special_find, max_special):
        cp = marked_codepoints(block, special_find)
        try:
            found = distinct_pretokens(cp)
        except HashCollision:
            for part in split_on_specials(block, special_find):
                counts.update(GPT2_REGEX.findall(part))
            continue
        rows, pieces = text_pretokens(block, cp, found)
        counts.update(dict(zip(pieces, found.counts[rows].tolist())))
    return counts
