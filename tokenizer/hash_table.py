"""An open-addressing hash table that numpy probes for many keys at once.

Keys are 64-bit integers, values int32. Python dicts answer one key per call (~50 ns plus
building the key object); encoding asks about hundreds of thousands of keys per block, so one
vectorised probe per round of linear probing costs far less. Used for merge ranks
(``bpe_batch.PairTable``) and for the slots of short pre-tokens (``pretoken_ids``).
"""

from __future__ import annotations

import numpy as np

MISSING = -1  # what ``lookup`` returns for an absent key
_FIBONACCI = np.uint64(0x9E3779B97F4A7C15)  # multiplicative hashing
_VECTOR_PROBES_MIN = 64  # fewer keys still probing than this go one by one


class HashTable:
    """``key -> value`` with linear probing, at most half full (it doubles when needed)."""

    def __init__(self, capacity: int = 16):
        self.size = 0
        self._allocate(max(16, 1 << (2 * capacity - 1).bit_length()))

    def _allocate(self, slots: int) -> None:
        self.mask = slots - 1
        self.shift = np.uint64(64 - (slots.bit_length() - 1))
        self.keys = np.zeros(slots, dtype=np.uint64)
        self.values = np.full(slots, MISSING, dtype=np.int32)  # MISSING marks an empty slot

    def _home(self, keys: np.ndarray) -> np.ndarray:
        return ((keys * _FIBONACCI) >> self.shift).astype(np.int64)

    def insert(self, keys: np.ndarray, values: np.ndarray) -> None:
        """Add keys that are absent and distinct from each other (the caller knows)."""
        if 2 * (self.size + keys.size) > self.mask + 1:
            self._grow(self.size + keys.size)
        home = self._home(keys)
        waiting = np.arange(keys.size)
        probe = 0
        while waiting.size:
            slot = (home[waiting] + probe) & self.mask
            free = self.values[slot] == MISSING
            slot, winners = np.unique(slot[free], return_index=True)  # one key per free slot
            winners = waiting[free][winners]
            self.keys[slot], self.values[slot] = keys[winners], values[winners]
            waiting = np.setdiff1d(waiting, winners, assume_unique=True)
            probe += 1
        self.size += keys.size

    def _grow(self, needed: int) -> None:
        live = self.values != MISSING
        keys, values = self.keys[live], self.values[live]
        self._allocate(1 << (4 * needed - 1).bit_length())
        self.size = 0
        self.insert(keys, values)

    def lookup(self, keys: np.ndarray) -> np.ndarray:
        """The value of each key, ``MISSING`` where absent."""
        slot = self._home(keys)
        found = self.values[slot]
        # (k,): the keys whose home slot holds another key: probe on
        todo = np.flatnonzero((found != MISSING) & (self.keys[slot] != keys))
        found[todo] = MISSING
        probe = 1
        while todo.size > _VECTOR_PROBES_MIN:
            at = (slot[todo] + probe) & self.mask
            value = self.values[at]
            hit = (value != MISSING) & (self.keys[at] == keys[todo])
            found[todo[hit]] = value[hit]
            todo = todo[~hit & (value != MISSING)]  # an empty slot ends the search
            probe += 1
        for i in todo.tolist():  # the few keys in long clusters: one at a time beats a round each
            found[i] = self._probe_one(int(keys[i]), int(slot[i]) + probe)
        return found

    def _probe_one(self, key: int, slot: int) -> int:
        while True:
            slot &= self.mask
            value = int(self.values[slot])
            if value == MISSING or int(self.keys[slot]) == key:
                return value
            slot += 1

    def clear(self) -> None:
        self.size = 0
        self.values.fill(MISSING)
