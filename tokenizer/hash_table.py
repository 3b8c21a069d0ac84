"""An open-addressing hash table that numpy probes for many keys at once.

Keys are 64-bit integers, or pairs of them (``low``, ``high``: 16 bytes of text), values
int32. Python dicts answer one key per call (~50 ns plus building the key object); encoding
asks about hundreds of thousands of keys per block, so one vectorised probe per round of
linear probing costs far less. Used for merge ranks
(``bpe_batch.PairTable``) and for the slots of short pre-tokens (``pretoken_ids``).
"""

from __future__ import annotations

import numpy as np

MISSING = -1  # what ``lookup`` returns for an absent key
_FIBONACCI = np.uint64(0x9E3779B97F4A7C15)  # multiplicative hashing
_HIGH_MIX = np.uint64(0xC2B2AE3D27D4EB4F)
_VECTOR_PROBES_MIN = 64  # fewer keys still probing than this go one by one


class HashTable:
    """``key -> value`` with linear probing, at most half full (it doubles when needed). With
    ``wide=True`` a key is a pair of 64-bit words: every method takes ``high`` beside ``keys``."""

    def __init__(self, capacity: int = 16, wide: bool = False):
        self.wide = wide
        self.size = 0
        self._allocate(max(16, 1 << (2 * capacity - 1).bit_length()))

    def _allocate(self, slots: int) -> None:
        self.mask = slots - 1
        self.shift = np.uint64(64 - (slots.bit_length() - 1))
        self.keys = np.zeros(slots, dtype=np.uint64)
        self.high = np.zeros(slots if self.wide else 0, dtype=np.uint64)
        self.values = np.full(slots, MISSING, dtype=np.int32)  # MISSING marks an empty slot

    def _home(self, keys: np.ndarray, high: np.ndarray | None) -> np.ndarray:
        mixed = keys * _FIBONACCI if high is None else (keys ^ high * _HIGH_MIX) * _FIBONACCI
        return (mixed >> self.shift).astype(np.int64)

    def _check(self, high: np.ndarray | None) -> None:
        if (high is not None) != self.wide:
            raise ValueError("a wide table takes high words with its keys, a narrow one takes None")

    def _same(self, slot: np.ndarray, keys: np.ndarray, high: np.ndarray | None) -> np.ndarray:
        same = self.keys[slot] == keys
        if high is not None:
            same &= self.high[slot] == high
        return same

    def insert(self, keys: np.ndarray, values: np.ndarray, high: np.ndarray | None = None) -> None:
        """Add keys that are absent and distinct from each other (the caller knows)."""
        self._check(high)
        if 2 * (self.size + keys.size) > self.mask + 1:
            self._grow(self.size + keys.size)
        home = self._home(keys, high)
        waiting = np.arange(keys.size)
        probe = 0
        while waiting.size:
            slot = (home[waiting] + probe) & self.mask
            free = self.values[slot] == MISSING
            slot, winners = np.unique(slot[free], return_index=True)  # one key per free slot
            winners = waiting[free][winners]
            self.keys[slot], self.values[slot] = keys[winners], values[winners]
            if high is not None:
                self.high[slot] = high[winners]
            waiting = np.setdiff1d(waiting, winners, assume_unique=True)
            probe += 1
        self.size += keys.size

    def _grow(self, needed: int) -> None:
        live = self.values != MISSING
        keys, values = self.keys[live], self.values[live]
        high = self.high[live] if self.wide else None
        self._allocate(1 << (4 * needed - 1).bit_length())
        self.size = 0
        self.insert(keys, values, high)

    def lookup(self, keys: np.ndarray, high: np.ndarray | None = None) -> np.ndarray:
        """The value of each key, ``MISSING`` where absent."""
        self._check(high)
        slot = self._home(keys, high)
        found = self.values[slot]
        # (k,): the keys whose home slot holds another key: probe on
        todo = np.flatnonzero((found != MISSING) & ~self._same(slot, keys, high))
        found[todo] = MISSING
        probe = 1
        while todo.size > _VECTOR_PROBES_MIN:
            at = (slot[todo] + probe) & self.mask
            value = self.values[at]
            hit = (value != MISSING) & self._same(at, keys[todo], None if high is None else high[todo])
            found[todo[hit]] = value[hit]
            todo = todo[~hit & (value != MISSING)]  # an empty slot ends the search
            probe += 1
        for i in todo.tolist():  # the few keys in long clusters: one at a time beats a round each
            found[i] = self._probe_one(int(keys[i]), 0 if high is None else int(high[i]), int(slot[i]) + probe)
        return found

    def _probe_one(self, key: int, high: int, slot: int) -> int:
        while True:
            slot &= self.mask
            value = int(self.values[slot])
            if value == MISSING or (int(self.keys[slot]) == key and (not self.wide or int(self.high[slot]) == high)):
                return value
            slot += 1

    def clear(self) -> None:
        self.size = 0
        self.values.fill(MISSING)
