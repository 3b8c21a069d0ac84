"""Byte-pair encoding of many pre-tokens at once, vectorised with numpy.

Encoding a corpus meets ~100k distinct pre-tokens; merging them one by one in Python costs
~9 us each, more than the rest of encoding. Here all of them advance together: every round,
each word merges all occurrences of its lowest-ranked pair (left to right, never overlapping),
exactly as ``Tokenizer._bpe`` and GPT-2 do, and words with no pair left retire.
"""

from __future__ import annotations

import numpy as np

_NO_RANK = np.iinfo(np.int64).max
_FIBONACCI = np.uint64(0x9E3779B97F4A7C15)  # multiplicative hashing


class PairTable:
    """Merge ranks in an open-addressing hash table that numpy can probe for many pairs at once:
    ``(left id, right id) -> (rank, merged id)``. (A sorted array and ``searchsorted`` were 3x
    slower: a binary search per pair.)"""

    def __init__(self, ranks: dict[tuple[int, int], tuple[int, int]], vocab_size: int):
        self.stride = vocab_size
        self.id_objects = list(range(vocab_size))
        codes = np.array([a * vocab_size + b for a, b in ranks], dtype=np.int64)
        values = np.array(list(ranks.values()), dtype=np.int64).reshape(-1, 2)
        self.ranks, self.merged = values[:, 0], values[:, 1]
        bits = max(4, (2 * codes.size).bit_length())  # at most half full
        self.mask = (1 << bits) - 1
        self.shift = np.uint64(64 - bits)
        self.slot_code = np.full(self.mask + 1, -1, dtype=np.int64)
        self.slot_row = np.zeros(self.mask + 1, dtype=np.int64)
        self.max_probe = self._insert(codes)

    def _home(self, codes: np.ndarray) -> np.ndarray:
        return ((codes.astype(np.uint64) * _FIBONACCI) >> self.shift).astype(np.int64)

    def _insert(self, codes: np.ndarray) -> int:
        """Linear probing, all keys at once: at each probe every waiting key tries its next
        slot and one key per free slot wins. Returns the longest probe sequence."""
        home = self._home(codes)
        waiting = np.arange(codes.size)
        probe = 0
        while waiting.size:
            slot = (home[waiting] + probe) & self.mask
            free = self.slot_code[slot] == -1
            slot, winners = np.unique(slot[free], return_index=True)
            winners = waiting[free][winners]
            self.slot_code[slot], self.slot_row[slot] = codes[winners], winners
            waiting = np.setdiff1d(waiting, winners, assume_unique=True)
            probe += 1
        return probe

    def lookup(self, left: np.ndarray, right: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Rank (``_NO_RANK`` when the pair never merges) and table row of each pair."""
        codes = left * self.stride + right
        home = self._home(codes)
        rank = np.full(codes.size, _NO_RANK)
        row = np.zeros(codes.size, dtype=np.int64)
        todo = np.arange(codes.size)
        for probe in range(self.max_probe):
            slot = (home[todo] + probe) & self.mask
            stored = self.slot_code[slot]
            hit = stored == codes[todo]
            row[todo[hit]] = self.slot_row[slot[hit]]
            rank[todo[hit]] = self.ranks[self.slot_row[slot[hit]]]
            todo = todo[~hit & (stored != -1)]  # an empty slot ends the search: not a merge
            if not todo.size:
                break
        return rank, row


def encode_words(words: list[bytes], byte_ids: np.ndarray, table: PairTable) -> list[tuple[int, ...]]:
    """Token ids of each byte string in ``words`` (``byte_ids[b]`` is the id of byte ``b``)."""
    lengths = np.fromiter(map(len, words), dtype=np.int64, count=len(words))
    ids = byte_ids[np.frombuffer(b"".join(words), dtype=np.uint8)]
    owner = np.repeat(np.arange(len(words)), lengths)  # word of each element
    rank = np.full(ids.size, _NO_RANK)  # rank of the pair (i, i + 1); none across words
    where = np.zeros(ids.size, dtype=np.int64)  # its row in the table
    _look_up_pairs(ids, owner, table, np.arange(ids.size), rank, where)
    done_ids, done_owner = [], []
    while ids.size:
        ids, owner, rank, where, finished = _merge_round(ids, owner, rank, where, table)
        done_ids.append(ids[finished])
        done_owner.append(owner[finished])
        active = ~finished
        ids, owner, rank, where = ids[active], owner[active], rank[active], where[active]
    flat_owner = np.concatenate(done_owner) if done_owner else np.zeros(0, dtype=np.int64)
    order = np.argsort(flat_owner, kind="stable")  # elements of a word stay in order
    flat = (np.concatenate(done_ids)[order] if done_ids else flat_owner).tolist()
    flat = list(map(table.id_objects.__getitem__, flat))  # share one int object per id: less memory
    ends = np.cumsum(np.bincount(flat_owner, minlength=len(words))).tolist()
    return [tuple(flat[a:b]) for a, b in zip([0] + ends[:-1], ends)]


def _look_up_pairs(ids, owner, table: PairTable, at: np.ndarray, rank, where) -> None:
    """Refresh ``rank`` and ``where`` for the pairs starting at positions ``at``."""
    at = at[(at >= 0) & (at < ids.size)]
    rank[at] = _NO_RANK
    at = at[at < ids.size - 1]
    inside = at[owner[at] == owner[at + 1]]
    rank[inside], where[inside] = table.lookup(ids[inside], ids[inside + 1])


def _merge_round(ids, owner, rank, where, table: PairTable):
    """One round: every word merges its lowest-ranked pair everywhere. Returns the arrays
    after merging and a mask of the elements of words that had nothing left to merge."""
    n = ids.size
    head = np.empty(n, dtype=bool)
    head[0] = True
    np.not_equal(owner[1:], owner[:-1], out=head[1:])
    heads = np.flatnonzero(head)
    best = np.minimum.reduceat(rank, heads)  # per word
    word_best = np.repeat(best, np.diff(np.append(heads, n)))  # per element
    finished = word_best == _NO_RANK
    at = np.flatnonzero((rank == word_best) & ~finished)
    if at.size > 1 and np.any(np.diff(at) == 1):  # runs like "aaaa" merging (a, a)
        at = _every_other_in_runs(at)
    ids = ids.copy()
    ids[at] = table.merged[where[at]]
    keep = np.ones(n, dtype=bool)
    keep[at + 1] = False
    ids, owner, rank, where, finished = ids[keep], owner[keep], rank[keep], where[keep], finished[keep]
    merged_at = at - np.arange(at.size)  # where each merged token sits now
    _look_up_pairs(ids, owner, table, np.concatenate([merged_at - 1, merged_at]), rank, where)
    return ids, owner, rank, where, finished


def _every_other_in_runs(at: np.ndarray) -> np.ndarray:
    """Of each run of consecutive positions, keep the 1st, 3rd, 5th ... (merging left to
    right never overlaps: "aaaa" with (a, a) gives "aa aa", "aaa" gives "aa a")."""
    index = np.arange(at.size)
    run_start = np.r_[True, np.diff(at) != 1]
    first = np.maximum.accumulate(np.where(run_start, index, 0))
    return at[(index - first) % 2 == 0]
