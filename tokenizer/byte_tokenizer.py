"""``ByteTokenizer``: raw UTF-8 bytes as token ids 0..255, for models trained on byte token files.

It has the ``encode``/``decode``/``decode_bytes`` of ``Tokenizer``, so generation and the reports take either.
"""

from __future__ import annotations

from typing import Sequence


class ByteTokenizer:
    """Raw UTF-8 bytes as token ids 0..255 (for models trained on byte token files)."""

    def encode(self, text: str) -> list[int]:
        return list(text.encode("utf-8"))

    def decode_bytes(self, ids: Sequence[int]) -> bytes:
        return bytes(int(i) for i in ids if i < 256)

    def decode(self, ids: Sequence[int]) -> str:
        return self.decode_bytes(ids).decode("utf-8", errors="replace")
