"""Token files: a flat array of token ids behind a 64-byte header that records how to read it,
and what made it.

Layout (little-endian)::

    bytes 0..7    magic b"TLMTOKS1"
    bytes 8..11   item size in bytes (2 -> uint16, 4 -> uint32)
    bytes 12..19  vocab size (every id is < vocab size)
    bytes 20..27  number of tokens
    bytes 28..31  length M of the metadata block (0: none)
    bytes 32..63  zero padding
    bytes 64..    the metadata: M bytes of UTF-8 JSON (e.g. the tokenizer that made the ids),
                  zero-padded to a multiple of 64
    then          the ids

uint16 is used when every id fits (vocab size <= 65,536), uint32 otherwise. Because the dtype,
the vocab size and the tokenizer travel with the data, a loader can neither misread the ids nor
silently accept ids from a different tokenizer, and a training run can find the tokenizer its
data came from. Files without metadata (M = 0) are the format's first version, read unchanged.
"""

from __future__ import annotations

import json
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import numpy as np

from tritonlm.util.atomic import atomic_path

MAGIC = b"TLMTOKS1"
HEADER_SIZE = 64
_HEADER = struct.Struct("<8sIQQI")


class TokenFileError(ValueError):
    """A token file that is missing, corrupt, truncated or not a token file at all."""


@dataclass(frozen=True)
class TokenFileInfo:
    dtype: np.dtype
    vocab_size: int
    num_tokens: int
    metadata: dict = field(default_factory=dict)  # what made the file (e.g. "tokenizer"); {} if not recorded
    data_offset: int = HEADER_SIZE  # where the ids start

    @property
    def tokenizer(self) -> dict | None:
        """The record of the tokenizer that made the ids (``path``, ``sha256``, ``vocab_size``), if any."""
        return self.metadata.get("tokenizer")


def dtype_for_vocab(vocab_size: int) -> np.dtype:
    """Smallest unsigned dtype that holds every id of a vocabulary of ``vocab_size``."""
    if vocab_size <= 0:
        raise ValueError(f"vocab_size must be positive, got {vocab_size}")
    if vocab_size <= 1 << 16:
        return np.dtype("<u2")
    if vocab_size <= 1 << 32:
        return np.dtype("<u4")
    raise ValueError(f"vocab_size {vocab_size} does not fit in uint32 token ids")


def _pack_header(dtype: np.dtype, vocab_size: int, num_tokens: int, metadata: bytes = b"") -> bytes:
    """The header and the metadata block, zero-padded so the ids start at a multiple of 64."""
    header = _HEADER.pack(MAGIC, dtype.itemsize, vocab_size, num_tokens, len(metadata)).ljust(HEADER_SIZE, b"\0")
    return header + metadata.ljust(_padded(len(metadata)), b"\0")


