"""``python -m train.experiments bpe-scale``: BPE training at the largest scale here, and two vocabularies compared.

The assignment's BPE questions on the corpora here: a 10,000-token BPE on all of Gutenberg train
(~210 MB; the TinyStories question) and a 32,000-token BPE on Gutenberg + IMDB train together
(~310 MB; the OpenWebText question). Each runs as ``python -m tokenizer.train`` in a fresh
process, measured from outside: wall time and the peak RSS of the whole process tree (the trainer
and its pre-tokenising workers), with the trainer's own phase times and longest learned tokens. With
``--profile`` each case runs once more under cProfile, for a function-level profile of the main
process (the merge loop; the workers appear as the time spent waiting for them). The two
vocabularies are then compared: shared tokens, the longest tokens of each alone, and their
token-length distributions (plotted). Finished cases are kept and not re-run.
"""

from __future__ import annotations

import json
import pstats
import re
import shutil
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from tritonlm.tokenizer import END_OF_TEXT
from tritonlm.tokenizer.vocab_files import load_vocab
from tritonlm.train.presentation import markdown_table
from tritonlm.util.atomic import write_json_atomic, write_text_atomic
from tritonlm.util.cli import RunFailed
from tritonlm.corpora.shared import shared_corpus
from tritonlm.util.plotting import pyplot, save_figure
from tritonlm.util.process_memory import run_sampling_memory
from tritonlm.util.runinfo import run_metadata


@dataclass(frozen=True)
class BpeCase:
    name: str
    corpus: str  # a shared corpus, or several joined by "+"
    vocab_size: int


CASES = (
    BpeCase("gutenberg-10k", "gutenberg_train", 10_000),
    BpeCase("gutenberg+imdb-32k", "gutenberg_train+imdb_train", 32_000),
)


def trainer_command(corpus: Path, case: BpeCase, folder: Path, profile_to: Path | None) -> list[str]:
    runner = ["-m", "cProfile", "-o", str(profile_to)] if profile_to else []
    return [sys.executable, *runner, "-m", "tritonlm.tokenizer.train", str(corpus), "--vocab-size", str(case.vocab_size),
            "--special-token", END_OF_TEXT, "--out", str(folder), "--quiet"]


def train_case(case: BpeCase, out_dir: Path, profile: bool) -> dict:
    """Train one case in a fresh process (unless it is already measured); its measurements."""
    folder = out_dir / case.name
    measured = folder / "measured.json"
    if measured.is_file() and (not profile or "profile" in json.loads(measured.read_text())):
        return json.loads(measured.read_text())
    corpus = shared_corpus(case.corpus)
    print(f"{case.name}: training {case.vocab_size:,} tokens on {corpus.stat().st_size / 1e6:.1f} MB of {case.corpus}")
    run = run_sampling_memory(trainer_command(corpus, case, folder, None))
    if run.returncode != 0:
        raise RunFailed(f"python -m tokenizer.train failed on {corpus} (exit {run.returncode}): {run.stdout[-1000:]}")
    summary = json.loads((folder / "train_summary.json").read_text(encoding="utf-8"))
    result = {"case": case.name, "metadata": run_metadata(), "corpus": case.corpus, "corpus_bytes": corpus.stat().st_size,
              "vocab_size": case.vocab_size, "wall_s": round(run.seconds, 2),
              "peak_tree_rss_mb": run.peak_tree_rss_mb, **{k: summary[k] for k in
              ("distinct_pretokens", "workers", "times", "peak_rss", "bytes_per_token_sample", "longest_tokens")}}
    if profile:
        result["profile"] = profile_case(corpus, case, folder)
    write_json_atomic(measured, result, indent=1)
    return result


def profile_case(corpus: Path, case: BpeCase, folder: Path, top: int = 12) -> dict:
    """Re-run the case under cProfile (into a scratch folder) and keep the costliest functions."""
    stats_path = folder / "profile.pstats"
    scratch = folder / "profiled"
    run = run_sampling_memory(trainer_command(corpus, case, scratch, stats_path))
    shutil.rmtree(scratch, ignore_errors=True)
    if run.returncode != 0:
        raise RunFailed(f"the profiled run of {case.name} failed (exit {run.returncode}): {run.stdout[-1000:]}")
    stats = pstats.Stats(str(stats_path))
    rows = []
    for (file, line, function), (_, calls, tottime, cumtime, _) in stats.stats.items():
        rows.append({"function": f"{Path(file).name}:{line}({function})", "calls": calls,
                     "self_s": round(tottime, 3), "cumulative_s": round(cumtime, 3)})
    rows.sort(key=lambda r: r["self_s"], reverse=True)
    return {"wall_s_under_profiler": round(run.seconds, 2), "total_self_s": round(stats.total_tt, 2),
            "top_by_self_time": rows[:top]}


WORD = re.compile(rb" ?[A-Za-z]+")


