"""Benchmark: BPE training, ours vs HF ``tokenizers`` BpeTrainer, and how ours scales.

    flock /tmp/tritonlm-heavy.lock python -m bench.bench_tokenizer_train

Both peers train the same vocabulary (10,000 by default) with special token <|endoftext|> on the
first N MB of a shared corpus (gutenberg_train by default; ``--corpus gutenberg_train+imdb_train``
joins the two training sets, ~310 MB, the OpenWebText-like 32k case), on the same cores (our worker processes = HF's rayon threads = all cores), each
run in a fresh process (peak RSS = sampled RSS of the whole process tree). Runs alternate
between peers so both see the same machine load; medians of the repeats are reported, with the
ratio ours/HF. Writes bench/results/tokenizer_train-<device>.json and tokenizer_train_scaling.png
(other corpora and vocabularies: tokenizer_train-<corpus>-v<vocab>-<device>.json and its .png).

    python -m bench.bench_tokenizer_train --corpus gutenberg_train+imdb_train --vocab-size 32000 \
        --sizes 50 100 200 310 --hf-sizes 310 --repeats 1
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

from bench.common import RESULTS_DIR, write_results
from bench.tokenizer_benchlib import machine_load, run_job, summarise
from tritonlm.tokenizer.chunks import default_workers
from tritonlm.corpora.shared import SharedDataMissing, shared_corpus
from tritonlm.util.plotting import pyplot, save_figure


DEFAULT_CORPUS = "gutenberg_train"


def measure(corpus: str, size_mb: int, vocab: int, workers: int, repeats: int, peers: list[str]) -> list[dict]:
    path = shared_corpus(corpus, size_mb * 1_000_000)
    runs = {peer: [] for peer in peers}
    for _ in range(repeats):
        for peer in peers:
            env = {"RAYON_NUM_THREADS": str(workers)} if peer == "hf" else None
            runs[peer].append(run_job(f"train-{peer}", path, vocab, workers, env=env))
    rows = []
    for peer, results in runs.items():
        row = {"corpus": corpus, "size_mb": size_mb, "bytes": path.stat().st_size, "provider": "tritonlm" if peer == "ours" else "hf-tokenizers",
               "vocab_size": vocab, "workers": workers, "repeats": repeats,
               "seconds": summarise(results, "seconds"), "peak_tree_rss_mb": summarise(results, "peak_tree_rss_mb")}
        for extra in ("pretokenise_s", "merge_s", "distinct_pretokens"):
            if extra in results[0]:
                row[extra] = statistics.median(r[extra] for r in results)
        rows.append(row)
    if len(rows) == 2:
        ratio = rows[0]["seconds"]["median"] / rows[1]["seconds"]["median"]
        rows[0]["time_ratio_vs_hf"] = rows[1]["time_ratio_vs_hf"] = ratio
    return rows


def print_table(rows: list[dict]) -> None:
    print(f"\n{'MB':>5} {'provider':<14} {'median s':>9} {'min s':>7} {'max s':>7} {'peak RSS MB':>12} "
          f"{'pretok s':>9} {'merge s':>8} {'ours/HF':>8}")
    for r in rows:
        ratio = r.get("time_ratio_vs_hf")
        print(f"{r['size_mb']:>5} {r['provider']:<14} {r['seconds']['median']:>9.2f} {r['seconds']['min']:>7.2f} "
              f"{r['seconds']['max']:>7.2f} {r['peak_tree_rss_mb']['median']:>12.0f} "
              f"{r.get('pretokenise_s', float('nan')):>9.2f} {r.get('merge_s', float('nan')):>8.2f} "
              f"{ratio if ratio is not None else float('nan'):>8.2f}")


def plot(rows: list[dict], path: Path, title: str) -> None:
    fig, (ax_t, ax_m) = pyplot().subplots(1, 2, figsize=(10, 4))
    for provider in ("tritonlm", "hf-tokenizers"):
        pts = sorted((r["size_mb"], r["seconds"]["median"], r["peak_tree_rss_mb"]["median"])
                     for r in rows if r["provider"] == provider)
        if pts:
            sizes, secs, rss = zip(*pts)
            ax_t.plot(sizes, secs, "o-", label=provider)
            ax_m.plot(sizes, rss, "o-", label=provider)
    ax_t.set(xlabel="training text (MB)", ylabel="training time (s, median)", title=f"BPE training time, {title}")
    ax_m.set(xlabel="training text (MB)", ylabel="peak RSS of process tree (MB)", title="Peak memory")
    for ax in (ax_t, ax_m):
        ax.grid(alpha=0.3)
        ax.legend()
    save_figure(fig, path)


def results_name(corpus: str, vocab: int) -> str:
    """The default case keeps its historical file name; others carry corpus and vocabulary."""
    if corpus == DEFAULT_CORPUS and vocab == 10_000:
        return "tokenizer_train"
    return f"tokenizer_train-{corpus.replace('+', '_')}-v{vocab}"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--corpus", default=DEFAULT_CORPUS,
                   help="shared corpus, or several joined by '+' (e.g. gutenberg_train+imdb_train)")
    p.add_argument("--sizes", type=int, nargs="+", default=[25, 50, 100, 200],
                   help="MB of the corpus (a size past its end takes all of it)")
    p.add_argument("--vocab-size", type=int, default=10_000)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--hf-sizes", type=int, nargs="*", default=[25, 50, 100, 200], help="sizes HF also runs at")
    p.add_argument("--workers", type=int, default=default_workers())
    args = p.parse_args()
    try:
        for part in args.corpus.split("+"):
            shared_corpus(part, 1_000_000)
    except SharedDataMissing as e:
        print(f"skipped: {e}")
        return 0
    load_before = machine_load()
    rows = []
    for size in args.sizes:
        peers = ["ours", "hf"] if size in args.hf_sizes else ["ours"]
        rows += measure(args.corpus, size, args.vocab_size, args.workers, args.repeats, peers)
        print_table(rows[-len(peers):])
    print_table(rows)
    ours = sorted((r["size_mb"], r["peak_tree_rss_mb"]["median"]) for r in rows if r["provider"] == "tritonlm")
    growth = {f"{a}->{b}MB": round(mb / ma, 3) for (a, ma), (b, mb) in zip(ours, ours[1:])}
    print(f"peak RSS growth factors (ours) per size step: {growth}")
    name = results_name(args.corpus, args.vocab_size)
    out = write_results(name, rows, {"corpus": args.corpus,"machine_load_before": load_before,
                                                  "machine_load_after": machine_load(),
                                                  "rss_growth_ours": growth})
    png = RESULTS_DIR / f"{name.replace('tokenizer_train', 'tokenizer_train_scaling')}.png"
    plot(rows, png, f"{args.corpus}, vocab {args.vocab_size:,}")
    print(f"wrote {out} and {png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
