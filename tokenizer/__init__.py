"""Byte-level BPE: trainer, tokenizer and token files.

``train_bpe`` learns a vocabulary from a text file (pre-tokenising in worker processes),
``Tokenizer`` encodes and decodes (GPT-2/tiktoken compatible), ``encode_file`` turns a corpus
into a token file (see ``tokenizer.tokenfile``). CLIs: ``python -m tokenizer.train`` and
``python -m tokenizer.encode``.
"""

from tokenizer.encode_file import EncodeStats, encode_file
from tokenizer.tokenfile import open_tokens, read_token_header, write_tokens
from tokenizer.tokenizer import END_OF_TEXT, Tokenizer
from tokenizer.trainer import count_pretokens, train_bpe

__all__ = [
    "END_OF_TEXT",
    "EncodeStats",
    "Tokenizer",
    "count_pretokens",
    "encode_file",
    "open_tokens",
    "read_token_header",
    "train_bpe",
    "write_tokens",
]