def compare_vocabularies(first: dict[int, bytes], second: dict[int, bytes], count: int = 8) -> dict:
    """What the two vocabularies share, their longest words, and the longest tokens each has that
    the other lacks."""
    a, b = set(first.values()), set(second.values())

    def longest_of(tokens: set[bytes]) -> list[str]:
        return [t.decode("utf-8", errors="replace") for t in sorted(tokens, key=lambda t: (-len(t), t))[:count]]

    return {"sizes": [len(a), len(b)], "shared": len(a & b), "first_in_second": len(a & b) / len(a),
            "longest_words": [longest_of({t for t in tokens if WORD.fullmatch(t)}) for tokens in (a, b)],
            "mean_bytes": [sum(map(len, a)) / len(a), sum(map(len, b)) / len(b)],
            "longest_only_in_first": longest_of(a - b), "longest_only_in_second": longest_of(b - a)}


def plot_token_lengths(vocabs: dict[str, dict[int, bytes]], out: Path) -> None:
    fig, ax = pyplot().subplots(figsize=(7.5, 4))
    for name, vocab in vocabs.items():
        lengths = sorted(Counter(len(t) for t in vocab.values()).items())
        ax.plot(*zip(*lengths), "o-", ms=3, label=f"{name} ({len(vocab):,} tokens)")
    ax.set_yscale("log")  # the long tail (runs of spaces and dashes) is a few tokens each
    ax.set(xlabel="token length (bytes)", ylabel="tokens in the vocabulary (log scale)",
           title="Token lengths of the two BPE vocabularies")
    ax.grid(alpha=0.3)
    ax.legend()
    save_figure(fig, out, dpi=110)


def write_outputs(out_dir: Path, results: list[dict], comparison: dict) -> None:
    rows = [{**r, "mb": r["corpus_bytes"] / 1e6, "pretokenise_s": r["times"]["pretokenise_s"],
             "merge_s": r["times"]["merge_s"], "longest": f"`{r['longest_tokens'][0]!r}`"} for r in results]
    columns = ["case", "mb", "vocab_size", "wall_s", "pretokenise_s", "merge_s", "peak_tree_rss_mb",
               "distinct_pretokens", "bytes_per_token_sample", "longest"]
    headers = ["case", "MB", "vocab", "wall s", "pre-tokenise s", "merge s", "peak RSS, process tree (MB)",
               "distinct pre-tokens", "bytes/token (1 MB sample)", "longest token"]
    first, second = (r["case"] for r in results)
    text = ["## BPE training at scale", "", "Each case runs `python -m tokenizer.train` in a fresh process on all of "
            "its corpus; peak memory is sampled over the trainer and its workers together.", "",
            markdown_table(rows, columns, headers), "",
            f"Shared tokens: {comparison['shared']:,} ({comparison['first_in_second']:.1%} of {first} is in {second}); "
            f"mean token length {comparison['mean_bytes'][0]:.2f} vs {comparison['mean_bytes'][1]:.2f} bytes.", "",
            f"- longest words in {first}: " + ", ".join(map(repr, comparison["longest_words"][0])),
            f"- longest words in {second}: " + ", ".join(map(repr, comparison["longest_words"][1])),
            f"- longest only in {first}: " + ", ".join(map(repr, comparison["longest_only_in_first"])),
            f"- longest only in {second}: " + ", ".join(map(repr, comparison["longest_only_in_second"])), "",
            "![token lengths](token_lengths.png)", ""]
    for r in results:
        if "profile" in r:
            p = r["profile"]
            text += [f"Profile of {r['case']} (main process, {p['wall_s_under_profiler']} s under cProfile):", "",
                     markdown_table(p["top_by_self_time"], ["function", "calls", "self_s", "cumulative_s"],
                                    ["function", "calls", "self s", "cumulative s"]), ""]
    write_text_atomic(out_dir / "bpe_scale.md", "\n".join(text) + "\n")
    # Each case carries the metadata of the run that measured it (finished cases are reused).
    write_json_atomic(out_dir / "bpe_scale.json", {"metadata": run_metadata(), "cases": results,
                                                   "comparison": comparison}, indent=1)


def run(out_dir: str | Path, profile: bool = False, cases: tuple[BpeCase, BpeCase] = CASES) -> dict:
    """Train both cases (or reuse them), compare their vocabularies, write table, JSON and plot."""
    out_dir = Path(out_dir) / "bpe-scale"
    results = [train_case(case, out_dir, profile) for case in cases]
    vocabs = {case.name: load_vocab(out_dir / case.name / "vocab.json") for case in cases}
    comparison = compare_vocabularies(*vocabs.values())
    write_outputs(out_dir, results, comparison)
    plot_token_lengths(vocabs, out_dir / "token_lengths.png")
    for r in results:
        print(f"{r['case']}: {r['wall_s']:.1f} s, peak RSS {r['peak_tree_rss_mb']:,.0f} MB, "
              f"longest token {r['longest_tokens'][0]!r}")
    print(f"shared tokens {comparison['shared']:,}; table, profile and plot in {out_dir}")
    return {"cases": results, "comparison": comparison}
