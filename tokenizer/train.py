"""CLI: train a byte-level BPE tokenizer on a text file and save it.

    python -m tokenizer.train INPUT --vocab-size 10000 --special-token '<|endoftext|>' --out DIR

Writes DIR/vocab.json + DIR/merges.txt (GPT-2 printable-byte format, loadable by HF
``tokenizers`` and tiktoken), DIR/special_tokens.json and DIR/train_summary.json, and prints a
summary: time per phase, peak memory, the longest tokens and bytes/token on a sample.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path

from tritonlm.tokenizer.chunks import DEFAULT_CHUNK_BYTES, default_workers, plan_chunks
from tritonlm.tokenizer.inputs import read_chunk
from tritonlm.util.cli import cli_main
from tritonlm.util.process_memory import status_kb
from tritonlm.tokenizer.merges import learn_merges
from tritonlm.tokenizer.pretokenize import validate_special_tokens
from tritonlm.tokenizer.tokenizer import Tokenizer
from tritonlm.tokenizer.bpe import check_vocab_size, count_pretokens
from tritonlm.tokenizer.vocab_files import save_tokenizer_files


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m tokenizer.train", description=__doc__.split("\n\n")[0])
    p.add_argument("input", help="UTF-8 text file to train on")
    p.add_argument("--vocab-size", type=int, required=True, help="total vocab: specials + 256 bytes + merges")
    p.add_argument("--special-token", action="append", default=[], dest="special_tokens",
                   help="a special token (repeatable), e.g. '<|endoftext|>'")
    p.add_argument("--out", required=True, help="output folder for vocab.json, merges.txt, ...")
    p.add_argument("--workers", type=int, default=None, help="pre-tokenising processes (default: all cores)")
    p.add_argument("--chunk-mb", type=float, default=DEFAULT_CHUNK_BYTES / 2**20, help="chunk size in MiB")
    p.add_argument("--sample-mb", type=float, default=1.0, help="text measured for bytes/token")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    return p.parse_args(argv)


def peak_rss_mb() -> dict[str, float]:
    """Peak resident memory of this process and of its largest finished worker (MB).

    This process's own peak is its high-water mark since exec (``VmHWM``) where Linux reports
    one: ``ru_maxrss`` also counts the memory of whatever launched it (the launcher's resident
    size carries over into the exec), so a trainer started from a large Python process would
    report that process's size instead of its own.
    """
    (hwm_kb,) = status_kb(os.getpid(), ("VmHWM",))
    own = hwm_kb / 1024 if hwm_kb else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {"main_mb": round(own, 1), "largest_worker_mb": round(children, 1)}


def bytes_per_token(tokenizer: Tokenizer, path: Path, sample_bytes: int) -> float:
    first = next(iter(plan_chunks(path, tokenizer.special_tokens, max(sample_bytes, 1))))
    text = read_chunk(first.path, first.start, first.end)
    return (first.end - first.start) / max(len(tokenizer.encode(text)), 1)


@cli_main
def main(argv=None) -> int:
    args = parse_args(argv)
    specials = validate_special_tokens(args.special_tokens)
    check_vocab_size(args.vocab_size, specials)
    times = {}
    t0 = time.perf_counter()
    counts = count_pretokens(args.input, specials, args.workers, int(args.chunk_mb * 2**20), not args.quiet)
    times["pretokenise_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    words = {w.encode("utf-8"): n for w, n in counts.items()}
    distinct = len(words)
    del counts
    vocab, merges = learn_merges(words, args.vocab_size, specials, progress=not args.quiet)
    del words
    times["merge_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    out = save_tokenizer_files(args.out, vocab, merges, specials)
    times["save_s"] = time.perf_counter() - t0
    tokenizer = Tokenizer(vocab, merges, specials)
    bpt = bytes_per_token(tokenizer, Path(args.input), int(args.sample_mb * 1e6))
    learned = [vocab[i] for i in range(len(specials) + 256, len(vocab))]
    longest = sorted(learned, key=len, reverse=True)[:5]
    summary = {
        "input": str(args.input),
        "vocab_size": len(vocab),
        "merges": len(merges),
        "distinct_pretokens": distinct,
        "workers": args.workers if args.workers is not None else default_workers(),
        "times": {k: round(v, 3) for k, v in times.items()},
        "peak_rss": peak_rss_mb(),
        "longest_tokens": [t.decode("utf-8", errors="replace") for t in longest],
        "bytes_per_token_sample": round(bpt, 4),
    }
    (out / "train_summary.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n")
    print_summary(summary, out)
    return 0


def print_summary(s: dict, out: Path) -> None:
    t = s["times"]
    print(f"\ntrained {s['vocab_size']} tokens ({s['merges']} merges) from {s['distinct_pretokens']:,} distinct pre-tokens")
    print(f"  pre-tokenise {t['pretokenise_s']:.2f} s | merge {t['merge_s']:.2f} s | save {t['save_s']:.2f} s")
    workers = "" if s["workers"] == 1 else f", largest worker {s['peak_rss']['largest_worker_mb']:.0f} MB"
    print(f"  peak RSS: main {s['peak_rss']['main_mb']:.0f} MB{workers}")
    print(f"  longest tokens: {', '.join(repr(x) for x in s['longest_tokens'])}")
    print(f"  bytes/token on a sample: {s['bytes_per_token_sample']:.3f}")
    print(f"  wrote {out}/vocab.json, merges.txt, special_tokens.json, train_summary.json")


if __name__ == "__main__":
    sys.exit(main())