def _padded(size: int) -> int:
    return -(-size // HEADER_SIZE) * HEADER_SIZE


class TokenFileWriter:
    """Streams ids into a token file; the file appears (atomically) only on a clean close.

    Use as a context manager. If the block raises, the partial temp file is removed and any
    existing file at ``path`` is left untouched.
    """

    def __init__(self, path: str | os.PathLike, vocab_size: int, metadata: dict | None = None):
        self.path = Path(path)
        self.vocab_size = int(vocab_size)
        self.dtype = dtype_for_vocab(self.vocab_size)
        self.metadata = json.dumps(metadata, sort_keys=True).encode("utf-8") if metadata else b""
        self.num_tokens = 0
        self._atomic = atomic_path(self.path)
        self._file = None

    def __enter__(self) -> "TokenFileWriter":
        self._file = open(self._atomic.__enter__(), "wb")
        self._file.write(_pack_header(self.dtype, self.vocab_size, 0, self.metadata))
        return self

    def write(self, ids: Iterable[int] | np.ndarray) -> None:
        arr = np.asarray(ids if isinstance(ids, np.ndarray) else list(ids))
        if arr.size == 0:
            return
        if arr.min() < 0 or arr.max() >= self.vocab_size:
            bad = int(arr.max() if arr.max() >= self.vocab_size else arr.min())
            raise TokenFileError(
                f"token id {bad} is outside the vocabulary [0, {self.vocab_size}) of {self.path}"
            )
        try:
            self._file.write(arr.astype(self.dtype, copy=False).tobytes())
        except OSError as e:
            raise self._write_failed(e) from e
        self.num_tokens += int(arr.size)

    def _write_failed(self, error: OSError) -> TokenFileError:
        return TokenFileError(f"could not write the token file {self.path} ({error}); nothing was written there "
                              "(a previous file at that path is intact): free some space and encode again")

    def __exit__(self, exc_type, exc, tb) -> None:
        error = (exc_type, exc, tb)
        try:
            if exc_type is None:
                self._file.seek(0)
                self._file.write(_pack_header(self.dtype, self.vocab_size, self.num_tokens, self.metadata))
        except BaseException as e:
            error = (type(e), e, e.__traceback__)
            raise
        finally:
            self._file.close()
            try:
                self._atomic.__exit__(*error)  # renamed into place, or removed after an error
            except OSError as e:
                if error[0] is not None:
                    raise
                raise self._write_failed(e) from e


def write_tokens(path: str | os.PathLike, ids: Iterable[int] | np.ndarray, vocab_size: int,
                 metadata: dict | None = None) -> Path:
    """Write ``ids`` as a token file at ``path`` (atomically), with ``metadata`` (JSON) in its
    header, and return the path."""
    with TokenFileWriter(path, vocab_size, metadata) as writer:
        writer.write(ids)
    return writer.path


def read_token_header(path: str | os.PathLike) -> TokenFileInfo:
    """Parse and validate the header of a token file, checking the size matches."""
    path = Path(path)
    if not path.is_file():
        raise TokenFileError(
            f"token file {path} does not exist; create one with "
            "`python -m tokenizer.encode TEXT --tokenizer DIR --out FILE`"
        )
    with open(path, "rb") as f:
        raw = f.read(HEADER_SIZE)
    if len(raw) < HEADER_SIZE or raw[:8] != MAGIC:
        raise TokenFileError(
            f"{path} is not a tritonlm token file (missing the {MAGIC!r} header); "
            "create one with `python -m tokenizer.encode`"
        )
    _, itemsize, vocab_size, num_tokens, metadata_size = _HEADER.unpack(raw[: _HEADER.size])
    if itemsize not in (2, 4):
        raise TokenFileError(f"{path} has an unsupported item size {itemsize} (expected 2 or 4)")
    dtype = np.dtype("<u2" if itemsize == 2 else "<u4")
    data_offset = HEADER_SIZE + _padded(metadata_size)
    expected = data_offset + num_tokens * itemsize
    actual = path.stat().st_size
    if actual != expected:
        raise TokenFileError(
            f"{path} is truncated or corrupt: header says {num_tokens} tokens "
            f"({expected} bytes) but the file has {actual} bytes; re-encode it"
        )
    return TokenFileInfo(dtype=dtype, vocab_size=int(vocab_size), num_tokens=int(num_tokens),
                         metadata=_read_metadata(path, metadata_size), data_offset=data_offset)


def _read_metadata(path: Path, size: int) -> dict:
    if not size:
        return {}
    with open(path, "rb") as f:
        f.seek(HEADER_SIZE)
        raw = f.read(size)
    try:
        metadata = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise TokenFileError(f"{path} has a corrupt metadata block ({e}); re-encode it") from None
    if not isinstance(metadata, dict):
        raise TokenFileError(f"{path} has a metadata block that is not a JSON object; re-encode it")
    return metadata


def open_tokens(path: str | os.PathLike) -> tuple[np.ndarray, TokenFileInfo]:
    """Memory-map a token file read-only; returns the ids and the header."""
    info = read_token_header(path)
    if info.num_tokens == 0:
        return np.zeros(0, dtype=info.dtype), info
    ids = np.memmap(path, dtype=info.dtype, mode="r", offset=info.data_offset, shape=(info.num_tokens,))
    return ids, info
