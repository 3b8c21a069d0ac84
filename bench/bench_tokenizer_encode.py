"""Benchmark: encoding with the GPT-2 tokenizer, ours vs tiktoken, and streaming memory.

    flock /tmp/tritonlm-heavy.lock python -m bench.bench_tokenizer_encode

* one process: ``Tokenizer.encode`` (fresh tokenizer each repeat, so the pre-token cache starts
  cold) vs tiktoken ``encode`` on one thread, the whole text of each corpus (gutenberg_valid
  and imdb_test by default: books and reviews);
* all cores: ``encode_file`` (text file -> token file, N processes) vs tiktoken
  ``encode_ordinary_batch`` (documents, N threads, in memory);
* ``encode_iterable`` over the first 200 MB of gutenberg_train, in a fresh process: extra RSS.

Peers alternate within each repeat; medians are reported with ratios ours/tiktoken (higher is
better for ours); the ids must equal tiktoken's on every byte. Writes
bench/results/tokenizer_encode-<device>.json.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bench.common import write_results
from bench.tokenizer_benchlib import EOT, machine_load, run_job
from tritonlm.tokenizer import Tokenizer, encode_file
from tritonlm.tokenizer.chunks import default_workers
from tritonlm.tokenizer.pretokenize import GPT2_PATTERN
from tritonlm.tokenizer.tokenfile import open_tokens
from tritonlm.tokenizer.vocab_files import load_vocab
from tritonlm.corpora.shared import SharedDataMissing, fixture_path, shared_corpus


def gpt2_peers():
    import tiktoken

    vocab_path, merges_path = fixture_path("gpt2_vocab.json"), fixture_path("gpt2_merges.txt")
    ranks = {t: i for i, t in load_vocab(vocab_path).items() if t != EOT.encode()}
    enc = tiktoken.Encoding("gpt2-fixture", pat_str=GPT2_PATTERN, mergeable_ranks=ranks, special_tokens={EOT: 50256})
    return (lambda: Tokenizer.from_files(vocab_path, merges_path, [EOT])), enc


def timed(fn):
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def bench_single(path: Path, repeats: int) -> dict:
    make_ours, enc = gpt2_peers()
    text = path.read_text(encoding="utf-8")
    mb = len(text.encode("utf-8")) / 1e6
    ours, ours_warm, theirs = [], [], []
    for _ in range(repeats):
        tok = make_ours()
        t, ids = timed(lambda: tok.encode(text))
        ours.append(t)
        ours_warm.append(timed(lambda: tok.encode(text))[0])
        t, ref = timed(lambda: enc.encode(text, allowed_special="all"))
        theirs.append(t)
        assert ids == ref, "ids differ from tiktoken"
    row = {"case": "one process", "corpus": path.name, "mb": mb, "tokens": len(ids),
           "ours_mb_s": mb / statistics.median(ours), "ours_warm_cache_mb_s": mb / statistics.median(ours_warm),
           "tiktoken_mb_s": mb / statistics.median(theirs), "ours_s": ours, "tiktoken_s": theirs}
    row["ratio"] = row["ours_mb_s"] / row["tiktoken_mb_s"]
    return row


def bench_parallel(path: Path, repeats: int, workers: int) -> dict:
    make_ours, enc = gpt2_peers()
    docs = path.read_text(encoding="utf-8").split(EOT)
    mb = path.stat().st_size / 1e6
    ours, theirs = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(repeats):
            tok = make_ours()
            ours.append(timed(lambda: encode_file(path, tok, Path(tmp) / "ids.bin", num_workers=workers))[0])
            t, batches = timed(lambda: enc.encode_ordinary_batch(docs, num_threads=workers))
            theirs.append(t)
            ids, _ = open_tokens(Path(tmp) / "ids.bin")
            assert ids.tolist() == _joined(batches, eot=50256), "ids of encode_file differ from tiktoken"
    row = {"case": f"all cores ({workers})", "corpus": path.name, "mb": mb, "ours_mb_s": mb / statistics.median(ours),
           "tiktoken_mb_s": mb / statistics.median(theirs), "ours_s": ours, "tiktoken_s": theirs}
    row["ratio"] = row["ours_mb_s"] / row["tiktoken_mb_s"]
    return row


def _joined(batches: list[list[int]], eot: int) -> list[int]:
    """The documents' ids with the end-of-text id between them: the whole file's ids."""
    out: list[int] = []
    for i, ids in enumerate(batches):
        if i:
            out.append(eot)
        out += ids
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--workers", type=int, default=default_workers())
    p.add_argument("--stream-mb", type=int, default=200, help="0 skips the streaming-memory check")
    p.add_argument("--corpora", default="gutenberg_valid,imdb_test",
                   help="comma-separated shared corpora, each encoded whole (default: books and reviews)")
    args = p.parse_args()
    try:
        corpora = [shared_corpus(name) for name in args.corpora.split(",")]
    except SharedDataMissing as e:
        print(f"skipped: {e}")
        return 0
    load_before = machine_load()
    rows = []
    for path in corpora:
        rows += [bench_single(path, args.repeats), bench_parallel(path, args.repeats, args.workers)]
    for r in rows:
        print(f"{r['corpus']:<16} {r['case']:<16} ours {r['ours_mb_s']:6.2f} MB/s | tiktoken {r['tiktoken_mb_s']:6.2f} MB/s"
              f" | ratio {r['ratio']:.2f}" + (f" (warm cache {r['ours_warm_cache_mb_s']:.2f} MB/s)"
                                            if "ours_warm_cache_mb_s" in r else ""))
    if args.stream_mb:
        big = shared_corpus("gutenberg_train", args.stream_mb * 1_000_000)
        stream = run_job("stream-encode", big)
        stream.update(case=f"encode_iterable {args.stream_mb} MB", mb=big.stat().st_size / 1e6)
        stream["ours_mb_s"] = stream["mb"] / stream["seconds"]
        rows.append(stream)
        print(f"encode_iterable over {stream['mb']:.0f} MB: extra RSS {stream['extra_rss_mb']:.1f} MB "
              f"(peak {stream['peak_rss_mb']:.0f} MB, baseline {stream['baseline_rss_mb']:.0f} MB), "
              f"{stream['ours_mb_s']:.2f} MB/s")
    out = write_results("tokenizer_encode", rows, {"corpora": args.corpora.split(","), "machine_load_before": load_before,
                                                   "machine_load_after": machine_load()})
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
