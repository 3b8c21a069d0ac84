"""GPT-2 pre-tokenisation vectorised with numpy: boundaries, then distinct pre-tokens by hash.

The ``regex`` module spends ~200 ns per pre-token, which caps training and encoding speed.
Here the same split is computed from the character classes of the whole text at once:

* every code point gets a class: letter (``\\p{L}``), number (``\\p{N}``), space, other
  whitespace (``\\s``), other, or *separator* (a special token: a hard text boundary);
* a pre-token starts where the class changes (a single space joins the run after it), at the
  last character of a whitespace run of two or more that precedes a non-space (GPT-2's
  ``\\s+(?!\\S)``), and around contractions (``'s 't 're 've 'm 'll 'd``) that begin a match;
* pre-tokens are grouped by a 128-bit key, and every group is then checked against its first
  member, so the result is exact: a pre-token of at most 16 characters in U+0001..U+00FF is
  keyed by its bytes (exact), longer or wider ones by a polynomial hash and are compared
  character by character; on a collision the caller falls back to the regex
  (``HashCollision``).

The classes come from the ``regex`` module itself, so they match ``GPT2_PATTERN`` exactly; the
tests compare both on random and real text.
"""

from __future__ import annotations

import functools
from collections import Counter
from typing import Iterator, NamedTuple

import numpy as np
import regex

from tritonlm.tokenizer.pretokenize import GPT2_REGEX, last_boundary, split_on_specials

LETTER, NUMBER, OTHER, SPACE, WHITE, SEPARATOR = range(6)
SEPARATOR_BASE = 0x110000  # code points from here on mark special tokens, never text
BLOCK_CHARS = 1 << 20  # callers cut longer texts at boundaries: bounded memory, strong hashes
EXACT_CHARS = 16  # pre-tokens this short (U+0001..U+00FF) are keyed by their bytes: exact
_LOW_BYTES = np.array([(1 << 8 * k) - 1 for k in range(9)], dtype=np.uint64)  # masks of 0..8 bytes
_HIGH_MIX = np.uint64(0xD6E8FEB86659FD93)
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


class Narrow(NamedTuple):
    """Code points narrowed to bytes: most text lies in U+0001..U+00FF, where a nonzero byte
    says it all."""

    latin: np.ndarray  # (n + EXACT_CHARS,) uint8: the low byte of each code point, zero padded
    wide: np.ndarray  # positions of the others (above U+00FF, or U+0000)


def narrow(cp: np.ndarray) -> Narrow:
    latin = np.zeros(cp.size + EXACT_CHARS, dtype=np.uint8)
    latin[: cp.size] = cp  # keeps the low byte
    return Narrow(latin, np.flatnonzero(cp - np.uint32(1) >= np.uint32(0xFF)))  # wraps below U+0001


def _starts_here(prev: int, cur: int, following: int | None) -> bool:
    """Does a pre-token start at a character of class ``cur`` between ``prev`` and ``following``
    (``None``: the end of the text)? A single space joins the run after it."""
    solid = cur <= OTHER
    white, prev_white = cur in (SPACE, WHITE), prev in (SPACE, WHITE)
    return bool(
        (solid and ((prev <= OTHER and cur != prev) or prev == WHITE or prev == SEPARATOR))
        or (white and not prev_white)  # a whitespace run begins
        or (white and prev_white and following is not None and following <= OTHER)  # \s+(?!\S): last of a run
        or cur == SEPARATOR
    )


_CLASSES = len(range(SEPARATOR + 1))
# A byte table for bytes.translate (2x faster than np.take), indexed by (prev, cur, following):
_STARTS_HERE = bytes([_starts_here(p, c, f) for p in range(_CLASSES) for c in range(_CLASSES)
                      for f in range(_CLASSES)]).ljust(256, b"\0")


@functools.cache
def _latin_classes() -> bytes:
    """The classes of U+0000..U+00FF as a bytes.translate table."""
    return char_classes()[:256].tobytes()


def _translate(values: np.ndarray, table: bytes, dtype=np.uint8) -> np.ndarray:
    """``table[values]`` for uint8 ``values`` and a 256-byte table."""
    return np.frombuffer(values.tobytes().translate(table), dtype=dtype)


