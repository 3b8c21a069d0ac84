"""The tokenizer experiments: documents are sampled whole and reproducibly; compression is
measured per document."""

from __future__ import annotations

from tritonlm.tokenizer import END_OF_TEXT, ByteTokenizer, train_bpe
from tritonlm.tokenizer.tokenizer import Tokenizer
from tritonlm.train.experiments.tokenizers import compression_of_samples, sample_documents


def _corpus(n: int) -> tuple[str, list[str]]:
    docs = [f"Document {i}: " + " ".join(f"w{(i * 7 + j) % 13}" for j in range(5 + i % 9)) for i in range(n)]
    return f"\n{END_OF_TEXT}\n".join(docs) + f"\n{END_OF_TEXT}\n", docs


def test_documents_are_sampled_whole_without_repeats_and_reproducibly():
    text, docs = _corpus(40)
    picked = sample_documents(text, 10, seed=0)
    assert len(picked) == len(set(picked)) == 10
    assert all(d in docs for d in picked)
    assert picked == sample_documents(text, 10, seed=0) != sample_documents(text, 10, seed=1)
    assert sorted(sample_documents(text, 100, seed=0)) == sorted(docs)  # capped at what there is


def test_compression_is_total_bytes_over_total_tokens_of_the_documents(tmp_path):
    text, docs = _corpus(30)
    path = tmp_path / "train.txt"
    path.write_text(text, encoding="utf-8")
    vocab, merges = train_bpe(path, 300, [END_OF_TEXT])
    bpe = Tokenizer(vocab, merges, [END_OF_TEXT])
    samples = {"toy": sample_documents(text, 10, seed=3), "accents": ["naïve café, déjà vu", "über straße"]}
    rows = {(r["tokenizer"], r["corpus"]): r for r in
            compression_of_samples({"bytes": ByteTokenizer(), "bpe": bpe}, samples)}
    # Raw bytes: exactly one byte per token, on every document (UTF-8 bytes, not characters).
    for corpus in samples:
        r = rows["bytes", corpus]
        assert r["bytes_per_token"] == r["min_doc_bytes_per_token"] == r["max_doc_bytes_per_token"] == 1.0
    assert rows["bytes", "accents"]["bytes"] == len("naïve café, déjà vu".encode()) + len("über straße".encode())
    toy = rows["bpe", "toy"]
    assert toy["tokens"] == sum(len(bpe.encode(d)) for d in samples["toy"])
    assert toy["bytes_per_token"] > 1.5  # the merges learnt on these documents compress them
    assert toy["min_doc_bytes_per_token"] <= toy["bytes_per_token"] <= toy["max_doc_bytes_per_token"]


def test_the_tokenizers_experiment_reads_the_bpe_scale_tokenizers_without_rewriting_that_experiment(tmp_path,
                                                                                                     monkeypatch):
    """Run after bpe-scale, the tokenizers experiment loads its vocabularies and leaves its
    results (and the command recorded in them) alone; it trains them only when they are missing."""
    from tritonlm.train.experiments import bpe_scale
    from tritonlm.train.experiments.tokenizers import assignment_tokenizers

    text, _ = _corpus(30)
    (tmp_path / "train.txt").write_text(text, encoding="utf-8")

    def train_cases(out_dir):  # what bpe_scale.run leaves behind: one tokenizer folder per case
        calls.append(out_dir)
        for n, case in enumerate(bpe_scale.CASES):
            Tokenizer(*train_bpe(tmp_path / "train.txt", 270 + 10 * n, [END_OF_TEXT]), [END_OF_TEXT]).save(
                out_dir / "bpe-scale" / case.name)

    calls = []
    train_cases(tmp_path)
    record = tmp_path / "bpe-scale" / "bpe_scale.json"
    record.write_text('{"metadata": {"command": "python -m train.experiments bpe-scale"}}')
    monkeypatch.setattr(bpe_scale, "run", train_cases)
    tokenizers, _ = assignment_tokenizers(tmp_path)
    assert calls == [tmp_path] and record.read_text() == '{"metadata": {"command": "python -m train.experiments bpe-scale"}}'
    assert [len(tokenizers[f"{case.name} (all)"].vocab) for case in bpe_scale.CASES] == [270, 280]
    (tmp_path / "bpe-scale" / bpe_scale.CASES[1].name / "merges.txt").unlink()
    assignment_tokenizers(tmp_path)
    assert calls == [tmp_path, tmp_path]  # a missing tokenizer is trained by that experiment
