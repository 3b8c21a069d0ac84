"""The shared corpora, decompressed into a cache outside the repository, and the cache itself.

The shared material (``../shared`` next to the repository, or ``$TRITONLM_SHARED``) is never
needed to install or run the product: callers that use it must handle ``SharedDataMissing``
(tests skip on it, benchmarks report it).
"""

from __future__ import annotations

import hashlib
import lzma
import os
from pathlib import Path

from tqdm import tqdm

from tritonlm.util.atomic import atomic_path, write_bytes_atomic

REPO_ROOT = Path(__file__).resolve().parent.parent


class SharedDataMissing(FileNotFoundError):
    """The shared corpora or fixtures are not present on this machine."""


def shared_dir() -> Path:
    """The shared folder: ``$TRITONLM_SHARED`` if set, else ``../shared`` beside the repository."""
    configured = os.environ.get("TRITONLM_SHARED")
    path = Path(configured) if configured else REPO_ROOT.parent / "shared"
    if not path.is_dir():
        raise SharedDataMissing(
            f"shared data folder not found at {path}; set TRITONLM_SHARED to its location"
        )
    return path


def fixture_path(name: str) -> Path:
    """Path of a reference file in ``shared/fixtures`` (raises ``SharedDataMissing``)."""
    path = shared_dir() / "fixtures" / name
    if not path.is_file():
        raise SharedDataMissing(f"fixture {name!r} not found in {path.parent}")
    return path


def cache_dir() -> Path:
    """Where decompressed corpora live: ``$TRITONLM_CACHE`` or ``~/.cache/tritonlm``."""
    path = Path(os.environ.get("TRITONLM_CACHE", Path.home() / ".cache" / "tritonlm"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def text_cache() -> Path:
    """Where generated stories and the heads of long texts are kept: ``<cache>/leaderboard`` (the
    folder the leaderboard has always used, so existing caches stay valid)."""
    path = cache_dir() / "leaderboard"
    path.mkdir(parents=True, exist_ok=True)
    return path


def file_sha256(path: Path, block_size: int = 1 << 22) -> str:
    """SHA-256 of a file's content (hex), read in blocks: the key of every content-addressed cache
    entry and the check of every download."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(block_size):
            digest.update(block)
    return digest.hexdigest()


def head_of_file(path: Path, max_bytes: int) -> Path:
    """``path`` itself, or a cached copy of its first ``max_bytes`` cut back to a line end (so no
    UTF-8 character or line is split)."""
    if max_bytes <= 0 or path.stat().st_size <= max_bytes:
        return path
    target = text_cache() / "heads" / f"{file_sha256(path)[:16]}-first{max_bytes}.txt"
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "rb") as f:
        block = f.read(max_bytes)
    cut = block.rfind(b"\n")
    write_bytes_atomic(target, block[: cut + 1] if cut > 0 else block)
    return target


def corpus_files(name: str) -> list[Path]:
    """The files of a shared corpus (``"gutenberg_train+imdb_train"`` names two, in order); raises
    ``SharedDataMissing`` when one is not there."""
    return [_corpus_file(part) for part in name.split("+")]


def _corpus_file(name: str) -> Path:
    data = shared_dir() / "data"
    for candidate in (data / f"{name}.txt.xz", data / f"{name}.txt", data / name):
        if candidate.is_file():
            return candidate
    raise SharedDataMissing(f"corpus {name!r} not found in {data}")


def shared_corpus(name: str, max_bytes: int | None = None) -> Path:
    """Decompressed text of a shared corpus (e.g. ``"gutenberg_train"``), cached on disk.

    ``"gutenberg_train+imdb_train"`` names the corpora one after the other, in that order (a
    newline is put between two parts when the first does not end with one). With ``max_bytes``
    the file holds only the first ``max_bytes`` bytes, cut back to the last newline so no UTF-8
    character or line is split. The cache is written atomically, so an interrupted
    decompression never leaves a truncated file behind.
    """
    target = _cached_corpus(name, max_bytes)
    if target.is_file():
        return target
    sources = corpus_files(name)
    limit = max_bytes if max_bytes is not None else float("inf")
    with atomic_path(target) as tmp:
        with open(tmp, "wb") as dst, tqdm(desc=f"decompressing {name}", unit="B", unit_scale=True,
                                          leave=False) as bar:
            written, last = 0, b"\n"
            for source in sources:
                if last != b"\n" and written < limit:
                    written += dst.write(b"\n")
                written, last = _copy_text(source, dst, written, limit, bar)
        if max_bytes is not None:
            _truncate_to_last_newline(tmp)
    return target


def check_corpus(name: str, max_bytes: int | None = None) -> None:
    """Raise ``SharedDataMissing`` unless ``shared_corpus(name, max_bytes)`` can give its text
    (cached already, or its files present): a cheap check, nothing is decompressed."""
    if not _cached_corpus(name, max_bytes).is_file():
        corpus_files(name)


def _cached_corpus(name: str, max_bytes: int | None) -> Path:
    suffix = f".first{max_bytes}" if max_bytes is not None else ""
    return cache_dir() / f"{name}{suffix}.txt"


def _copy_text(source: Path, dst, written: int, limit: float, bar: tqdm) -> tuple[int, bytes]:
    """Append ``source`` (decompressed if .xz) to ``dst`` until ``limit`` bytes are written in
    all; the new total and the last byte written."""
    opener = lzma.open if source.suffix == ".xz" else open
    last = b""
    with opener(source, "rb") as src:
        while written < limit:
            block = src.read(int(min(1 << 22, limit - written)))
            if not block:
                break
            dst.write(block)
            written += len(block)
            last = block[-1:]
            bar.update(len(block))
    return written, last


def _truncate_to_last_newline(path: Path) -> None:
    size = path.stat().st_size
    with open(path, "rb+") as f:
        tail_start = max(0, size - (1 << 20))
        f.seek(tail_start)
        tail = f.read()
        cut = tail.rfind(b"\n")
        if cut >= 0:
            f.truncate(tail_start + cut + 1)