def pretoken_starts(cp: np.ndarray, narrowed: Narrow | None = None) -> np.ndarray:
    """Indices where GPT-2 pre-tokens start in the code points ``cp`` (each separator code
    point, ``>= SEPARATOR_BASE``, is a pre-token of its own and a text boundary)."""
    n = cp.size
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    latin, wide = narrowed or narrow(cp)
    c = _translate(latin[:n], _latin_classes()).copy()
    c[wide] = char_classes()[np.minimum(cp[wide], SEPARATOR_BASE)]
    start = np.empty(n, dtype=bool)
    start[0] = True
    if n > 2:
        triple = c[:-2] * np.uint8(_CLASSES * _CLASSES)  # (n - 2,): classes around 1..n-2
        triple += c[1:-1] * np.uint8(_CLASSES)
        triple += c[2:]
        start[1:-1] = _translate(triple, _STARTS_HERE, dtype=bool)
    if n > 1:
        start[-1] = _starts_here(int(c[-2]), int(c[-1]), None)
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


class Pretokens(NamedTuple):
    """Pre-tokens of a code-point array, each with a 128-bit key."""

    starts: np.ndarray  # (t,) where each starts
    lengths: np.ndarray  # (t,) its length in characters
    keys: np.ndarray  # (t,) uint64: its key's low word (see ``token_keys``)
    high: np.ndarray  # (t,) uint64: its high word
    exact: np.ndarray  # (t,) bool: for these, equal keys mean equal pre-tokens

    def take(self, rows: np.ndarray) -> "Pretokens":
        return Pretokens(*(field[rows] for field in self))


def split_pretokens(cp: np.ndarray) -> Pretokens:
    """The pre-tokens of ``cp`` (a separator code point is one of its own) and their keys."""
    narrowed = narrow(cp)
    starts = pretoken_starts(cp, narrowed)
    lengths = np.diff(starts, append=cp.size)
    return Pretokens(starts, lengths, *token_keys(cp, starts, lengths, narrowed))


