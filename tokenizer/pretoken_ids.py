"""The ids of every pre-token the encoder has met, kept in numpy arrays.

Encoding a block meets ~15k distinct pre-tokens per million characters, most of them seen
before. A dict keyed by text would need a Python string for each of them, built from the
block; here short pre-tokens (the exact keys of ``vector_pretokenize.token_keys``) are looked
up in a numpy hash table, all at once, and only the others and the new ones become strings.
The ids live back to back in one array, so laying out a block's ids is a single gather.
"""

from __future__ import annotations

from itertools import repeat
from typing import Callable, Sequence

import numpy as np

from tritonlm.tokenizer import vector_pretokenize as vp
from tritonlm.tokenizer.hash_table import MISSING, HashTable

Merger = Callable[[list[str]], tuple[np.ndarray, np.ndarray]]  # texts -> (ids back to back, counts)


class PretokenIds:
    """Pre-token -> slot -> ids. Slots ``0..len(separators) - 1`` hold what each separator code
    emits (``vp.SEPARATOR_BASE + i`` -> ``separators[i]``); the rest are learnt. Holds at most
    ``limit`` learnt pre-tokens: past that it starts afresh (bounded memory on endless streams)."""

    def __init__(self, separators: Sequence[tuple[int, ...]], limit: int):
        self.limit = limit
        self._separators = list(separators)
        self._short = HashTable(wide=True)  # key (the bytes) -> slot
        self._long: dict[str, int] = {}  # text -> slot, for the pre-tokens without exact keys
        self.clear()

    def clear(self) -> None:
        self._short.clear()
        self._long.clear()
        self._ids = np.empty(1 << 16, dtype=np.int64)  # the ids of every slot, back to back
        self._offset = np.empty(1 << 12, dtype=np.int64)  # where each slot's ids start
        self._count = np.empty(1 << 12, dtype=np.int32)  # how many ids each slot has
        self._used = self._slots = 0
        flat = [i for ids in self._separators for i in ids]
        self._append(np.array(flat, dtype=np.int32), np.array(list(map(len, self._separators)), dtype=np.int32))

    def __len__(self) -> int:
        """Pre-tokens learnt (separators not counted)."""
        return self._slots - len(self._separators)

    def slots(self, block: str, cp: np.ndarray, tokens: vp.Pretokens, merge: Merger) -> np.ndarray:
        """The slot of every pre-token of ``block`` (code points ``cp``), learning the new ones
        with ``merge``. Raises ``vp.HashCollision`` (from grouping) like ``distinct_pretokens``."""
        first = cp[tokens.starts]
        slots = np.full(first.size, MISSING, dtype=np.int64)
        separator = np.flatnonzero(first >= vp.SEPARATOR_BASE)
        slots[separator] = first[separator] - vp.SEPARATOR_BASE
        short = np.flatnonzero(tokens.exact)  # separators are never exact
        slots[short] = self._short.lookup(tokens.keys[short], tokens.high[short])
        rest = np.flatnonzero(slots == MISSING)  # long, wide or new: grouped, then resolved
        if rest.size == 0:
            return slots
        others = tokens.take(rest)
        first_of, inverse, _ = vp.group_pretokens(cp, others)
        distinct = others.take(first_of)
        if len(self) + first_of.size > self.limit and len(self):
            self.clear()  # bounded memory: start afresh, then look this block up again
            return self.slots(block, cp, tokens, merge)
        slots[rest] = self._resolve(block, distinct, merge)[inverse]
        return slots

    def _resolve(self, block: str, distinct: vp.Pretokens, merge: Merger) -> np.ndarray:
        """Slots of distinct pre-tokens that the short-key table lacks: long ones known by
        text, the others new (merged, then stored)."""
        texts = vp.span_texts(block, distinct.starts, distinct.starts + distinct.lengths)
        found = np.full(len(texts), MISSING, dtype=np.int64)  # a short key missing from the table is new
        long = np.flatnonzero(~distinct.exact)
        found[long] = np.fromiter(map(self._long.get, map(texts.__getitem__, long.tolist()), repeat(MISSING)),
                                  dtype=np.int64, count=long.size)
        new = np.flatnonzero(found == MISSING)
        if new.size == 0:
            return found
        found[new] = slots = self._append(*merge(list(map(texts.__getitem__, new.tolist()))))
        is_short = distinct.exact[new]
        short = new[is_short]
        self._short.insert(distinct.keys[short], slots[is_short].astype(np.int32), distinct.high[short])
        self._long.update(zip(map(texts.__getitem__, new[~is_short].tolist()), slots[~is_short].tolist()))
        return found

    def _append(self, ids: np.ndarray, counts: np.ndarray) -> np.ndarray:
        """Store the ids of new slots (``counts`` ids each); returns their slot numbers."""
        self._ids = _room_for(self._ids, self._used + ids.size)
        self._offset = _room_for(self._offset, self._slots + counts.size)
        self._count = _room_for(self._count, self._slots + counts.size)
        self._ids[self._used : self._used + ids.size] = ids
        new = np.arange(self._slots, self._slots + counts.size)
        self._offset[new] = self._used + np.cumsum(counts) - counts
        self._count[new] = counts
        self._used += ids.size
        self._slots += counts.size
        return new

    def lay_out(self, slots: np.ndarray) -> np.ndarray:
        """``concat(ids of slot s for s in slots)`` as one gather."""
        counts = self._count[slots]  # ids emitted by each pre-token in order
        return self._ids[vp.span_positions(self._offset[slots], counts, np.cumsum(counts) - counts)]


def _room_for(array: np.ndarray, size: int) -> np.ndarray:
    """``array``, or a copy at least twice as long when it holds fewer than ``size`` items."""
    if size <= array.size:
        return array
    bigger = np.empty(max(size, 2 * array.size), dtype=array.dtype)
    bigger[: array.size] = array
    return bigger
