"""Cut a file into chunks at boundaries, streaming, so workers can process them independently."""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

from tritonlm.tokenizer.pretokenize import last_boundary, max_special_length, special_regex

DEFAULT_CHUNK_BYTES = 4 << 20  # training: fewer, larger count dicts to merge
ENCODE_CHUNK_BYTES = 1 << 20  # encoding: small chunks keep all workers busy to the end


@dataclass(frozen=True)
class Chunk:
    """Bytes ``[start, end)`` of ``path``; both ends are boundaries (see ``pretokenize``)."""

    path: str
    start: int
    end: int


def plan_chunks(
    path: str | os.PathLike, special_tokens: Sequence[str], chunk_bytes: int = DEFAULT_CHUNK_BYTES
) -> Iterator[Chunk]:
    """Stream ``path`` block by block and yield chunks of about ``chunk_bytes`` that end at a
    special token when one is near the block end, else at a whitespace boundary. Only one
    block is held in memory at a time."""
    if chunk_bytes < 1:
        raise ValueError(f"chunk_bytes must be positive, got {chunk_bytes}")
    specials = special_regex(special_tokens, as_bytes=True)
    max_special = max_special_length(special_tokens, as_bytes=True)
    size = Path(path).stat().st_size
    start = 0
    with open(path, "rb") as f:
        while start < size:
            want = chunk_bytes
            while True:
                f.seek(start)
                block = f.read(want)
                if start + len(block) >= size:
                    cut = len(block)
                    break
                cut = last_boundary(block, specials, max_special)
                if cut > 0:
                    break
                want *= 2  # no boundary in this block (e.g. one enormous word): look further
            yield Chunk(str(path), start, start + cut)
            start += cut


def _ignore_sigint() -> None:
    # Workers leave Ctrl-C to the parent, which terminates them; this avoids a traceback per worker.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def default_workers() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def map_chunks(
    fn: Callable, chunks: Iterable, num_workers: int | None, ordered: bool, initializer=None, initargs=()
) -> Iterator:
    """``fn`` over ``chunks``, in ``num_workers`` processes (in this process when 1). On any
    error or Ctrl-C the workers are terminated and joined before the exception propagates,
    so no process outlives the call."""
    workers = default_workers() if num_workers is None else int(num_workers)
    if workers < 1:
        raise ValueError(f"num_workers must be at least 1, got {workers}")
    if workers == 1:
        if initializer is not None:
            initializer(*initargs)
        yield from map(fn, chunks)
        return
    method = "fork" if "fork" in mp.get_all_start_methods() else "spawn"
    ctx = mp.get_context(method)

    pool = ctx.Pool(workers, initializer=_worker_init, initargs=(initializer, initargs))
    try:
        results = pool.imap(fn, chunks) if ordered else pool.imap_unordered(fn, chunks)
        yield from results
        pool.close()
    finally:
        pool.terminate()
        pool.join()


def _worker_init(initializer, initargs) -> None:
    _ignore_sigint()
    if initializer is not None:
        initializer(*initargs)
