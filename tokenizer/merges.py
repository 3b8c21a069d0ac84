"""The BPE merge loop with incrementally updated pair counts.

Training repeats one step: find the most frequent adjacent pair of tokens over all words
(weighted by how often each word occurs), give it a new id, and replace it in every word::

    {"low": 5, "lower": 2, "lot": 1} as bytes    ->  most frequent pair (l, o): 8   ->  (l, o) -> lo
    {[lo, w]: 5, [lo, w, e, r]: 2, [lo, t]: 1}   ->  most frequent pair (lo, w): 7  ->  (lo, w) -> low

Recounting every pair after each merge would cost a pass over all words per merge. Instead,
words (distinct pre-tokens) are lists of token ids with a count. Pair counts live in one dict
keyed by ``a * V + b`` (an int is cheaper to hash than a tuple), an inverted index maps each
pair to the words that contain it, and a lazy max-heap yields the next merge:

* after merging ``(a, b) -> t`` only the words listed for ``(a, b)`` change; for each, the pairs
  around every merged occurrence lose the word's count and the pairs that contain ``t`` gain it;
* counts of existing pairs only ever fall (every new pair contains the new token), so a heap
  entry can only over-estimate: when the top entry is stale it is pushed back with its current
  count, and the first entry that is up to date is the true maximum;
* ties go to the lexicographically greatest ``(bytes_a, bytes_b)``: heap keys hold each token's
  bytes complemented (255 - x) plus a terminator 256, which reverses byte order, prefixes included.
"""

from __future__ import annotations

import gc
import heapq
from contextlib import contextmanager
from typing import Iterable, Iterator

import numpy as np
from tqdm import tqdm


def _reverse_key(token: bytes) -> tuple[int, ...]:
    return (*(255 - x for x in token), 256)


def initial_vocab(special_tokens: list[str]) -> dict[int, bytes]:
    """Special tokens first (ids 0..k-1), then the 256 byte values."""
    vocab = {i: token.encode("utf-8") for i, token in enumerate(special_tokens)}
    base = len(vocab)
    vocab.update({base + b: bytes([b]) for b in range(256)})
    return vocab


def _index_byte_pairs(words: list[bytes], counts: np.ndarray, base: int, stride: int):
    """Count every adjacent byte pair (weighted by word counts) and list the words holding each.

    Vectorised: all words are concatenated, pairs that straddle two words are masked out.
    Returns ``(pair_counts: dict[code, int], where: dict[code, np.ndarray of word indices])``.
    """
    lengths = np.fromiter(map(len, words), dtype=np.int64, count=len(words))
    flat = np.frombuffer(b"".join(words), dtype=np.uint8).astype(np.int64) + base
    owner = np.repeat(np.arange(len(words), dtype=np.int64), lengths)
    same_word = owner[:-1] == owner[1:]
    codes = (flat[:-1] * stride + flat[1:])[same_word]
    owners = owner[:-1][same_word]
    if codes.size == 0:
        return {}, {}
    order = np.argsort(codes, kind="stable")
    codes, owners = codes[order], owners[order]
    starts = np.flatnonzero(np.r_[True, codes[1:] != codes[:-1]])
    totals = np.add.reduceat(counts[owners], starts)
    unique = codes[starts].tolist()
    pair_counts = dict(zip(unique, totals.tolist()))
    where = dict(zip(unique, np.split(owners, starts[1:])))
    return pair_counts, where


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector: the merge loop allocates millions of lists and tuples
    but never makes a reference cycle, and the collector's repeated scans of them cost ~25%."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def learn_merges(
    word_counts: dict[bytes, int] | Iterable[tuple[bytes, int]],
    vocab_size: int,
    special_tokens: list[str],
    progress: bool = False,
) -> tuple[dict[int, bytes], list[tuple[bytes, bytes]]]:
    """Learn merges from pre-token counts until the vocab has ``vocab_size`` entries (or no pair
    is left). Returns ``(vocab, merges)`` with ids: specials, bytes, merges in order."""
    with gc_paused():
        return _learn_merges(word_counts, vocab_size, special_tokens, progress)


