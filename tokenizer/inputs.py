"""Checks on user-supplied input files, with errors that name the problem and the fix."""

from __future__ import annotations

import os
from pathlib import Path


class InputTextError(ValueError):
    """An input file that cannot be used as training or encoding text (e.g. invalid UTF-8)."""


def check_text_file(path: str | os.PathLike, what: str = "input") -> Path:
    """``path`` as a Path if it is a non-empty regular file, else a clear error."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{what} file {path} does not exist; check the path")
    if path.is_dir():
        raise IsADirectoryError(f"{what} {path} is a directory; pass a UTF-8 text file instead")
    if not path.is_file():
        raise InputTextError(f"{what} {path} is not a regular file; pass a UTF-8 text file")
    if path.stat().st_size == 0:
        raise InputTextError(f"{what} file {path} is empty; there is no text to process")
    return path


def decode_utf8(data: bytes, path: str | os.PathLike, offset: int) -> str:
    """Decode a chunk read at byte ``offset`` of ``path``; invalid UTF-8 names the file offset."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        where = offset + e.start
        bad = data[e.start : e.start + 4]
        raise InputTextError(
            f"{path} is not valid UTF-8: byte {bad[:1]!r} at byte offset {where} ({e.reason}); "
            "convert the file to UTF-8 (e.g. `iconv -f latin1 -t utf-8`)"
        ) from None


def read_chunk(path: str | os.PathLike, start: int, end: int) -> str:
    """The text of bytes ``[start, end)`` of ``path`` (which begin and end at boundaries)."""
    with open(path, "rb") as f:
        f.seek(start)
        data = f.read(end - start)
    return decode_utf8(data, path, start)


