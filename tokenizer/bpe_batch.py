"""Byte-pair encoding of many pre-tokens at once, vectorised with numpy.

Encoding a corpus meets ~100k distinct pre-tokens; merging them one by one in Python costs
~10 us each, more than the rest of encoding. Here all of them advance together: every round,
each word merges all occurrences of its lowest-ranked pair (left to right, never overlapping),
exactly as ``Tokenizer._bpe`` and GPT-2 do, and words with no pair left retire.

Arrays hold one element per token of the words still merging; ranks and ids fit in int32,
which halves the memory each round walks through.
"""

from __future__ import annotations

import numpy as np

from tritonlm.tokenizer.hash_table import MISSING, HashTable

NO_RANK = np.iinfo(np.int32).max  # the pair never merges (or crosses two words)
DENSE_IDS = 1024  # pairs of ids below this are looked up in a dense table (4 MB)


class PairTable:
    """Merge ranks for many pairs at once, ``(left id, right id) -> rank``, and ``merged[rank]``,
    the id that merge makes. Pairs of ids below ``DENSE_IDS`` (bytes and early merges: ~85% of
    the lookups when encoding English with GPT-2) are read from a dense square; the others from
    a numpy hash table (a sorted array and ``searchsorted`` were 3x slower)."""

    def __init__(self, ranks: dict[tuple[int, int], tuple[int, int]], vocab_size: int):
        self.stride = vocab_size
        pairs = np.array(list(ranks), dtype=np.int64).reshape(-1, 2)
        values = np.array(list(ranks.values()), dtype=np.int64).reshape(-1, 2)
        rank = values[:, 0].astype(np.int32)
        self.merged = np.full(int(rank.max()) + 1 if rank.size else 1, -1, dtype=np.int32)
        self.merged[rank] = values[:, 1]
        self.dense = np.full(DENSE_IDS * DENSE_IDS, NO_RANK, dtype=np.int32)  # (left, right) row-major
        small = (pairs < DENSE_IDS).all(axis=1)
        self.dense[pairs[small, 0] * DENSE_IDS + pairs[small, 1]] = rank[small]
        self._table = HashTable(int((~small).sum()))
        self._table.insert(self._codes(pairs[~small, 0], pairs[~small, 1]), rank[~small])

    def _codes(self, left: np.ndarray, right: np.ndarray) -> np.ndarray:
        return left.astype(np.uint64) * np.uint64(self.stride) + right.astype(np.uint64)

    def lookup(self, left: np.ndarray, right: np.ndarray) -> np.ndarray:
        """Rank of each pair (``NO_RANK`` when it never merges)."""
        small = (left < DENSE_IDS) & (right < DENSE_IDS)
        rank = self.dense[np.where(small, left * DENSE_IDS + right, 0)]
        large = np.flatnonzero(~small)
        if large.size:
            found = self._table.lookup(self._codes(left[large], right[large]))
            rank[large] = np.where(found == MISSING, NO_RANK, found)
        return rank


def encode_words(words: list[bytes], byte_ids: np.ndarray, table: PairTable) -> tuple[np.ndarray, np.ndarray]:
    """Token ids of each byte string in ``words`` (``byte_ids[b]`` is the id of byte ``b``):
    ``(ids, counts)``, the ids of all words one after another and how many each word has."""
    lengths = np.fromiter(map(len, words), dtype=np.int64, count=len(words))
    ids = byte_ids[np.frombuffer(b"".join(words), dtype=np.uint8)].astype(np.int32)
    owner = np.repeat(np.arange(len(words), dtype=np.int32), lengths)  # word of each element
    rank = np.full(ids.size, NO_RANK, dtype=np.int32)  # rank of the pair (i, i + 1)
    _look_up_pairs(ids, owner, rank, np.arange(ids.size), table)
    done_ids, done_owner = [], []
    while ids.size:
        word_best = _best_rank_per_element(owner, rank)
        finished = word_best == NO_RANK
        if finished.any():
            done_ids.append(ids[finished])
            done_owner.append(owner[finished])
            active = ~finished
            ids, owner, rank, word_best = ids[active], owner[active], rank[active], word_best[active]
        if ids.size:
            ids, owner, rank = _merge_round(ids, owner, rank, word_best, table)
    flat_owner = np.concatenate(done_owner) if done_owner else np.zeros(0, dtype=np.int32)
    order = np.argsort(flat_owner, kind="stable")  # elements of a word stay in order
    flat = np.concatenate(done_ids)[order] if done_ids else flat_owner
    return flat, np.bincount(flat_owner, minlength=len(words))


def _best_rank_per_element(owner: np.ndarray, rank: np.ndarray) -> np.ndarray:
    """For every element, the lowest pair rank of its word."""
    n = owner.size
    head = np.empty(n, dtype=bool)
    head[0] = True
    np.not_equal(owner[1:], owner[:-1], out=head[1:])
    heads = np.flatnonzero(head)
    return np.repeat(np.minimum.reduceat(rank, heads), np.diff(np.append(heads, n)))


def _merge_round(ids, owner, rank, word_best, table: PairTable):
    """Every word merges its lowest-ranked pair everywhere; returns the shorter arrays."""
    at = np.flatnonzero(rank == word_best)
    if at.size > 1 and np.any(np.diff(at) == 1):  # runs like "aaaa" merging (a, a)
        at = _every_other_in_runs(at)
    ids[at] = table.merged[rank[at]]
    keep = np.ones(ids.size, dtype=bool)
    keep[at + 1] = False
    ids, owner, rank = ids[keep], owner[keep], rank[keep]
    merged_at = at - np.arange(at.size)  # where each merged token sits now
    _look_up_pairs(ids, owner, rank, np.concatenate([merged_at - 1, merged_at]), table)
    return ids, owner, rank


def _look_up_pairs(ids, owner, rank, at: np.ndarray, table: PairTable) -> None:
    """Refresh ``rank`` for the pairs starting at positions ``at`` (none across words)."""
    at = at[(at >= 0) & (at < ids.size)]
    rank[at] = NO_RANK
    at = at[at < ids.size - 1]
    inside = at[owner[at] == owner[at + 1]]
    rank[inside] = table.lookup(ids[inside], ids[inside + 1])


def _every_other_in_runs(at: np.ndarray) -> np.ndarray:
    """Of each run of consecutive positions, keep the 1st, 3rd, 5th ... (merging left to
    right never overlaps: "aaaa" with (a, a) gives "aa aa", "aaa" gives "aa a")."""
    index = np.arange(at.size)
    run_start = np.r_[True, np.diff(at) != 1]
    first = np.maximum.accumulate(np.where(run_start, index, 0))
    return at[(index - first) % 2 == 0]
