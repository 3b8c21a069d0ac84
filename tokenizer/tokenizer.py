"""``Tokenizer``: byte-level BPE encoding and decoding (GPT-2 compatible).

Text is split on special tokens (longest first), each remaining piece into GPT-2 pre-tokens,
and each pre-token is merged by rank (earliest-learned merge first) until no merge applies,
which is exactly what GPT-2 and tiktoken do. Pre-tokens repeat a lot in natural text, so their
ids are cached. Long texts are pre-tokenised with numpy (``vector_pretokenize``): short
pre-tokens are looked up by their bytes in a numpy hash table, the others by text once per
distinct one (``pretoken_ids``), new ones are merged together (``bpe_batch``), and the ids are
laid out with one gather. Short texts take the regex path, with a dict of its own.
"""

from __future__ import annotations

import hashlib
import os
from itertools import chain
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np
import regex

from tritonlm.tokenizer import vector_pretokenize as vp
from tritonlm.tokenizer.bpe_batch import PairTable, encode_words
from tritonlm.tokenizer.pretoken_ids import PretokenIds
from tritonlm.tokenizer.pretokenize import (
    GPT2_REGEX,
    last_boundary,
    max_special_length,
    special_regex,
    validate_special_tokens,
)
from tritonlm.tokenizer.special_policy import SpecialSet, check_disallowed, resolve_special_sets
from tritonlm.tokenizer.vocab_files import (
    MERGES_FILE,
    VOCAB_FILE,
    load_merges,
    load_special_tokens,
    load_vocab,
    save_tokenizer_files,
)

END_OF_TEXT = "<|endoftext|>"  # the document separator of GPT-2 and of this project's corpora
CACHE_LIMIT = 1 << 18  # pre-tokens cached at most (bounded memory on endless streams)
VECTOR_MIN_CHARS = 4096  # texts at least this long are pre-tokenised with numpy, not the regex
BATCH_BPE_MIN = 64  # this many new pre-tokens are merged together with numpy
STREAM_FLUSH_CHARS = 1 << 16  # encode_iterable encodes once this much text is buffered
BATCH_PARALLEL_MIN_CHARS = 1 << 20  # encode_batch uses worker processes from this much text on


