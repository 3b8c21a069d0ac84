"""CLI: encode a UTF-8 text file into a token file with a trained tokenizer.

    python -m tokenizer.encode INPUT --tokenizer DIR --out FILE

DIR is a folder written by ``python -m tokenizer.train`` (vocab.json, merges.txt,
special_tokens.json). FILE gets a header recording dtype (uint16 when the vocab fits, else
uint32) and vocab size; read it with ``tokenizer.open_tokens``.
"""

from __future__ import annotations

import argparse
import sys

from tritonlm.tokenizer.chunks import ENCODE_CHUNK_BYTES
from tritonlm.tokenizer.corpus_encoder import encode_file
from tritonlm.util.cli import cli_main
from tritonlm.tokenizer.tokenizer import Tokenizer


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m tokenizer.encode", description=__doc__.split("\n\n")[0])
    p.add_argument("input", help="UTF-8 text file to encode")
    p.add_argument("--tokenizer", required=True, help="folder with vocab.json + merges.txt")
    p.add_argument("--out", required=True, help="token file to write")
    p.add_argument("--workers", type=int, default=None, help="encoding processes (default: all cores)")
    p.add_argument("--chunk-mb", type=float, default=ENCODE_CHUNK_BYTES / 2**20, help="chunk size in MiB")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p.parse_args(argv)


@cli_main
def main(argv=None) -> int:
    args = parse_args(argv)
    tokenizer = Tokenizer.from_dir(args.tokenizer)
    stats = encode_file(args.input, tokenizer, args.out, args.workers, int(args.chunk_mb * 2**20), not args.quiet)
    print(f"encoded {stats} -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
