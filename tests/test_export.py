"""Export to Hugging Face: a trained run loads in ``transformers`` with the project's logits, and
its tokenizer gives the project's ids through ``tokenizers`` and ``AutoTokenizer``."""

from __future__ import annotations

import json

import pytest
import torch

from tritonlm.train import train as train_cli
from tritonlm.train.export import ExportError, check_llama_compatible, main as export_main, rope_half_order
from tritonlm.train.run_folder import load_model, load_tokenizer

transformers = pytest.importorskip("transformers")
tokenizers = pytest.importorskip("tokenizers")
pytest.importorskip("safetensors")

pytestmark = pytest.mark.usefixtures("single_thread")

# awkward on purpose: 3 heads of 16, d_ff not a multiple of 64
SHAPE = ["--model.context_length=24", "--model.d_model=48", "--model.num_heads=3", "--model.num_layers=2",
         "--model.d_ff=100", "--model.rope_theta=500", "--batch_size=4", "--eval_interval=0", "--progress=false",
         "--device=cpu", "--max_iters=6", "--max_lr=1e-2"]


def trained_run(folder, corpus, *extra) -> object:
    assert train_cli.main([f"--train_data={corpus / 'train.bin'}", f"--out_dir={folder}", *SHAPE, *extra]) == 0
    return folder


@pytest.mark.parametrize("tie", ["false", "true"], ids=["untied", "tied"])
def test_exported_model_gives_the_projects_logits_in_transformers(tmp_path, bpe_corpus, tie):
    run = trained_run(tmp_path / "run", bpe_corpus, f"--model.tie_embeddings={tie}")
    assert export_main([str(run), str(tmp_path / "hf")]) == 0
    config = json.loads((tmp_path / "hf" / "config.json").read_text())
    assert config["model_type"] == "llama" and config["tie_word_embeddings"] == (tie == "true")
    theirs = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "hf").eval()
    ours = load_model(run, "cpu", "torch")
    ids = load_tokenizer(None, run).encode((bpe_corpus / "valid.txt").read_text())
    batch = torch.tensor([ids[i * 24:(i + 1) * 24] for i in range(5)])
    with torch.no_grad():
        expected, got = ours(batch), theirs(batch).logits
    assert expected.abs().max() > 1.0  # trained, not a blank model
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)
    # bf16 on both sides agrees to bf16 rounding
    theirs_bf16 = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "hf", dtype=torch.bfloat16).eval()
    with torch.no_grad():
        got_bf16 = theirs_bf16(batch).logits.float()
    torch.testing.assert_close(got_bf16, expected, rtol=0.05, atol=0.15)


def test_the_exported_tokenizer_gives_the_same_ids(tmp_path, bpe_corpus, corpus_file):
    run = trained_run(tmp_path / "run", bpe_corpus)
    assert export_main([str(run), str(tmp_path / "hf")]) == 0
    assert export_main([str(bpe_corpus / "tok"), str(tmp_path / "tok.json"), "--to", "tokenizers"]) == 0
    ours = load_tokenizer(None, run)
    auto = transformers.AutoTokenizer.from_pretrained(tmp_path / "hf")
    alone = tokenizers.Tokenizer.from_file(str(tmp_path / "tok.json"))
    texts = [(bpe_corpus / "valid.txt").read_text(), "<|endoftext|>Hi  there,\n\n\tnaïve café 1234!<|endoftext|>",
             "   leading spaces and trailing   ", "ünïcödé ✓ 🙂 — “quotes”"]
    for text in texts:
        ids = ours.encode(text)
        assert alone.encode(text).ids == ids and auto(text)["input_ids"] == ids
        assert alone.decode(ids, skip_special_tokens=False) == text
    for name in ("gutenberg_valid", "imdb_test", "tinystories_valid_sample"):
        text = corpus_file(name, 300_000).read_text(encoding="utf-8")
        assert alone.encode(text).ids == ours.encode(text), name


def test_options_llama_cannot_express_are_refused(tmp_path, bpe_corpus, capsys):
    run = trained_run(tmp_path / "run", bpe_corpus, "--model.qk_norm=true", "--model.logit_softcap=30")
    assert export_main([str(run), str(tmp_path / "hf")]) == 2
    err = capsys.readouterr().err
    assert "QK-norm" in err and "soft-capping" in err and not (tmp_path / "hf").exists()
    with pytest.raises(ExportError, match="relu2"):
        check_llama_compatible(load_model(run, "cpu", "torch").config.__class__(ffn="relu2"))


def test_rope_pair_order():
    assert rope_half_order(8).tolist() == [0, 2, 4, 6, 1, 3, 5, 7]
