"""The sampling experiment: its measures on known texts, and the grid drawn from a real checkpoint."""

from __future__ import annotations

import json

import pytest
import torch

from tritonlm.model import TransformerLM, presets
from tritonlm.tokenizer import ByteTokenizer
from tritonlm.train.checkpoint import save_checkpoint
from tritonlm.train.experiments import sampling
from tritonlm.train.experiments.sampling import Setting, known_word_share, repetition, settings_grid


def test_repetition_counts_repeated_word_4grams():
    assert repetition("a b c d a b c d") == pytest.approx(1 - 4 / 5)
    assert repetition("one two three four five six") == 0.0
    assert repetition("go go go go go go") == pytest.approx(1 - 1 / 3)
    assert repetition("too short") == 0.0


def test_known_words_ignore_case_punctuation_and_special_tokens():
    vocabulary = {"the", "cat", "dog"}
    assert known_word_share("The cat, zzq<|endoftext|>DOG!", vocabulary) == pytest.approx(3 / 4)
    assert known_word_share("... 123", vocabulary) == 1.0


def test_greedy_is_drawn_once_whatever_the_top_p():
    grid = settings_grid([0.0, 0.7], [1.0, 0.9])
    assert grid == [Setting(0.0, 1.0), Setting(0.7, 1.0), Setting(0.7, 0.9)]
    assert [s.label for s in grid] == ["greedy", "T 0.7, top-p 1", "T 0.7, top-p 0.9"]


@pytest.fixture(scope="module")
def byte_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("run")
    torch.manual_seed(0)
    save_checkpoint(TransformerLM.from_config(presets.micro(vocab_size=256, context_length=16)), None, 1,
                    run / "checkpoint.pt")
    return run


def test_every_setting_and_prompt_gets_a_full_length_reproducible_sample(byte_run, tmp_path):
    reference = tmp_path / "reference.txt"
    reference.write_text("the quick brown fox jumps over the lazy dog\n", encoding="utf-8")
    out = tmp_path / "sampling"
    rows = sampling.run(str(byte_run), reference, out, prompts=("ab", ""), temperatures=(0.0, 1.0), top_ps=(1.0, 0.5),
                        new_tokens=40, tokenizer="bytes")
    assert [r["setting"] for r in rows] == ["greedy", "T 1, top-p 1", "T 1, top-p 0.5"]
    saved = json.loads((out / "sampling.json").read_text())
    assert len(saved["samples"]) == 6 and {s["new_tokens"] for s in saved["samples"]} == {40}
    # The same seed at the same setting draws the same text; a context of 16 is slid past.
    model = TransformerLM.from_config(presets.micro(vocab_size=256, context_length=16))
    model.load_state_dict(torch.load(byte_run / "checkpoint.pt", weights_only=False)["model"])
    again = sampling.draw(model.eval(), ByteTokenizer(), ("ab",), [Setting(1.0, 0.5)], 40, seed=0)
    assert again[0]["text"] == next(s["text"] for s in saved["samples"]
                                    if s["setting"] == "T 1, top-p 0.5" and s["prompt"] == "ab")
    page = (out / "sampling.md").read_text()
    assert "| greedy |" in page and "![sampling](sampling.png)" in page
    assert (out / "sampling.png").stat().st_size > 1000


def test_sampling_without_a_run_says_what_to_give():
    from conftest import assert_user_error, run_cli

    assert_user_error(run_cli("train.experiments", "sampling"), r"sampling needs --run RUN")


def test_compared_runs_are_sampled_alike_beside_their_tokens_and_loss(byte_run, tmp_path):
    """``--compare``: every run continues the same prompts with the same seed at T 0.8, top-p 0.95;
    the main run's row is its grid row at that setting, drawn again, and the page's table links
    each figure to sampling.json."""
    from test_doc_figures import check_markdown
    from tritonlm.train.experiments.figure_links import TABLE_LINKS, link_tables

    other = tmp_path / "other"
    other.mkdir()
    torch.manual_seed(1)
    save_checkpoint(TransformerLM.from_config(presets.micro(vocab_size=256, context_length=16)), None, 1,
                    other / "checkpoint.pt")
    (other / "report.json").write_text(json.dumps({"tokens_seen": 12_345, "final_val_loss": 5.4321}))
    reference = tmp_path / "reference.txt"
    reference.write_text("the quick brown fox jumps over the lazy dog\n", encoding="utf-8")
    out = tmp_path / "docs" / "sampling"
    rows = sampling.run(str(byte_run), reference, out, prompts=("the ", ""), temperatures=(0.8,), top_ps=(0.95, 1.0),
                        new_tokens=30, tokenizer="bytes", compare=(str(other),))
    saved = json.loads((out / "sampling.json").read_text())
    runs = saved["runs"]
    assert [(r["run"], r["tokens_seen"], r["final_val_loss"]) for r in runs] == [
        (byte_run.name, None, None), ("other", 12_345, 5.4321)]
    grid_row = next(r for r in rows if r["setting"] == "T 0.8, top-p 0.95")
    assert (runs[0]["known_words"], runs[0]["repeated_4grams"]) == (grid_row["known_words"], grid_row["repeated_4grams"])
    model = TransformerLM.from_config(presets.micro(vocab_size=256, context_length=16))
    model.load_state_dict(torch.load(other / "checkpoint.pt", weights_only=False)["model"])
    drawn = sampling.draw(model.eval(), ByteTokenizer(), ("the ", ""), [Setting(0.8, 0.95)], 30, seed=0)
    expected = sampling.summarise(drawn, set(sampling.words(reference.read_text())))[0]
    assert (runs[1]["known_words"], runs[1]["repeated_4grams"]) == (expected["known_words"], expected["repeated_4grams"])
    page = link_tables((out / "sampling.md").read_text(), "sampling/sampling.json", TABLE_LINKS["sampling.md"][1])
    assert "### What training buys (T 0.8, top-p 0.95, the same prompts and seed)" in page
    checked, problems = check_markdown(page, tmp_path / "docs", "sampling.md")
    assert problems == [] and page.count("sampling.json#/runs/") == 2 * 2 + 2  # known, repeated; tokens, loss of "other"
