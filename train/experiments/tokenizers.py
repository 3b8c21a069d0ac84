"""``python -m train.experiments tokenizers``: compression and throughput of tokenizers across corpora.

The assignment's tokenizer experiments, on the corpora here: BPE tokenizers of this project
trained on Gutenberg and on IMDB (vocab 10,000, as for TinyStories in the assignment) and on
the generated stories, and GPT-2's tokenizer (from the shared fixtures), each encoding the first
bytes of every validation corpus. It reports bytes/token for each pair (the compression ratio;
cross-domain pairs show what a tokenizer trained on other text costs), single-process
throughput, and the projected time to encode 825 GB (the Pile) at that speed, in one process
and across the cores of this machine.

The assignment's own question is answered on 10 documents sampled (seeded) from each validation
corpus, encoded one by one with the two tokenizers of ``train.experiments.bpe_scale`` (10k on
all of Gutenberg train, the TinyStories stand-in; 32k on Gutenberg + IMDB train, the
OpenWebText stand-in; trained first if that experiment has not run) and GPT-2's. Shared corpora
that are absent are left out with a note.
"""

from __future__ import annotations

import os
import random
import time
from dataclasses import replace
from pathlib import Path

from tritonlm.tokenizer import END_OF_TEXT
from tritonlm.corpora.shared import SharedDataMissing, fixture_path, shared_corpus
from tritonlm.corpora.settings import DataSettings
from tritonlm.corpora.sources import get_source
from tritonlm.train.leaderboard.data import SPECIAL_TOKENS, prepare_tokenizer
from tritonlm.train.run_folder import load_tokenizer
from tritonlm.train.presentation import markdown_table
from tritonlm.util.atomic import write_json_atomic, write_text_atomic
from tritonlm.util.plotting import pyplot, save_figure
from tritonlm.util.runinfo import run_metadata

PILE_BYTES = 825e9
TRAIN_CORPORA = {"gutenberg": "gutenberg_train", "imdb": "imdb_train"}
EVAL_CORPORA = {"gutenberg": "gutenberg_valid", "imdb": "imdb_test"}


def build_tokenizers(vocab_size: int, train_bytes: int) -> tuple[dict, list[str]]:
    """name -> Tokenizer, and notes about the ones that could not be built here."""
    settings = DataSettings(vocab_size=vocab_size, tokenizer_train_bytes=train_bytes)
    tokenizers, notes = {}, []
    for name, corpus in TRAIN_CORPORA.items():
        try:
            text = shared_corpus(corpus, train_bytes)
        except SharedDataMissing as e:
            notes.append(f"ours-{name}: skipped ({e})")
            continue
        tokenizers[f"ours-{name}-{_short(vocab_size)}"] = load_tokenizer(prepare_tokenizer(text, settings))
    stories_train = get_source("stories", replace(settings, story_train_bytes=4_000_000), "train").path()
    tokenizers[f"ours-stories-{_short(vocab_size)}"] = load_tokenizer(prepare_tokenizer(stories_train, settings))
    add_gpt2(tokenizers, notes)
    return tokenizers, notes


def add_gpt2(tokenizers: dict, notes: list[str]) -> None:
    """GPT-2's tokenizer from the shared fixtures, or a note that they are absent."""
    from tritonlm.tokenizer import Tokenizer

    try:
        tokenizers["gpt2"] = Tokenizer.from_files(fixture_path("gpt2_vocab.json"), fixture_path("gpt2_merges.txt"),
                                                  SPECIAL_TOKENS)
    except SharedDataMissing as e:
        notes.append(f"gpt2: skipped ({e})")


def _short(vocab_size: int) -> str:
    return f"{vocab_size // 1000}k" if vocab_size % 1000 == 0 else str(vocab_size)


def evaluation_texts(sample_bytes: int) -> tuple[dict[str, str], list[str]]:
    texts, notes = {}, []
    for name, corpus in EVAL_CORPORA.items():
        try:
            texts[name] = shared_corpus(corpus, sample_bytes).read_text(encoding="utf-8")
        except SharedDataMissing as e:
            notes.append(f"corpus {name}: skipped ({e})")
    stories_val = get_source("stories", DataSettings(story_val_bytes=sample_bytes), "valid").path()
    texts["stories"] = stories_val.read_text(encoding="utf-8")
    return texts, notes


