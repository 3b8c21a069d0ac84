"""``python -m train.experiments encode-datasets``: the assignment's tokenizer_experiments (d) here.

The question: encode the training and development sets with the two tokenizers into the integer
ids training reads, and say why ``uint16`` is a good choice for them. The two tokenizers are those
of ``bpe-scale`` (run it first with the same ``--out``): the 10k BPE of all of Gutenberg train
encodes Gutenberg's splits, the 32k BPE of Gutenberg + IMDB train encodes both corpora's splits.
Each split is written with ``tokenizer.encode_file`` (all cores) into a token file, exactly as
training reads it; the row records tokens, bytes per token, throughput, the file's dtype and size
and what the same ids would take as int32. The token files are then deleted (hundreds of MB; the
sizes are the answer). Finished rows are kept and not re-encoded when the command is run again.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from tritonlm.corpora.shared import shared_corpus
from tritonlm.tokenizer.corpus_encoder import encode_file
from tritonlm.tokenizer.tokenfile import read_token_header
from tritonlm.train.experiments.bpe_scale import CASES
from tritonlm.train.presentation import markdown_table
from tritonlm.util.atomic import write_json_atomic, write_text_atomic
from tritonlm.util.runinfo import run_metadata

# The bpe-scale tokenizer -> the splits it encodes (those of the corpora it was trained on).
SPLITS = {
    "gutenberg-10k": ("gutenberg_train", "gutenberg_valid"),
    "gutenberg+imdb-32k": ("gutenberg_train", "gutenberg_valid", "imdb_train", "imdb_test"),
}


def tokenizer_folder(out: Path, case: str) -> Path:
    folder = out / "bpe-scale" / case
    if not (folder / "vocab.json").is_file():
        raise FileNotFoundError(f"no tokenizer at {folder}: run `python -m train.experiments bpe-scale --out {out}` first")
    return folder


def encode_split(tokenizer: Path, case: str, corpus: str, work: Path) -> dict:
    """Encode one split into a token file; what it took and what the file holds."""
    text = shared_corpus(corpus)
    tokens_path = work / f"{case}.{corpus}.bin"
    stats = encode_file(text, tokenizer, tokens_path, progress=True)
    header = read_token_header(tokens_path)
    row = {"tokenizer": case, "corpus": corpus, "bytes": stats.input_bytes, "tokens": stats.num_tokens,
           "bytes_per_token": stats.bytes_per_token, "seconds": round(stats.seconds, 2),
           "mb_per_s": stats.mb_per_second, "vocab_size": header.vocab_size, "dtype": str(header.dtype),
           "max_id_bound": int(np.iinfo(header.dtype).max), "file_bytes": tokens_path.stat().st_size,
           "int32_bytes": 4 * stats.num_tokens}
    tokens_path.unlink()
    return row


def write_outputs(folder: Path, rows: list[dict]) -> None:
    columns = ["tokenizer", "corpus", "bytes", "tokens", "bytes_per_token", "mb_per_s", "dtype", "file_bytes",
               "int32_bytes"]
    headers = ["tokenizer", "split", "text bytes", "tokens", "bytes/token", "MB/s (all cores)", "dtype",
               "token file bytes", "as int32"]
    total = sum(r["file_bytes"] for r in rows), sum(r["int32_bytes"] for r in rows)
    text = ["## Encoding the datasets (tokenizer_experiments (d))", "",
            "Each bpe-scale tokenizer encodes the splits of the corpora it was trained on into a token file "
            "(`tokenizer.encode_file`, all cores; the file as training reads it).", "",
            markdown_table(rows, columns, headers), "",
            f"Token files: {total[0]:,} bytes in all; the same ids as int32: {total[1]:,} bytes."]
    write_text_atomic(folder / "encode_datasets.md", "\n".join(text) + "\n")
    write_json_atomic(folder / "encode_datasets.json", {"metadata": run_metadata(), "rows": rows}, indent=1)


def run(out: str | Path) -> list[dict]:
    """Encode every split with its tokenizer (resuming: finished rows are kept); the rows."""
    out = Path(out)
    folder = out / "encode-datasets"
    folder.mkdir(parents=True, exist_ok=True)
    saved = folder / "encode_datasets.json"
    rows = json.loads(saved.read_text())["rows"] if saved.is_file() else []
    done = {(r["tokenizer"], r["corpus"]) for r in rows}
    for case in CASES:
        tokenizer = tokenizer_folder(out, case.name)
        for corpus in SPLITS[case.name]:
            if (case.name, corpus) in done:
                continue
            print(f"{case.name}: encoding {corpus}")
            rows.append(encode_split(tokenizer, case.name, corpus, folder))
            write_outputs(folder, rows)  # after every split: an interrupted run keeps what it finished
    print(f"{len(rows)} splits encoded; table in {folder / 'encode_datasets.md'}")
    return rows
