"""Byte-level BPE: trainer, tokenizer and token files.

``train_bpe`` learns a vocabulary from a text file (pre-tokenising in worker processes),
``Tokenizer`` encodes and decodes (GPT-2/tiktoken compatible), ``encode_file`` turns a corpus
into a token file (see ``tokenizer.tokenfile``). CLIs: ``python -m tokenizer.train`` and
``python -m tokenizer.encode``.
"""

if __name__ != "tritonlm.tokenizer":  # the folder imported as `tokenizer` from the repository root
    from tritonlm._short_names import become_alias

    become_alias(__name__)  # tritonlm.tokenizer, or another installed distribution named tokenizer
else:
    from tritonlm.tokenizer.byte_tokenizer import ByteTokenizer
    from tritonlm.tokenizer.corpus_encoder import EncodeStats, encode_file
    from tritonlm.tokenizer.tokenfile import open_tokens, read_token_header, write_tokens
    from tritonlm.tokenizer.tokenizer import END_OF_TEXT, Tokenizer
    from tritonlm.tokenizer.bpe import count_pretokens, train_bpe

    __all__ = [
        "END_OF_TEXT",
        "ByteTokenizer",
        "EncodeStats",
        "Tokenizer",
        "count_pretokens",
        "encode_file",
        "open_tokens",
        "read_token_header",
        "train_bpe",
        "write_tokens",
    ]