def measure(tokenizer, text: str) -> dict:
    """bytes/token and single-process throughput of ``tokenizer.encode`` on ``text`` (a fresh
    pre-token cache each time, so the figure is not flattered by earlier runs; the one-off
    lookup tables are built before the clock starts, like loading the tokenizer)."""
    data_bytes = len(text.encode("utf-8"))
    if hasattr(tokenizer, "clear_cache"):
        tokenizer.clear_cache()
    if hasattr(tokenizer, "prepare_tables"):
        tokenizer.prepare_tables()
    start = time.perf_counter()
    ids = tokenizer.encode(text)
    seconds = time.perf_counter() - start
    roundtrip = tokenizer.decode(ids) == text
    return {"bytes": data_bytes, "tokens": len(ids), "bytes_per_token": data_bytes / len(ids),
            "mb_per_s": data_bytes / seconds / 1e6, "roundtrip": roundtrip}


def sample_documents(text: str, count: int, seed: int) -> list[str]:
    """``count`` documents (split at ``<|endoftext|>``) drawn without replacement, in draw order."""
    docs = [d.strip("\n") for d in text.split(END_OF_TEXT) if d.strip()]
    return random.Random(seed).sample(docs, min(count, len(docs)))


def sampled_documents(count: int = 10, seed: int = 0) -> tuple[dict[str, list[str]], list[str]]:
    """corpus -> documents sampled from all of its validation text, and notes on absent corpora."""
    samples, notes = {}, []
    for name, corpus in EVAL_CORPORA.items():
        try:
            samples[name] = sample_documents(shared_corpus(corpus).read_text(encoding="utf-8"), count, seed)
        except SharedDataMissing as e:
            notes.append(f"sampled documents of {name}: skipped ({e})")
    stories_val = get_source("stories", DataSettings(), "valid").path()
    samples["stories"] = sample_documents(stories_val.read_text(encoding="utf-8"), count, seed)
    return samples, notes


def assignment_tokenizers(out_dir: Path) -> tuple[dict, list[str]]:
    """The bpe-scale tokenizers (trained now unless that experiment already ran: its outputs are
    then read, never rewritten under this experiment's name) and GPT-2's."""
    from tritonlm.tokenizer import Tokenizer
    from tritonlm.train.experiments import bpe_scale

    tokenizers, notes = {}, []
    folders = {case.name: out_dir / "bpe-scale" / case.name for case in bpe_scale.CASES}
    try:
        if not all((f / "vocab.json").is_file() and (f / "merges.txt").is_file() for f in folders.values()):
            bpe_scale.run(out_dir)  # that experiment trains them (and writes its own outputs)
        for case in bpe_scale.CASES:
            folder = folders[case.name]
            tokenizers[f"{case.name} (all)"] = Tokenizer.from_files(folder / "vocab.json", folder / "merges.txt",
                                                                   SPECIAL_TOKENS)
    except SharedDataMissing as e:
        notes.append(f"bpe-scale tokenizers: skipped ({e})")
    add_gpt2(tokenizers, notes)
    return tokenizers, notes


def compression_of_samples(tokenizers: dict, samples: dict[str, list[str]]) -> list[dict]:
    """bytes/token of each tokenizer on each corpus's sampled documents, each encoded alone."""
    rows = []
    for tok_name, tokenizer in tokenizers.items():
        for corpus, docs in samples.items():
            sizes = [(len(d.encode("utf-8")), len(tokenizer.encode(d))) for d in docs]
            ratios = [b / t for b, t in sizes]
            rows.append({"tokenizer": tok_name, "corpus": corpus, "documents": len(docs),
                         "bytes": sum(b for b, _ in sizes), "tokens": sum(t for _, t in sizes),
                         "bytes_per_token": sum(b for b, _ in sizes) / sum(t for _, t in sizes),
                         "min_doc_bytes_per_token": min(ratios), "max_doc_bytes_per_token": max(ratios)})
            print(f"{tok_name:24} on {len(docs)} {corpus} documents: {rows[-1]['bytes_per_token']:.2f} bytes/token")
    return rows