class Tokenizer:
    """Byte-level BPE tokenizer over ``vocab`` (id -> bytes) and ordered ``merges``.

    Special tokens are matched longest-first and encode to one id each; a special token absent
    from ``vocab`` is appended with the next free id. Without special tokens their text is
    ordinary text.
    """

    def __init__(
        self,
        vocab: dict[int, bytes],
        merges: Sequence[tuple[bytes, bytes]],
        special_tokens: Sequence[str] | None = None,
    ):
        self.vocab: dict[int, bytes] = dict(vocab)
        self.merges: list[tuple[bytes, bytes]] = list(merges)
        self.source_dir: Path | None = None  # the folder it was loaded from (``from_dir``)
        self.special_tokens: list[str] = validate_special_tokens(special_tokens)
        self._check_ids()
        self._id_of: dict[bytes, int] = {token: i for i, token in sorted(self.vocab.items(), reverse=True)}
        self._special_ids = self._add_special_tokens()
        self._id_bytes = [self.vocab.get(i, b"") for i in range(max(self.vocab) + 1)]
        self._byte_ids = self._single_byte_ids()
        self._ranks = self._merge_ranks()
        self._special_split = (
            regex.compile("(" + special_regex(self.special_tokens).pattern + ")") if self.special_tokens else None
        )
        self._special_find = special_regex(self.special_tokens)
        self._max_special = max_special_length(self.special_tokens)
        self._cache: dict[str, tuple[int, ...]] = {}  # the regex path's (short texts)
        self._special_index = {token: i for i, token in enumerate(self.special_tokens)}
        separators = [()] + [(self._special_ids[token],) for token in self.special_tokens]
        self._ids = PretokenIds(separators, CACHE_LIMIT)  # the numpy path's
        self._pair_table: PairTable | None = None  # built on first batch merge
        self._id_objects = list(range(self.vocab_size))  # one int object per id, shared by cached tuples
        self._byte_id_array = np.array(self._byte_ids, dtype=np.int64)

    # ---- construction -------------------------------------------------------------------
    @classmethod
    def from_files(
        cls,
        vocab_path: str | os.PathLike,
        merges_path: str | os.PathLike,
        special_tokens: Sequence[str] | None = None,
    ) -> "Tokenizer":
        """Load GPT-2 style vocab.json + merges.txt (ours or GPT-2's own files)."""
        return cls(load_vocab(vocab_path), load_merges(merges_path), special_tokens)

    @classmethod
    def from_dir(cls, folder: str | os.PathLike, special_tokens: Sequence[str] | None = None) -> "Tokenizer":
        """Load a folder written by ``save`` (special tokens from special_tokens.json by default)."""
        folder = Path(folder)
        if not folder.is_dir():
            raise FileNotFoundError(
                f"tokenizer folder {folder} does not exist; train one with `python -m tokenizer.train`"
            )
        specials = load_special_tokens(folder) if special_tokens is None else special_tokens
        tokenizer = cls.from_files(folder / VOCAB_FILE, folder / MERGES_FILE, specials)
        tokenizer.source_dir = folder.resolve()
        return tokenizer

    @property
    def fingerprint(self) -> str:
        """SHA-256 (hex) of what defines the ids: the vocabulary, the merges and the special tokens.
        Two tokenizers with the same fingerprint encode every text alike."""
        digest = hashlib.sha256()
        for token_id, token in sorted(self.vocab.items()):
            digest.update(token_id.to_bytes(8, "little") + len(token).to_bytes(4, "little") + token)
        for left, right in self.merges:
            digest.update(len(left).to_bytes(4, "little") + left + len(right).to_bytes(4, "little") + right)
        for special in self.special_tokens:
            digest.update(b"\xffspecial" + special.encode("utf-8"))
        return digest.hexdigest()

    def record(self) -> dict:
        """What a token file keeps of the tokenizer that made it: fingerprint, vocabulary size
        and, when it was loaded from a folder, that folder."""
        return {"sha256": self.fingerprint, "vocab_size": self.vocab_size,
                "path": str(self.source_dir) if self.source_dir is not None else None}

    @property
    def special_ids(self) -> dict[str, int]:
        """Each special token and its id."""
        return dict(self._special_ids)

    def save(self, out_dir: str | os.PathLike) -> Path:
        """Write vocab.json, merges.txt (GPT-2 printable-byte format) and special_tokens.json."""
        return save_tokenizer_files(out_dir, self.vocab, self.merges, self.special_tokens)

    def _check_ids(self) -> None:
        if not self.vocab:
            raise ValueError("vocab is empty")
        if min(self.vocab) < 0:
            raise ValueError(f"vocab ids must be non-negative, got {min(self.vocab)}")

    def _add_special_tokens(self) -> dict[str, int]:
        ids = {}
        for token in self.special_tokens:
            encoded = token.encode("utf-8")
            if encoded not in self._id_of:
                new_id = max(self.vocab) + 1
                self.vocab[new_id] = encoded
                self._id_of[encoded] = new_id
            ids[token] = self._id_of[encoded]
        return ids

    def _single_byte_ids(self) -> list[int]:
        missing = [b for b in range(256) if bytes([b]) not in self._id_of]
        if missing:
            raise ValueError(f"vocab lacks single-byte tokens for bytes {missing[:8]}...; it is not byte-level")
        return [self._id_of[bytes([b])] for b in range(256)]

    def _merge_ranks(self) -> dict[tuple[int, int], tuple[int, int]]:
        """``(left id, right id) -> (rank, merged id)``."""
        ranks = {}
        for rank, (left, right) in enumerate(self.merges):
            try:
                pair = (self._id_of[left], self._id_of[right])
                merged = self._id_of[left + right]
            except KeyError as e:
                raise ValueError(
                    f"merge {rank} ({left!r}, {right!r}) uses or makes a token missing from the vocab"
                ) from e
            ranks.setdefault(pair, (rank, merged))
        return ranks

    # ---- encoding -----------------------------------------------------------------------
    @property
    def vocab_size(self) -> int:
        return max(self.vocab) + 1

    def _bpe(self, piece: str) -> tuple[int, ...]:
        """Ids of one pre-token: apply the lowest-ranked merge everywhere until none applies."""
        ids = list(map(self._byte_ids.__getitem__, piece.encode("utf-8")))
        ranks = self._ranks
        while len(ids) > 1:
            best = None
            for pair in zip(ids, ids[1:]):
                found = ranks.get(pair)
                if found is not None and (best is None or found[0] < best[0]):
                    best, best_pair = found, pair
            if best is None:
                break
            left, right = best_pair
            merged, i, n = [], 0, len(ids)
            while i < n:
                if i + 1 < n and ids[i] == left and ids[i + 1] == right:
                    merged.append(best[1])
                    i += 2
                else:
                    merged.append(ids[i])
                    i += 1
            ids = merged
        return tuple(ids)

    def _cache_pieces(self, pieces: Iterable[str]) -> None:
        """Make sure every pre-token in ``pieces`` has its ids in the cache."""
        cache = self._cache
        pieces = set(pieces)
        missing = pieces.difference(cache)
        if not missing:
            return
        if len(cache) + len(missing) > CACHE_LIMIT:
            cache.clear()  # bound memory: start afresh rather than grow without limit
            missing = pieces
        missing = list(missing)
        if len(missing) < BATCH_BPE_MIN:
            cache.update(zip(missing, map(self._bpe, missing)))
            return
        cache.update(zip(missing, _split(*self._merge_many(missing), self._id_objects)))

    def _merge_many(self, pieces: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """The ids of every piece back to back, and how many each has."""
        if len(pieces) < BATCH_BPE_MIN:
            merged = list(map(self._bpe, pieces))
            counts = np.fromiter(map(len, merged), dtype=np.int32, count=len(merged))
            return np.fromiter(chain.from_iterable(merged), dtype=np.int32, count=int(counts.sum())), counts
        self.prepare_tables()
        return encode_words([piece.encode("utf-8") for piece in pieces], self._byte_id_array, self._pair_table)

    def clear_cache(self) -> None:
        """Forget the ids of the pre-tokens met so far (to measure cold encoding, or free memory)."""
        self._cache.clear()
        self._ids.clear()

    def prepare_tables(self) -> None:
        """Build the numpy lookup tables now rather than on first use (e.g. once in a parent
        process, so that forked workers share them)."""
        if self._pair_table is None:
            self._pair_table = PairTable(self._ranks, self.vocab_size)
        vp.char_classes()

    def _encode_ordinary(self, text: str, out: list[int]) -> None:
        pieces = GPT2_REGEX.findall(text)
        self._cache_pieces(pieces)
        out += chain.from_iterable(map(self._cache.__getitem__, pieces))

    def _encode_regex(self, text: str) -> list[int]:
        out: list[int] = []
        if self._special_split is None:
            self._encode_ordinary(text, out)
            return out
        parts = self._special_split.split(text)
        special_ids = self._special_ids
        for i, part in enumerate(parts):
            if i % 2:
                out.append(special_ids[part])
            elif part:
                self._encode_ordinary(part, out)
        return out

    def _encode_block(self, block: str) -> np.ndarray:
        """Ids of one block (see ``vector_pretokenize.boundary_blocks``), numpy all the way.

        A special token's first character carries its index and emits its id, its other
        characters emit nothing (separator slots ``1 + index`` and ``0``)."""
        cp = vp.marked_codepoints(block, self._special_find, self._special_index)
        try:
            slots = self._ids.slots(block, cp, vp.split_pretokens(cp), self._merge_many)
        except vp.HashCollision:
            return np.array(self._encode_regex(block), dtype=np.int64)
        return self._ids.lay_out(slots)

    def _check_text(self, text) -> None:
        if not isinstance(text, str):
            raise TypeError(f"encode expects str, got {type(text).__name__}; decode bytes first")

    def _blocks(self, text: str) -> Iterator[str]:
        return vp.boundary_blocks(text, self._special_find, self._max_special)

    def encode_array(self, text: str) -> np.ndarray:
        """Token ids of ``text`` as an int64 array (what ``encode`` returns, without the list)."""
        self._check_text(text)
        if len(text) < VECTOR_MIN_CHARS:
            return np.array(self._encode_regex(text), dtype=np.int64)
        return np.concatenate([self._encode_block(block) for block in self._blocks(text)])

    def encode(self, text: str, allowed_special: SpecialSet = "all", disallowed_special: SpecialSet = ()) -> list[int]:
        """Token ids of ``text``. Special tokens in ``allowed_special`` (all by default) become their
        id, those in ``disallowed_special`` raise ``DisallowedSpecialToken``, the others are ordinary
        text (tiktoken's convention; see ``special_policy``)."""
        self._check_text(text)
        allowed, disallowed = resolve_special_sets(self.special_tokens, allowed_special, disallowed_special)
        check_disallowed(text, disallowed)
        if len(allowed) < len(self.special_tokens):
            return self._encode_allowing(text, allowed)
        if len(text) < VECTOR_MIN_CHARS:
            return self._encode_regex(text)
        return self.encode_array(text).tolist()

    def _encode_allowing(self, text: str, allowed: frozenset[str]) -> list[int]:
        """``text`` with only the ``allowed`` special tokens special (the rest is ordinary text)."""
        out: list[int] = []
        pattern = special_regex(sorted(allowed))
        parts = regex.split("(" + pattern.pattern + ")", text) if pattern is not None else [text]
        for i, part in enumerate(parts):
            if i % 2:
                out.append(self._special_ids[part])
            elif part:
                self._encode_ordinary(part, out)
        return out

    def encode_batch(self, texts: Sequence[str], num_workers: int | None = None, allowed_special: SpecialSet = "all",
                     disallowed_special: SpecialSet = ()) -> list[list[int]]:
        """``[encode(t) for t in texts]``, in ``num_workers`` processes when the batch is large
        enough to pay for them (default: all usable cores)."""
        for text in texts:
            self._check_text(text)
        options = (allowed_special, disallowed_special)
        if num_workers == 1 or sum(map(len, texts)) < BATCH_PARALLEL_MIN_CHARS:
            return [self.encode(text, *options) for text in texts]
        from tritonlm.tokenizer.chunks import map_chunks

        self.prepare_tables()  # once here: forked workers inherit them
        work = [(text, options) for text in texts]
        return list(map_chunks(_encode_in_worker, work, num_workers, ordered=True,
                               initializer=set_worker_tokenizer, initargs=(self,)))

    def encode_iterable(self, iterable: Iterable[str], flush_chars: int = STREAM_FLUSH_CHARS) -> Iterator[int]:
        """Lazily yield the ids of ``"".join(iterable)`` (e.g. a file opened in text mode).

        Text is buffered until a boundary that no pre-token or special token can cross, so the
        output equals ``encode`` of the whole text for any chunking while memory stays bounded
        by the flush size plus the longest stretch without such a boundary. ``flush_chars``
        sets how much text is gathered before looking for a boundary (small values only cost
        speed).
        """
        pending: list[str] = []
        pending_chars = 0
        carry = ""
        for chunk in iterable:
            if not isinstance(chunk, str):
                raise TypeError(f"encode_iterable expects str chunks, got {type(chunk).__name__}")
            pending.append(chunk)
            pending_chars += len(chunk)
            if pending_chars < flush_chars:
                continue
            buf = carry + "".join(pending)
            pending.clear()
            pending_chars = 0
            cut = last_boundary(buf, self._special_find, self._max_special)
            if cut:
                yield from self.encode(buf[:cut])
            carry = buf[cut:]
        rest = carry + "".join(pending)
        if rest:
            yield from self.encode(rest)

    # ---- decoding -----------------------------------------------------------------------
    def decode_bytes(self, ids: Iterable[int]) -> bytes:
        table = self._id_bytes
        try:
            return b"".join([table[i] for i in ids])
        except (IndexError, TypeError):
            bad = next(i for i in ids if not isinstance(i, int) or not 0 <= i < len(table))
            raise ValueError(f"token id {bad!r} is not in this vocabulary of {len(table)} ids") from None

    def decode(self, ids: Iterable[int]) -> str:
        """Text of ``ids``; byte sequences that are not valid UTF-8 become U+FFFD."""
        return self.decode_bytes(list(ids)).decode("utf-8", errors="replace")


_worker_tokenizer: Tokenizer | None = None


def set_worker_tokenizer(tokenizer: Tokenizer) -> None:
    """The tokenizer of this worker process (``map_chunks``'s initializer, for the encoders)."""
    global _worker_tokenizer
    _worker_tokenizer = tokenizer


def worker_tokenizer() -> Tokenizer:
    """The tokenizer ``set_worker_tokenizer`` gave this process."""
    return _worker_tokenizer


def _encode_in_worker(item: tuple[str, tuple]) -> list[int]:
    text, options = item
    return worker_tokenizer().encode(text, *options)


def _split(flat: np.ndarray, counts: np.ndarray, id_objects: list[int]) -> Iterator[tuple[int, ...]]:
    """``flat`` cut into tuples of ``counts`` ids, sharing one int object per id (less memory)."""
    ids = list(map(id_objects.__getitem__, flat.tolist()))
    ends = np.cumsum(counts).tolist()
    return map(tuple, map(ids.__getitem__, map(slice, [0] + ends[:-1], ends)))
