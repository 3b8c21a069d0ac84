"""``train_bpe``: count pre-tokens in parallel over streamed chunks, then learn the merges."""

from __future__ import annotations

import os
from collections import Counter
from typing import Sequence

from tqdm import tqdm

from tritonlm.tokenizer import vector_pretokenize
from tritonlm.tokenizer.chunks import DEFAULT_CHUNK_BYTES, Chunk, map_chunks, plan_chunks
from tritonlm.tokenizer.inputs import check_text_file, read_chunk
from tritonlm.tokenizer.merges import learn_merges
from tritonlm.tokenizer.pretokenize import max_special_length, special_regex, validate_special_tokens

_worker_specials: tuple = (None, 0)  # (special-token regex, longest special), set per worker


def _set_worker_specials(special_tokens: list[str]) -> None:
    global _worker_specials
    _worker_specials = (special_regex(special_tokens), max_special_length(special_tokens))


def _count_chunk(chunk: Chunk) -> tuple[dict[str, int], int]:
    """Pre-token counts of one chunk (special tokens removed) and the chunk's size in bytes."""
    text = read_chunk(chunk.path, chunk.start, chunk.end)
    return vector_pretokenize.count_pretokens(text, *_worker_specials), chunk.end - chunk.start


def check_vocab_size(vocab_size: int, special_tokens: Sequence[str]) -> None:
    minimum = 256 + len(special_tokens)
    if not isinstance(vocab_size, int) or vocab_size < minimum:
        raise ValueError(
            f"vocab_size {vocab_size} is too small: it must be at least 256 byte tokens + "
            f"{len(special_tokens)} special token(s) = {minimum}"
        )


def count_pretokens(
    input_path: str | os.PathLike,
    special_tokens: Sequence[str] = (),
    num_workers: int | None = None,
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
    progress: bool = False,
) -> Counter[str]:
    """Counts of GPT-2 pre-tokens over the file, special tokens removed (they split the text).

    The file is cut into chunks at boundaries and streamed to ``num_workers`` processes
    (default: all usable cores); memory holds the distinct pre-tokens, never the whole file.
    """
    path = check_text_file(input_path)
    specials = validate_special_tokens(special_tokens)
    total: Counter[str] = Counter()
    size = path.stat().st_size
    with tqdm(total=size, desc="pre-tokenising", unit="B", unit_scale=True, disable=not progress) as bar:
        chunks = plan_chunks(path, specials, chunk_bytes)
        for counts, nbytes in map_chunks(
            _count_chunk, chunks, num_workers, ordered=False,
            initializer=_set_worker_specials, initargs=(specials,),
        ):
            if total:
                total.update(counts)
            else:
                total = counts
            bar.update(nbytes)
    return total


def train_bpe(
    input_path: str | os.PathLike,
    vocab_size: int,
    special_tokens: Sequence[str] | None = None,
    num_workers: int | None = None,
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
    progress: bool = False,
) -> tuple[dict[int, bytes], list[tuple[bytes, bytes]]]:
    """Train a byte-level BPE tokenizer on a UTF-8 text file.

    Returns ``(vocab, merges)``: ``vocab`` maps ids ``0..len-1`` to bytes (special tokens, then
    the 256 bytes, then one token per merge); ``merges`` lists the merged byte pairs in order.
    Each step merges the most frequent adjacent pair within pre-tokens (ties: the
    lexicographically greatest pair of bytes); training stops early when no pair is left.
    """
    specials = validate_special_tokens(special_tokens)
    check_vocab_size(vocab_size, specials)
    counts = count_pretokens(input_path, specials, num_workers, chunk_bytes, progress)
    word_counts = {word.encode("utf-8"): n for word, n in counts.items()}
    del counts
    return learn_merges(word_counts, vocab_size, specials, progress=progress)