def run(out_dir: str | Path, vocab_size: int = 10_000, train_bytes: int = 20_000_000,
        sample_bytes: int = 1_000_000) -> list[dict]:
    experiments_dir = Path(out_dir)
    out_dir = experiments_dir / "tokenizers"
    tokenizers, notes = build_tokenizers(vocab_size, train_bytes)
    assignment, more_notes = assignment_tokenizers(experiments_dir)
    notes += more_notes
    samples, more_notes = sampled_documents()
    notes += more_notes
    sampled_rows = compression_of_samples(assignment, samples)
    tokenizers.update({name: tok for name, tok in assignment.items() if name != "gpt2"})
    texts, more_notes = evaluation_texts(sample_bytes)
    notes += more_notes
    cores = os.cpu_count() or 1
    rows = []
    for tok_name, tokenizer in tokenizers.items():
        for corpus, text in texts.items():
            m = measure(tokenizer, text)
            hours = PILE_BYTES / (m["mb_per_s"] * 1e6) / 3600
            rows.append({"tokenizer": tok_name, "corpus": corpus, **m, "pile_hours_1_process": hours,
                         f"pile_hours_{cores}_processes": hours / cores})
            print(f"{tok_name:22} on {corpus:10}: {m['bytes_per_token']:.2f} bytes/token, {m['mb_per_s']:.2f} MB/s, "
                  f"825 GB in {hours:,.0f} h on 1 process")
    write_outputs(out_dir, rows, sampled_rows, notes, cores, vocab_size, train_bytes, sample_bytes)
    return rows


def write_outputs(out_dir: Path, rows: list[dict], sampled_rows: list[dict], notes: list[str], cores: int,
                  vocab_size: int, train_bytes: int, sample_bytes: int) -> None:
    columns = ["tokenizer", "corpus", "bytes_per_token", "mb_per_s", "pile_hours_1_process",
               f"pile_hours_{cores}_processes", "tokens", "roundtrip"]
    headers = ["tokenizer", "corpus", "bytes/token", "MB/s (1 process)", "825 GB: hours (1 process)",
               f"825 GB: hours ({cores} processes)", "tokens", "decode(encode(x)) == x"]
    text = [f"## Tokenizers: compression and throughput", "",
            f"Our BPE tokenizers `ours-*`: vocab {vocab_size:,}, trained on the first {train_bytes / 1e6:g} MB of "
            f"each training corpus; `gutenberg-10k (all)` and `gutenberg+imdb-32k (all)`: those of the bpe-scale "
            f"experiment, trained on all of Gutenberg train and of Gutenberg + IMDB train. Each row encodes the first {sample_bytes / 1e6:g} MB of a validation corpus in one process "
            f"(`Tokenizer.encode`). The multi-process figure assumes linear scaling over {cores} cores.", "",
            markdown_table(rows, columns, headers), "", "![bytes per token](tokenizers.png)", "",
            "### 10 sampled documents per corpus", "",
            "Documents drawn at random (seed 0) from all of each validation corpus (a Gutenberg document is a "
            "whole book, an IMDB one a review), each encoded alone; bytes/token over the 10, and the range "
            "over single documents.", "",
            markdown_table(sampled_rows, ["tokenizer", "corpus", "documents", "bytes", "tokens", "bytes_per_token",
                                          "min_doc_bytes_per_token", "max_doc_bytes_per_token"],
                           ["tokenizer", "corpus", "documents", "bytes", "tokens", "bytes/token",
                            "lowest (one document)", "highest (one document)"]), ""]
    text += [f"- {n}" for n in notes]
    write_text_atomic(out_dir / "tokenizers.md", "\n".join(text) + "\n")
    write_json_atomic(out_dir / "tokenizers.json", {"metadata": run_metadata(), "rows": rows,
                                                   "sampled_documents": sampled_rows, "notes": notes})
    plot_bytes_per_token(rows, out_dir / "tokenizers.png")


def plot_bytes_per_token(rows: list[dict], out: Path) -> None:
    tokenizers = list(dict.fromkeys(r["tokenizer"] for r in rows))
    corpora = list(dict.fromkeys(r["corpus"] for r in rows))
    fig, ax = pyplot().subplots(figsize=(7.5, 4))
    width = 0.8 / len(tokenizers)
    for i, tok in enumerate(tokenizers):
        values = [next((r["bytes_per_token"] for r in rows if r["tokenizer"] == tok and r["corpus"] == c), 0) for c in corpora]
        ax.bar([j + i * width for j in range(len(corpora))], values, width, label=tok)
    ax.set_xticks([j + 0.4 - width / 2 for j in range(len(corpora))], corpora)
    ax.set_ylabel("bytes per token (higher = better compression)")
    ax.set_title("Compression of each tokenizer on each corpus")
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    save_figure(fig, out, dpi=110)


def main(out_dir: str | Path) -> int:
    run(out_dir)
    return 0
