"""The numpy hash table and the pre-token id store behind the fast encoding path."""

from __future__ import annotations

import numpy as np
import pytest

import tritonlm.tokenizer.hash_table as hash_table
from tritonlm.tokenizer import vector_pretokenize as vp
from tritonlm.tokenizer.hash_table import MISSING, HashTable
from tritonlm.tokenizer.pretoken_ids import PretokenIds


@pytest.mark.parametrize("wide", [False, True], ids=["64-bit keys", "128-bit keys"])
@pytest.mark.parametrize("probe_one_by_one_below", [0, 64, 10**9], ids=["vector", "mixed", "one by one"])
def test_hash_table_agrees_with_a_dict_through_growth(monkeypatch, probe_one_by_one_below, wide):
    monkeypatch.setattr(hash_table, "_VECTOR_PROBES_MIN", probe_one_by_one_below)
    rng = np.random.default_rng(0)
    table, reference = HashTable(wide=wide), {}
    # random 64-bit keys, consecutive ones (clusters) and small ones, added in several rounds;
    # wide keys pair them with high words that repeat, so only both words tell keys apart
    pools = [rng.integers(0, 2**63, 3000, dtype=np.uint64) * np.uint64(2) + np.uint64(1),
             np.arange(10**6, 10**6 + 3000, dtype=np.uint64), np.arange(3000, dtype=np.uint64)]
    low = np.unique(np.concatenate(pools))
    high = rng.integers(0, 3, low.size, dtype=np.uint64) if wide else None
    if wide:
        low, high = np.concatenate([low, low]), np.concatenate([high, high + np.uint64(3)])
    order = rng.permutation(low.size)
    low, high = low[order], None if high is None else high[order]
    both = (lambda k, h: list(zip(k.tolist(), h.tolist()))) if wide else (lambda k, h: k.tolist())
    for batch in np.array_split(np.arange(low.size), 7):
        values = rng.integers(0, 2**31 - 1, batch.size).astype(np.int32)
        batch_high = None if high is None else high[batch]
        table.insert(low[batch], values, batch_high)
        reference.update(zip(both(low[batch], batch_high), values.tolist()))
        absent = rng.integers(0, 2**64 - 1, 500, dtype=np.uint64, endpoint=True)
        queries = np.concatenate([low, absent])
        query_high = None if high is None else np.concatenate([high, high[:500] + np.uint64(7)])
        expected = [reference.get(k, MISSING) for k in both(queries, query_high)]
        assert table.lookup(queries, query_high).tolist() == expected
        assert table.size == len(reference) and 2 * table.size <= table.mask + 1  # at most half full
    table.clear()
    assert (table.lookup(low, high) == MISSING).all()
    with pytest.raises(ValueError, match="high words"):
        table.lookup(low, None if wide else low)  # the wrong kind of key


def test_pretoken_ids_lay_out_the_ids_of_each_slot():
    ids = PretokenIds(separators=[(), (7,)], limit=100)
    text = "the cat, the hat<s>the end"
    cp = vp.codepoints(text)
    cp = cp.copy()
    cp[16:19] = vp.SEPARATOR_BASE
    cp[16] = vp.SEPARATOR_BASE + 1  # "<s>" stands for special token 0, id 7
    tokens = vp.split_pretokens(cp)
    merged_texts: list[list[str]] = []

    def merge(texts):  # a stand-in BPE: the code points of each text, plus 1000
        merged_texts.append(texts)
        flat = np.array([1000 + ord(c) for t in texts for c in t], dtype=np.int64)
        return flat, np.array([len(t) for t in texts], dtype=np.int32)

    slots = ids.slots(text, cp, tokens, merge)
    def stand_in(*texts):
        return [1000 + ord(c) for t in texts for c in t]

    expected = stand_in("the", " cat", ",", " the", " hat") + [7] + stand_in("the", " end")
    assert ids.lay_out(slots).tolist() == expected
    assert sorted(merged_texts[0]) == sorted({"the", " cat", ",", " the", " hat", " end"})  # each new one once
    assert len(ids) == 6
    assert ids.lay_out(ids.slots(text, cp, tokens, merge)).tolist() == expected and len(merged_texts) == 1  # cached
    ids.clear()
    assert len(ids) == 0 and ids.lay_out(ids.slots(text, cp, tokens, merge)).tolist() == expected
