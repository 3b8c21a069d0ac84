"""Vocabulary and merges files in the GPT-2 printable-byte format.

GPT-2 (and HF ``tokenizers``, and the files tiktoken's ``data_gym`` loader reads) store every
token as text by mapping each of the 256 byte values to one printable unicode character
(``bytes_to_unicode``). ``vocab.json`` maps that text to the token id; ``merges.txt`` lists one
merge per line, ``left right``, in the order they were learned (an optional ``#version`` line
first). We write exactly that, plus ``special_tokens.json`` (the special tokens, in order), so the
same folder loads here, in HF ``tokenizers`` and in tiktoken.
"""

from __future__ import annotations

import json
import os
from functools import lru_cache
from pathlib import Path

from tritonlm.util.atomic import write_text_atomic

VOCAB_FILE = "vocab.json"
MERGES_FILE = "merges.txt"
SPECIAL_TOKENS_FILE = "special_tokens.json"


@lru_cache(maxsize=1)
def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's byte -> printable character table: printable Latin-1 bytes map to themselves,
    the others (controls, space, ...) to the characters from U+0100 up, in byte order."""
    printable = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    table = {b: chr(b) for b in printable}
    extra = 0
    for b in range(256):
        if b not in table:
            table[b] = chr(256 + extra)
            extra += 1
    return table


@lru_cache(maxsize=1)
def unicode_to_bytes() -> dict[str, int]:
    return {c: b for b, c in bytes_to_unicode().items()}


def token_to_text(token: bytes) -> str:
    """A token's bytes in the printable alphabet (``b" the"`` -> ``"Ġthe"``)."""
    table = bytes_to_unicode()
    return "".join(table[b] for b in token)


def text_to_token(text: str) -> bytes:
    """Inverse of ``token_to_text``. Text with characters outside the alphabet (a special token
    written literally, as some files do) is taken as its UTF-8 bytes."""
    table = unicode_to_bytes()
    try:
        return bytes(table[c] for c in text)
    except KeyError:
        return text.encode("utf-8")


def save_tokenizer_files(
    out_dir: str | os.PathLike,
    vocab: dict[int, bytes],
    merges: list[tuple[bytes, bytes]],
    special_tokens: list[str] | None = None,
) -> Path:
    """Write vocab.json, merges.txt and special_tokens.json into ``out_dir`` (each atomically)."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"--out {out} exists and is not a directory; pick a folder path")
    out.mkdir(parents=True, exist_ok=True)
    by_text = {token_to_text(token): token_id for token_id, token in sorted(vocab.items())}
    if len(by_text) != len(vocab):
        raise ValueError("vocab holds the same bytes under two ids; it cannot be saved as vocab.json")
    lines = ["#version: 0.2"] + [f"{token_to_text(a)} {token_to_text(b)}" for a, b in merges]
    write_text_atomic(out / VOCAB_FILE, json.dumps(by_text, ensure_ascii=False, indent=0) + "\n")
    write_text_atomic(out / MERGES_FILE, "\n".join(lines) + "\n")
    write_text_atomic(out / SPECIAL_TOKENS_FILE, json.dumps(list(special_tokens or []), ensure_ascii=False) + "\n")
    return out


def load_vocab(path: str | os.PathLike) -> dict[int, bytes]:
    """Read a GPT-2 style vocab.json into ``{id: bytes}``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"vocab file {path} does not exist (expected a GPT-2 style vocab.json)")
    with open(path, encoding="utf-8") as f:
        try:
            raw = json.load(f)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path} is not valid JSON ({e}); expected {{token: id}}") from e
    if not isinstance(raw, dict):
        raise ValueError(f"{path} must hold a JSON object {{token: id}}, got {type(raw).__name__}")
    vocab = {}
    for text, token_id in raw.items():
        if isinstance(token_id, bool) or not isinstance(token_id, int) or not 0 <= token_id < len(raw):
            raise ValueError(f"{path} maps {text!r} to id {token_id!r}, but a vocabulary of {len(raw)} tokens has "
                             f"the ids 0..{len(raw) - 1}: the file is corrupt or not a vocab.json")
        if token_id in vocab:
            raise ValueError(f"{path} gives id {token_id} to two tokens: the file is corrupt")
        vocab[token_id] = text_to_token(text)
    return vocab


def load_merges(path: str | os.PathLike) -> list[tuple[bytes, bytes]]:
    """Read a GPT-2 style merges.txt (optional ``#version`` header) into byte pairs."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"merges file {path} does not exist (expected a GPT-2 style merges.txt)")
    merges = []
    with open(path, encoding="utf-8") as f:
        for line_no, line in enumerate(f, 1):
            line = line.rstrip("\r\n")
            if not line or (line_no == 1 and line.startswith("#version")):
                continue
            parts = line.split(" ")
            if len(parts) != 2:
                raise ValueError(f"{path}:{line_no}: expected 'left right', got {line!r}")
            merges.append((text_to_token(parts[0]), text_to_token(parts[1])))
    return merges


def load_special_tokens(folder: str | os.PathLike) -> list[str]:
    """Special tokens saved beside the vocab, or [] when the folder has none."""
    path = Path(folder) / SPECIAL_TOKENS_FILE
    if not path.is_file():
        return []
    try:
        tokens = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{path} is not valid JSON ({e}); expected a list of special-token strings") from e
    if not isinstance(tokens, list) or not all(isinstance(t, str) and t for t in tokens):
        raise ValueError(f"{path} must hold a JSON list of non-empty strings, got {tokens!r:.80}")
    return tokens
