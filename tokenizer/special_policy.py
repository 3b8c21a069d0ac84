"""Which special tokens ``encode`` treats as special, in tiktoken's terms.

``allowed_special`` are encoded as their single id; ``disallowed_special`` found in the text are an
error (so that user text cannot smuggle a control token in); any other special token's text is
ordinary text, split and merged like the rest. Each is a set of tokens or ``"all"``. This
project's default is ``allowed_special="all"`` (corpora mark their documents with
``<|endoftext|>``); tiktoken's stricter default is ``allowed_special=set(),
disallowed_special="all"``.
"""

from __future__ import annotations

from typing import AbstractSet, Literal, Sequence

SpecialSet = AbstractSet[str] | Literal["all"]


class DisallowedSpecialToken(ValueError):
    """The text contains a special token the caller disallowed."""


def resolve_special_sets(special_tokens: Sequence[str], allowed: SpecialSet,
                         disallowed: SpecialSet) -> tuple[frozenset[str], frozenset[str]]:
    """(allowed, disallowed) as sets of this tokenizer's special tokens; ``"all"`` in
    ``disallowed`` means every special token not allowed. Unknown tokens are an error."""
    known = frozenset(special_tokens)
    allowed_set = known if allowed == "all" else frozenset(allowed)
    disallowed_set = (known - allowed_set) if disallowed == "all" else frozenset(disallowed)
    unknown = (allowed_set | disallowed_set) - known
    if unknown:
        raise ValueError(f"{sorted(unknown)} are not special tokens of this tokenizer; its special tokens are "
                         f"{sorted(known) or 'none'}")
    if allowed_set & disallowed_set:
        raise ValueError(f"{sorted(allowed_set & disallowed_set)} are both allowed and disallowed")
    return allowed_set, disallowed_set


def check_disallowed(text: str, disallowed: frozenset[str]) -> None:
    """Raise ``DisallowedSpecialToken`` naming the first disallowed special token in ``text``."""
    found = [token for token in disallowed if token in text]
    if found:
        token = min(found, key=text.index)
        raise DisallowedSpecialToken(
            f"the text contains the special token {token!r} at character {text.index(token)}; pass "
            f"allowed_special={{{token!r}}} to encode it as one special token, or disallowed_special=() "
            "to encode it as ordinary text")
