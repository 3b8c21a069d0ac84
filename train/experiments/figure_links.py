"""Figures on docs/results.md as links to the JSON value they come from.

A figure is written ``[4.627](results/ablations/results.json#/results/0/final_val_loss)``: the
link text is the number as the page shows it, the fragment a JSON pointer (RFC 6901) to the value,
optionally followed by ``*FACTOR`` when the page shows another unit (``*1e-6`` for bytes as MB).
A reader clicks through to the file; ``tests/test_doc_figures.py`` checks every such link.

The experiments write their tables as plain Markdown next to their JSON; ``TABLE_LINKS`` says,
for each of those tables, which JSON list its rows are and which key each column shows, so the
page generator can link every cell without re-rendering the tables.
"""

from __future__ import annotations

import re
from collections.abc import Callable

Columns = dict[str, str]  # column header -> key path inside a row's object ("times/merge_s", "corpus_bytes*1e-6")
TableSpec = Callable[[int], "tuple[str, Columns] | None"]  # table index in the file -> (rows pointer, columns)

NUMBER = re.compile(r"^[-+]?\d[\d,]*(?:\.\d+)?(?:[eE][-+]?\d+)?$")


def link(text: str, target: str, pointer: str) -> str:
    """``text`` as a link to the value at ``pointer`` in the JSON file ``target``."""
    return f"[{text}]({target}#{pointer})"


def link_number(value, text: str, target: str, pointer: str) -> str:
    """``text`` linked when the value is a number (a missing value stays plain text)."""
    return link(text, target, pointer) if isinstance(value, (int, float)) and not isinstance(value, bool) else text


def _cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def _link_row(line: str, headers: list[str], target: str, row_pointer: str, columns: Columns) -> str:
    cells = _cells(line)
    if len(cells) != len(headers):  # a cell holding a "|" of its own: leave the row as it is
        return line
    for i, (header, cell) in enumerate(zip(headers, cells)):
        key = columns.get(header)
        if key is not None and NUMBER.match(cell):
            cells[i] = link(cell, target, f"{row_pointer}/{key}")
    return "| " + " | ".join(cells) + " |"


def link_tables(markdown: str, target: str, spec: TableSpec) -> str:
    """Link the numeric cells of the Markdown tables in ``markdown`` to ``target`` as ``spec`` says:
    row r of table k is the object at ``rows_pointer/r``, and column ``header`` shows its ``key``."""
    lines, out, table_index, i = markdown.splitlines(), [], 0, 0
    while i < len(lines):
        is_table = lines[i].startswith("|") and i + 1 < len(lines) and lines[i + 1].startswith("|---")
        if not is_table:
            out.append(lines[i])
            i += 1
            continue
        headers, found = _cells(lines[i]), spec(table_index)
        out += lines[i:i + 2]
        i += 2
        row = 0
        while i < len(lines) and lines[i].startswith("|"):
            out.append(lines[i] if found is None else _link_row(lines[i], headers, target, f"{found[0]}/{row}", found[1]))
            i, row = i + 1, row + 1
        table_index += 1
    return "\n".join(out) + ("\n" if markdown.endswith("\n") else "")


SWEEP_COLUMNS: Columns = {"best val loss": "best_val_loss", "final val loss": "final_val_loss",
                          "val loss, whole val set": "full_val_loss", "val tokens": "full_val_tokens",
                          "tokens/s": "tokens_per_s", "tokens": "tokens", "steps": "steps"}
BEST_PER_BATCH_COLUMNS: Columns = {"batch": "batch", "best max_lr": "max_lr", "val loss (mean over seeds)": "mean",
                                   "std": "std", "steps": "steps", "tokens/s (median)": "tokens_per_s"}
SEED_GROUP_COLUMNS: Columns = {"mean val loss": "mean", "std": "std", "min": "min", "max": "max",
                               "mean − best mean": "gap_to_best"}
BPE_SCALE_COLUMNS: Columns = {
    "MB": "corpus_bytes*1e-6", "vocab": "vocab_size", "wall s": "wall_s", "pre-tokenise s": "times/pretokenise_s",
    "merge s": "times/merge_s", "peak RSS, process tree (MB)": "peak_tree_rss_mb",
    "distinct pre-tokens": "distinct_pretokens", "bytes/token (1 MB sample)": "bytes_per_token_sample"}
