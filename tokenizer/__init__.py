"""Byte-level BPE: trainer, tokenizer and token files."""
