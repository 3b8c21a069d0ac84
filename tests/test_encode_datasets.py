"""The encode-datasets experiment (tokenizer_experiments (d)) on small corpora and tokenizers."""

from __future__ import annotations

import json

import pytest

from tritonlm.tokenizer import Tokenizer, train_bpe
from tritonlm.train.experiments import encode_datasets

TEXT = ("The old clock struck nine; the café was empty. Ünïcödé and émojis 🙂 stay whole.\n" * 40
        + "Numbers 123 4567, punctuation!?, and  double  spaces.\n" * 25)


@pytest.fixture
def small_world(tmp_path, monkeypatch):
    """Two tiny bpe-scale tokenizers under OUT/bpe-scale and two splits per corpus, as files."""
    corpora = {}
    for name, cut in (("gutenberg_train", None), ("gutenberg_valid", 900), ("imdb_train", 1500), ("imdb_test", 400)):
        path = tmp_path / "corpora" / f"{name}.txt"
        path.parent.mkdir(exist_ok=True)
        path.write_text(TEXT[:cut] if cut else TEXT, encoding="utf-8")
        corpora[name] = path
    monkeypatch.setattr(encode_datasets, "shared_corpus", lambda name: corpora[name])
    out = tmp_path / "out"
    for case, vocab_size in (("gutenberg-10k", 300), ("gutenberg+imdb-32k", 400)):
        vocab, merges = train_bpe(corpora["gutenberg_train"], vocab_size, ["<|endoftext|>"], num_workers=1)
        Tokenizer(vocab, merges, ["<|endoftext|>"]).save(out / "bpe-scale" / case)
    return out, corpora


def test_every_split_is_encoded_with_its_tokenizer_and_sized(small_world, capsys):
    out, corpora = small_world
    rows = encode_datasets.run(out)
    assert [(r["tokenizer"], r["corpus"]) for r in rows] == [
        (case, corpus) for case, splits in encode_datasets.SPLITS.items() for corpus in splits]
    for row in rows:
        tokenizer = Tokenizer.from_dir(out / "bpe-scale" / row["tokenizer"])
        text = corpora[row["corpus"]].read_text(encoding="utf-8")
        assert row["tokens"] == len(tokenizer.encode(text)) and row["bytes"] == len(text.encode())
        assert row["dtype"] == "uint16" and row["vocab_size"] >= tokenizer.vocab_size
        assert 2 * row["tokens"] < row["file_bytes"] < row["int32_bytes"] + 4096  # 2 bytes an id, plus the header
    assert not list((out / "encode-datasets").glob("*.bin"))  # token files removed after sizing
    page = (out / "encode-datasets" / "encode_datasets.md").read_text()
    saved = json.loads((out / "encode-datasets" / "encode_datasets.json").read_text())
    assert saved["rows"] == rows and "uint16" in page and "gutenberg+imdb-32k" in page


def test_a_rerun_keeps_finished_rows(small_world, monkeypatch):
    out, _ = small_world
    first = encode_datasets.run(out)
    monkeypatch.setattr(encode_datasets, "encode_split", lambda *a: pytest.fail("a finished split was encoded again"))
    assert encode_datasets.run(out) == first


def test_without_the_bpe_scale_tokenizers_it_says_what_to_run(tmp_path):
    with pytest.raises(FileNotFoundError, match="python -m train.experiments bpe-scale --out"):
        encode_datasets.run(tmp_path)