PROFILE_COLUMNS: Columns = {"calls": "calls", "self s": "self_s", "cumulative s": "cumulative_s"}
TOKENIZER_COLUMNS: Columns = {
    "bytes/token": "bytes_per_token", "MB/s (1 process)": "mb_per_s", "825 GB: hours (1 process)": "pile_hours_1_process",
    "825 GB: hours (2 processes)": "pile_hours_2_processes", "tokens": "tokens"}
SAMPLED_DOCUMENT_COLUMNS: Columns = {
    "documents": "documents", "bytes": "bytes", "tokens": "tokens", "bytes/token": "bytes_per_token",
    "lowest (one document)": "min_doc_bytes_per_token", "highest (one document)": "max_doc_bytes_per_token"}
LOSS_SPLIT_COLUMNS: Columns = {"share": "share", "mean loss": "mean_loss", "contribution": "contribution"}
ENCODE_COLUMNS: Columns = {
    "text bytes": "bytes", "tokens": "tokens", "bytes/token": "bytes_per_token", "MB/s (all cores)": "mb_per_s",
    "token file bytes": "file_bytes", "as int32": "int32_bytes"}
SAMPLING_COLUMNS: Columns = {"known words": "known_words", "repeated word 4-grams": "repeated_4grams"}


GAP_COLUMNS: Columns = {"seed pairs": "seeds", "gap at 25% of tokens": "at_25", "gap at 50% of tokens": "at_50",
                        "gap at 100% of tokens": "at_100", "gap, whole val set (mean)": "final_mean",
                        "std over seeds": "final_std"}


def gap_tables(k: int) -> tuple[str, Columns] | None:
    """An ablation sweep's gaps to its baseline (``train.experiments.gaps``)."""
    return ("/groups", GAP_COLUMNS) if k == 0 else None


def sweep_table_spec(data: dict) -> TableSpec:
    """How a sweep's tables map onto its results.json ``data``: each setting's mean and spread
    first when it ran at several seeds, then every run, then (a batch-size sweep at several rates
    whose file records them) the best rate per size."""
    pointers = (["/groups"] if "groups" in data else []) + ["/results"]
    pointers += ["/best_per_batch"] if "best_per_batch" in data else []
    columns = {"/groups": SEED_GROUP_COLUMNS, "/results": SWEEP_COLUMNS, "/best_per_batch": BEST_PER_BATCH_COLUMNS}
    return lambda k: (pointers[k], columns[pointers[k]]) if k < len(pointers) else None


def bpe_scale_tables(k: int) -> tuple[str, Columns]:
    """The cases, then one cProfile table per case."""
    return ("/cases", BPE_SCALE_COLUMNS) if k == 0 else (f"/cases/{k - 1}/profile/top_by_self_time", PROFILE_COLUMNS)


def tokenizer_tables(k: int) -> tuple[str, Columns] | None:
    return {0: ("/rows", TOKENIZER_COLUMNS), 1: ("/sampled_documents", SAMPLED_DOCUMENT_COLUMNS)}.get(k)


SAMPLING_RUNS_COLUMNS: Columns = {"tokens seen": "tokens_seen", "final val loss": "final_val_loss", **SAMPLING_COLUMNS}


def sampling_tables(k: int) -> tuple[str, Columns] | None:
    return ("/rows", SAMPLING_COLUMNS) if k == 0 else ("/runs", SAMPLING_RUNS_COLUMNS) if k == 1 else None


# The JSON file beside each experiment table, and how its tables' rows and columns map onto it.
TABLE_LINKS: dict[str, tuple[str, TableSpec]] = {
    "bpe_scale.md": ("bpe_scale.json", bpe_scale_tables),
    "encode_datasets.md": ("encode_datasets.json", lambda k: ("/rows", ENCODE_COLUMNS) if k == 0 else None),
    "tokenizers.md": ("tokenizers.json", tokenizer_tables),
    "sampling.md": ("sampling.json", sampling_tables),
    "loss_split.md": ("loss_split.json", lambda k: (f"/runs/{k}/cells", LOSS_SPLIT_COLUMNS)),
}