def _learn_merges(word_counts, vocab_size: int, special_tokens: list[str], progress: bool):
    vocab = initial_vocab(special_tokens)
    base = len(special_tokens)
    items = list(word_counts.items() if isinstance(word_counts, dict) else word_counts)
    words_bytes = [w for w, _ in items]
    counts_arr = np.fromiter((c for _, c in items), dtype=np.int64, count=len(items))
    del items
    stride = max(vocab_size, len(vocab))  # ids are < stride, so a * stride + b is unique
    pc, where = _index_byte_pairs(words_bytes, counts_arr, base, stride)
    words = [[base + x for x in w] for w in words_bytes]
    counts = counts_arr.tolist()
    del words_bytes, counts_arr
    keys = [_reverse_key(vocab[i]) for i in range(len(vocab))]
    heap = [(-c, keys[q // stride], keys[q % stride], q) for q, c in pc.items()]
    heapq.heapify(heap)
    merges: list[tuple[bytes, bytes]] = []
    num_merges = max(0, vocab_size - len(vocab))
    bar = tqdm(total=num_merges, desc="merging", unit="merge", disable=not progress, mininterval=0.5)
    for _ in range(num_merges):
        code = _pop_best(heap, pc, keys, stride)
        if code is None:
            break  # no pair left: every word is a single token
        a, b = divmod(code, stride)
        t = len(vocab)
        vocab[t] = vocab[a] + vocab[b]
        merges.append((vocab[a], vocab[b]))
        keys.append(_reverse_key(vocab[t]))
        fresh_counts, fresh_where = _apply_merge(code, a, b, t, stride, where.pop(code), words, counts, pc)
        del pc[code]
        pc.update(fresh_counts)
        where.update(fresh_where)
        key_t = keys[t]
        for q, c in fresh_counts.items():
            left, right = divmod(q, stride)
            heapq.heappush(heap, (-c, keys[left] if left != t else key_t, keys[right] if right != t else key_t, q))
        bar.update(1)
    bar.close()
    return vocab, merges


def _pop_best(heap: list, pc: dict, keys: list, stride: int) -> int | None:
    """Pop the pair with the highest count (ties: greatest bytes), refreshing stale entries."""
    while heap:
        neg, key_a, key_b, q = heap[0]
        current = pc.get(q, 0)
        if current == -neg:
            heapq.heappop(heap)
            return q if current > 0 else None
        if current > 0:
            heapq.heapreplace(heap, (-current, key_a, key_b, q))
        else:
            heapq.heappop(heap)
    return None


def _apply_merge(code, a, b, t, stride, holders, words, counts, pc):
    """Merge every ``(a, b)`` in the words listed in ``holders`` into ``t``.

    What one merge does to one word, say ``thither`` seen 3 times, merging ``(t, h) -> th``::

        word    [t, h, i, t, h, e, r]   ->   [th, i, th, e, r]
        pairs   (t, h) twice            goes away with the merge
                (h, i) -> (th, i)       the old pair loses 3, the new one gains 3
                (i, t) -> (i, th)       likewise
                (h, e) -> (th, e)       likewise
                (e, r)                  unchanged: not next to a merged occurrence

    Only pairs next to a merged occurrence change, so only those are touched: the old ones lose
    the word's count in ``pc``; the pairs containing ``t`` are returned (their counts, and the
    words holding them), since every one of them is new. Occurrences are located with
    ``list.count`` and ``list.index``, which run in C.
    """
    if isinstance(holders, np.ndarray):
        holders = holders.tolist()
    fresh_counts: dict[int, int] = {}
    fresh_where: dict[int, list[int]] = {}
    fresh_get = fresh_counts.get
    b_row, t_row = b * stride, t * stride

    def add_fresh(q: int, c: int, wi: int) -> None:
        fresh_counts[q] = fresh_get(q, 0) + c
        holders_q = fresh_where.get(q)
        if holders_q is None:
            fresh_where[q] = [wi]
        elif holders_q[-1] != wi:
            holders_q.append(wi)

    for wi in holders:
        w = words[wi]
        left = w.count(a)  # occurrences of `a` still to visit (counting avoids raising ValueError)
        if not left:
            continue  # stale entry: an earlier merge already consumed the pair in this word
        n = len(w)
        c = counts[wi]
        out = []
        i = search = 0
        while left:
            j = w.index(a, search)
            left -= 1
            if j + 1 < n and w[j + 1] == b:
                if a == b:
                    left -= 1  # w[j + 1] is an `a` too, and it is consumed
                if j > i:
                    out += w[i:j]
                if j > 0:
                    if j != i:  # j == i > 0: the left pair was counted as the previous right pair
                        q = w[j - 1] * stride + a
                        if q != code:
                            pc[q] -= c
                    add_fresh(out[-1] * stride + t, c, wi)  # out[-1] may be t itself
                if j + 2 < n:
                    y = w[j + 2]
                    q = b_row + y
                    if q != code:
                        pc[q] -= c
                    if not (y == a and j + 3 < n and w[j + 3] == b):  # next symbol stays as is
                        add_fresh(t_row + y, c, wi)
                out.append(t)
                i = search = j + 2
            else:
                search = j + 1
        if i == 0:
            continue  # `a` occurs but never followed by `b`
        if i < n:
            out += w[i:]
        words[wi] = out
    return fresh_counts, fresh_where
