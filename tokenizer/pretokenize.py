"""Pre-tokenisation: the GPT-2 split pattern, special-token splitting and safe chunk boundaries.

A *boundary* is a position that no pre-token and no special token crosses, so text on either
side can be processed independently (in another process, or later, as ``encode_iterable``
does) with exactly the same result. Two kinds are used:

* the start of a special-token match (special tokens split the text before pre-tokenisation);
* a non-whitespace character followed by a whitespace character: no GPT-2 pre-token contains
  such a pair (letter/number/punctuation runs hold no whitespace, whitespace runs hold nothing
  else), and the pattern never looks behind, so the text after it tokenises on its own.
"""

from __future__ import annotations

from typing import Iterable, Sequence

import regex

GPT2_PATTERN = r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
GPT2_REGEX = regex.compile(GPT2_PATTERN)

# Last "non-whitespace then whitespace" pair before a limit, searched backwards (regex's (?r)).
_TEXT_BOUNDARY = regex.compile(r"(?r)\S\s")
# Bytes version: an ASCII printable non-space byte is always a whole non-whitespace character.
_BYTES_BOUNDARY = regex.compile(rb"(?r)[!-~][ \t\n\r\x0b\x0c]")


def validate_special_tokens(special_tokens: Iterable[str] | None) -> list[str]:
    """The special tokens as a list, rejecting empty, non-string and duplicated entries."""
    tokens = list(special_tokens or [])
    seen = set()
    for token in tokens:
        if not isinstance(token, str):
            raise TypeError(f"special tokens must be strings, got {token!r}")
        if token == "":
            raise ValueError("a special token is the empty string; remove it (every special token needs text)")
        if token in seen:
            raise ValueError(f"special token {token!r} is given twice; list each special token once")
        seen.add(token)
    return tokens


def special_regex(special_tokens: Sequence[str], as_bytes: bool = False) -> regex.Pattern | None:
    """Alternation of the escaped special tokens, longest first (so ``<|a|><|b|>`` style tokens
    that contain another special token win), or None when there are none."""
    if not special_tokens:
        return None
    ordered = sorted(special_tokens, key=len, reverse=True)
    if as_bytes:
        return regex.compile(b"|".join(regex.escape(t.encode("utf-8")) for t in ordered))
    return regex.compile("|".join(regex.escape(t) for t in ordered))


def max_special_length(special_tokens: Sequence[str], as_bytes: bool = False) -> int:
    if not special_tokens:
        return 0
    return max(len(t.encode("utf-8")) if as_bytes else len(t) for t in special_tokens)


def last_boundary(buf, specials: regex.Pattern | None, max_special: int) -> int:
    """The largest boundary ``0 < p < len(buf)`` that stays a boundary whatever follows ``buf``
    (0 if there is none). ``buf`` must itself start at a boundary; str or bytes."""
    is_bytes = isinstance(buf, (bytes, bytearray, memoryview))
    # A special token starting before `limit` lies wholly inside buf, so its match is final.
    limit = len(buf) - max(max_special - 1, 0)
    if limit <= 1:
        return 0
    finder = _BYTES_BOUNDARY if is_bytes else _TEXT_BOUNDARY
    found = finder.search(buf, 0, limit)
    cut = found.start() + 1 if found else 0
    if specials is None:
        return cut
    last_start = 0
    for match in specials.finditer(buf, 0, limit + max_special - 1):
        if match.start() >= limit:
            break
        if match.start() < cut < match.end():  # that whitespace lies inside a special token
            cut = match.start()
        last_start = match.start()
    # Prefer a document boundary (the start of a special token) when one lies in the second half.
    return last_start if last_start >= len(buf) // 2 else cut


def split_on_specials(text: str, specials: regex.Pattern | None) -> list[str]:
    """The ordinary-text pieces of ``text`` with the special tokens removed."""
    return [text] if specials is None else specials.split(text)