def token_keys(cp: np.ndarray, starts: np.ndarray, lengths: np.ndarray,
               narrowed: Narrow | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(keys, high, exact)``: a 128-bit key (two words) of every pre-token
    ``cp[start:start + length]``, independent of its position, and whether the key identifies
    it exactly.

    A pre-token of at most ``EXACT_CHARS`` characters in U+0001..U+00FF (nearly all of them in
    European text) is keyed by its bytes, read with two unaligned 8-byte loads: nonzero bytes,
    then zeros, so the key also says the length. Longer or wider ones get a polynomial hash of
    their characters (high word 0), computed over those characters only, and need checking.
    """
    latin, wide = narrowed or narrow(cp)
    # (n,): the 8 bytes that start at each position, overlapping (stride of one byte); the
    # padding keeps every load inside
    words = np.ndarray((cp.size + 8,), dtype="<u8", buffer=latin, strides=(1,))
    keys = words[starts]
    keys &= _LOW_BYTES[np.minimum(lengths, 8)]
    high = words[starts + 8]
    high &= _LOW_BYTES[np.clip(lengths - 8, 0, 8)]
    exact = lengths <= EXACT_CHARS
    if wide.size:
        exact[np.searchsorted(starts, wide, side="right") - 1] = False
    hashed = np.flatnonzero(~exact)
    if hashed.size:
        keys[hashed] = _polynomial_hashes(cp, starts[hashed], lengths[hashed])
        high[hashed] = 0
    return keys, high, exact


def _polynomial_hashes(cp: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """``sum((c + 1) * B**j)`` (mod 2**64) over the characters of each given pre-token."""
    offsets = np.cumsum(lengths) - lengths
    chars = cp[span_positions(starts, lengths, offsets)]
    total = chars.size
    powers, inverse_powers = _power_tables(total)
    prefix = np.zeros(total + 1, dtype=np.uint64)
    np.multiply(chars + np.uint32(1), powers[:total], out=prefix[1:], dtype=np.uint64)
    np.cumsum(prefix, out=prefix)
    return (prefix[offsets + lengths] - prefix[offsets]) * inverse_powers[offsets]


def span_positions(starts: np.ndarray, lengths: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """The positions of the spans ``[start, start + length)``, one span after another
    (``offsets``: where each span begins in the result, the running sum of ``lengths``)."""
    total = int(offsets[-1] + lengths[-1]) if lengths.size else 0
    return np.repeat(starts - offsets, lengths) + np.arange(total)


def span_texts(text: str, starts: np.ndarray, ends: np.ndarray) -> list[str]:
    """``text[start:end]`` for each span."""
    return list(map(text.__getitem__, map(slice, starts.tolist(), ends.tolist())))


_power_cache: list[tuple[np.ndarray, np.ndarray]] = []


def _power_tables(n: int) -> tuple[np.ndarray, np.ndarray]:
    """``B**i`` and ``B**-i`` (mod 2**64) for ``i < n`` at least; grown by doubling, kept."""
    if not _power_cache or _power_cache[0][0].size < n:
        size = 1 << max(16, (n - 1).bit_length())
        powers = np.empty((2, size), dtype=np.uint64)
        powers[:, 0] = 1
        np.cumprod(np.full(size - 1, _HASH_BASE, dtype=np.uint64), out=powers[0, 1:])
        np.cumprod(np.full(size - 1, _HASH_BASE_INVERSE, dtype=np.uint64), out=powers[1, 1:])
        _power_cache[:] = [(powers[0], powers[1])]
    return _power_cache[0]


def mixed_hashes(keys: np.ndarray, high: np.ndarray) -> np.ndarray:
    """A hash of the keys whose high bits, which grouping keeps, depend on every bit."""
    hashes = keys ^ high * _HIGH_MIX
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
    bits = np.uint64(max((t - 1).bit_length(), 1))
    keys = hashes >> bits
    keys <<= bits
    keys |= np.arange(t, dtype=np.uint64)
    keys.sort()
    order = (keys & ((np.uint64(1) << bits) - np.uint64(1))).astype(np.int64)
    keys >>= bits
    head = np.empty(t, dtype=bool)
    head[0] = True
    np.not_equal(keys[1:], keys[:-1], out=head[1:])
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
    tokens = split_pretokens(cp)
    first, inverse, counts = group_pretokens(cp, tokens)
    starts = tokens.starts[first]
    return DistinctPretokens(starts, starts + tokens.lengths[first], counts, inverse)


def group_pretokens(cp: np.ndarray, tokens: Pretokens) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(first, inverse, counts)`` of the groups of equal pre-tokens among ``tokens`` (any of
    the pre-tokens of ``cp``), like ``np.unique``; exact: raises ``HashCollision`` when two
    different pre-tokens share a hash."""
    if tokens.starts.size == 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, empty
    first, inverse, counts = _group_by_hash(mixed_hashes(tokens.keys, tokens.high))
    _check_groups(cp, tokens, first[inverse])
    return first, inverse, counts


def _check_groups(cp: np.ndarray, tokens: Pretokens, representative: np.ndarray) -> None:
    """Every pre-token must equal the first one with its hash: compared by key where keys are
    exact, character by character elsewhere."""
    starts, lengths, keys, high, exact = tokens
    if np.any(lengths != lengths[representative]):
        raise HashCollision
    by_key = exact & exact[representative]
    if np.any(((keys != keys[representative]) | (high != high[representative])) & by_key):
        raise HashCollision
    by_char = np.flatnonzero(~by_key)
    by_char = by_char[representative[by_char] != by_char]
    if by_char.size == 0:
        return
    lengths = lengths[by_char]
    at = span_positions(starts[by_char], lengths, np.cumsum(lengths) - lengths)
    counterpart = at + np.repeat(starts[representative[by_char]] - starts[by_char], lengths)
    if np.any(cp[at] != cp[counterpart]):
        raise HashCollision


def text_pretokens(block: str, cp: np.ndarray, found: DistinctPretokens) -> tuple[np.ndarray, list[str]]:
    """The rows of ``found`` that are text, not special-token separators, and their strings."""
    rows = np.flatnonzero(cp[found.starts] < SEPARATOR_BASE)
    return rows, span_texts(block, found.starts[rows], found.ends[rows])


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
        starts = np.fromiter(map(regex.Match.start, matches), dtype=np.int64, count=len(matches))
        lengths = np.fromiter(map(len, map(regex.Match.group, matches)), dtype=np.int64, count=len(matches))
        cp[span_positions(starts, lengths, np.cumsum(lengths) - lengths)] = SEPARATOR_BASE
        if special_index is not None:
            index = np.fromiter(map(special_index.__getitem__, map(regex.Match.group, matches)), dtype=np.int64,
                                count=len(matches))
            cp[starts] = SEPARATOR_BASE + 1 + index
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
