"""A ``Tokenizer`` as a Hugging Face ``tokenizer.json``: the same ids through ``tokenizers``.

The file says what this tokenizer already is: byte-level BPE over GPT-2's printable-byte alphabet
(``vocab_files.bytes_to_unicode``), GPT-2's pre-tokenisation pattern (the ``ByteLevel``
pre-tokenizer with its regex), the merges in the order they were learned (ranks, no
``ignore_merges`` shortcut), no normaliser and no added prefix space, and the special tokens as
added tokens that are matched before pre-tokenisation and never split.
"""

from __future__ import annotations

import os
from pathlib import Path

from tritonlm.util.atomic import write_json_atomic

from .tokenizer import Tokenizer
from .vocab_files import bytes_to_unicode


def _printable(token: bytes) -> str:
    table = bytes_to_unicode()
    return "".join(table[b] for b in token)


def tokenizer_json(tokenizer: Tokenizer) -> dict:
    """The ``tokenizer.json`` document of ``tokenizer`` (a dict, ready for ``json.dump``)."""
    specials = {token_id: token for token, token_id in tokenizer.special_ids.items()}
    # the special tokens are in the model's vocabulary too (under their own text), as in GPT-2's
    # file: ``tokenizers`` gives an added token the id the vocabulary holds for it
    vocab = {(specials[token_id] if token_id in specials else _printable(token)): token_id
             for token_id, token in sorted(tokenizer.vocab.items())}
    byte_level = {"add_prefix_space": False, "trim_offsets": True, "use_regex": True}
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [{"id": token_id, "content": token, "single_word": False, "lstrip": False, "rstrip": False,
                          "normalized": False, "special": True} for token_id, token in sorted(specials.items())],
        "normalizer": None,
        "pre_tokenizer": {"type": "ByteLevel", **byte_level},
        "post_processor": {"type": "ByteLevel", **byte_level, "trim_offsets": False},
        "decoder": {"type": "ByteLevel", **byte_level},
        "model": {
            "type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
            "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
            "vocab": vocab,
            "merges": [f"{_printable(left)} {_printable(right)}" for left, right in tokenizer.merges],
        },
    }


def save_tokenizer_json(tokenizer: Tokenizer, path: str | os.PathLike) -> Path:
    """Write ``tokenizer.json`` (atomically) for ``tokenizers.Tokenizer.from_file``."""
    return write_json_atomic(path, tokenizer_json(tokenizer))
