"""The leaderboard job: budget logic, full-set evaluation, report fields, presets, a tiny end-to-end run."""

from __future__ import annotations

import json
import math
import os
import re
import signal

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from tritonlm.model import ModelConfig, TransformerLM
from tritonlm.tokenizer.tokenfile import write_tokens
from tritonlm.train.config import TrainConfig
from tritonlm.train.leaderboard.cli import main, resolve_job
from tritonlm.train.leaderboard.evaluate import evaluate_full
from tritonlm.train.metrics_log import read_metrics
from tritonlm.train.presentation import parse_duration
from tritonlm.train.experiments.results import main as results_main
from tritonlm.train.experiments.results import module_command
from tritonlm.corpora.stories import generate_corpus, unigram_entropy

# compile=false: a seconds-long budget would go to compiling (tests/test_train_loop.py compiles on the CPU)
TINY_MODEL = ["--model.d_model=32", "--model.num_layers=1", "--model.num_heads=2", "--model.context_length=32",
              "--batch_size=8", "--progress=false", "--compile=false"]


@pytest.fixture(scope="module")
def byte_tokens(tmp_path_factory):
    """Stories as raw-byte token files (vocab 256): training data without a tokenizer."""
    folder = tmp_path_factory.mktemp("bytes")
    paths = []
    for name, size, seed in (("train", 120_000, 0), ("val", 6_000, 1)):
        ids = np.frombuffer(generate_corpus(size, seed).encode("utf-8"), dtype=np.uint8)
        paths.append(write_tokens(folder / f"{name}.tok", ids, 256))
    return paths


def test_run_stops_within_its_budget_and_the_schedule_ends_at_min_lr(tmp_path, byte_tokens):
    train, val = byte_tokens
    budget = 4.0
    main(["--train-data", str(train), "--val-data", str(val), "--budget", f"{budget}s", "--out", str(tmp_path / "run"),
          *TINY_MODEL, "--log_interval=1", "--eval_interval=0", "--max_lr=1e-2", "--min_lr=1e-3", "--warmup_fraction=0.1"])
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    steps = [r for r in read_metrics(tmp_path / "run" / "metrics.jsonl") if r["kind"] == "train"]
    step_time = max(b["elapsed_s"] - a["elapsed_s"] for a, b in zip(steps, steps[1:]))
    # It stops when the next step (estimated by the last one) would overrun: within one step of the budget.
    assert budget - step_time - 0.5 <= report["training_seconds"] <= budget + step_time
    assert report["timings_seconds"]["total"] < budget + 60  # the whole command (generous: shared CI cores)
    # The learning rate follows elapsed/budget: warmup, then down to min_lr at the very end.
    lrs = [r["lr"] for r in steps]
    assert max(lrs) == pytest.approx(1e-2, rel=0.1)
    # The last step starts at most ~2 step times before the budget ends: its cosine lr is at most
    # the schedule's value there, and it tends to min_lr as steps get shorter.
    progress = max(0.0, (budget - 2 * step_time) / budget)
    bound = 1e-3 + 0.5 * (1 + math.cos(math.pi * (progress - 0.1) / 0.9)) * (1e-2 - 1e-3)
    assert 1e-3 - 1e-12 <= lrs[-1] <= bound + 1e-9
    assert all(b <= a + 1e-12 for a, b in zip(lrs[lrs.index(max(lrs)):], lrs[lrs.index(max(lrs)) + 1:]))


@pytest.mark.parametrize("num_tokens, context, batch", [(1000, 32, 4), (97, 16, 3), (33, 32, 8), (2, 8, 1)])
def test_full_evaluation_scores_every_token_once_against_f_cross_entropy(num_tokens, context, batch):
    torch.manual_seed(0)
    cfg = ModelConfig(vocab_size=50, context_length=context, d_model=16, num_layers=1, num_heads=2, kernels="torch")
    model = TransformerLM.from_config(cfg).eval()
    tokens = np.random.default_rng(1).integers(0, 50, size=num_tokens).astype(np.uint16)
    result = evaluate_full(model, tokens, TrainConfig(model=cfg, device="cpu"), batch, torch.device("cpu"))
    # Reference: each window on its own, float64 log-softmax, summed over all predicted tokens.
    total, count = 0.0, 0
    ids = torch.from_numpy(tokens.astype(np.int64))
    for start in range(0, num_tokens - 1, context):
        window = ids[start: start + context + 1]
        with torch.no_grad():
            logits = model(window[None, :-1])[0].double()
        total += F.cross_entropy(logits, window[1:], reduction="sum").item()
        count += len(window) - 1
    assert result["val_tokens"] == count == num_tokens - 1
    assert result["val_loss"] == pytest.approx(total / count, rel=1e-5)


def test_report_fields_are_complete_and_consistent(tmp_path, byte_tokens):
    train, val = byte_tokens
    main(["--train-data", str(train), "--val-data", str(val), "--budget", "3s", "--out", str(tmp_path / "run"),
          *TINY_MODEL, "--eval_interval=20", "--model.qk_norm=true", "--z_loss=1e-4", "--schedule=wsd",
          "--model.tie_embeddings=true", "--model.logit_softcap=30"])
    run = tmp_path / "run"
    report = json.loads((run / "report.json").read_text())
    for key in ("final_val_loss", "val_unigram_entropy", "tokens_seen", "tokens_per_second", "mfu", "config",
                "flags", "metadata", "improvements", "device", "samples", "parameters", "train_flops_per_token"):
        assert key in report, key
    val_ids = np.fromfile(val, dtype=np.uint16, offset=64)
    assert report["val_unigram_entropy"] == pytest.approx(unigram_entropy(val_ids))
    assert report["val_tokens"] == len(val_ids) - 1
    assert report["tokens_per_second"] == pytest.approx(report["tokens_seen"] / report["training_seconds"], rel=0.01)
    assert report["mfu"] is None  # no GPU here: no MFU rather than a made-up one
    assert report["improvements"] == {**report["improvements"], "model.qk_norm": True, "z_loss": 1e-4, "schedule": "wsd",
                                      "model.tie_embeddings": True, "model.logit_softcap": 30.0}
    assert report["parameters"] == report["non_embedding_parameters"] + 256 * 32  # one shared 256 x 32 matrix
    assert report["flags"]["--z_loss"] == "1e-4" and report["flags"]["budget"] == "3s"
    assert re.fullmatch(r"[0-9a-f]{40}(\+dirty)?|unknown", report["metadata"]["git_sha"])
    assert report["metadata"]["versions"]["torch"] == torch.__version__
    markdown = (run / "report.md").read_text()
    assert f"{report['final_val_loss']:.4f}" in markdown and f"{report['val_unigram_entropy']:.4f}" in markdown
    assert "--model.qk_norm" in markdown
    for name in ("val_loss_vs_minutes.png", "metrics.jsonl", "summary.json", "samples.md"):
        assert (run / name).stat().st_size > 0, name
    # The results page is generated from the collected artefacts, with the exact command; what an
    # earlier collection of the same name left there goes.
    stale = tmp_path / "docs" / "results" / "run" / "old_plot.png"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"an older run's plot")
    results_main(["--collect", str(run), "--results-dir", str(tmp_path / "docs" / "results"),
                  "--page", str(tmp_path / "docs" / "results.md")])
    page = (tmp_path / "docs" / "results.md").read_text()
    assert f"{report['final_val_loss']:.4f}" in page and f"{report['val_unigram_entropy']:.4f}" in page
    assert f"`{module_command(report['metadata'])}`" in page
    assert not (tmp_path / "docs" / "results" / "run" / "checkpoint.pt").exists() and not stale.exists()
    for name in ("report.json", "metrics.jsonl"):  # the raw metrics behind the plots travel with the report
        assert (tmp_path / "docs" / "results" / "run" / name).read_bytes() == (run / name).read_bytes()


def test_presets_and_overrides_resolve(tmp_path):
    job = resolve_job(["--preset", "cpu", "--out", str(tmp_path)])
    assert job.preset == "cpu" and job.train.budget_seconds <= 480 and job.train.device == "cpu"
    job = resolve_job(["--preset", "h100", "--budget", "90m", "--kernels", "triton,attention=torch",
                       "--model.qk_norm=false", "--vocab_size=4096", "--out", str(tmp_path)])
    assert job.train.budget_seconds == 5400 and job.train.model.kernels == "triton,attention=torch"
    assert job.train.model.tie_embeddings and not job.train.model.qk_norm and job.options.vocab_size == 4096
    assert job.train.dtype == "bf16" and job.train.compile and job.train.schedule == "wsd" and job.train.optimizer == "muon"
    expected = "h100" if torch.cuda.is_available() else "cpu"
    assert resolve_job(["--out", str(tmp_path)]).preset == expected


@pytest.mark.parametrize("argv, message", [
    (["--budget", "ten minutes"], "cannot read duration"),
    (["--model.d_modle=64"], "did you mean --model.d_model"),
    (["--vocab_size=100"], "at least 257"),
    (["--out", "a", "--out-dir", "b"], "give the run folder once: --out or --out_dir"),
    (["--budget", "1m", "--budget_seconds=5"], "give the budget once: --budget or --budget_seconds"),
    (["--kernels", "torch", "--model.kernels=auto"], "give the kernels once: --kernels or --model.kernels"),
])
def test_bad_options_fail_with_a_clear_message(argv, message, capsys):
    with pytest.raises((ValueError, SystemExit)) as error:
        resolve_job(argv)
    assert message in str(error.value) + capsys.readouterr().err


@pytest.mark.parametrize("text, seconds", [("90m", 5400), ("1.5h", 5400), ("300s", 300), ("45", 45), ("1h30m", 5400)])
def test_parse_duration(text, seconds):
    assert parse_duration(text) == seconds


def test_tiny_end_to_end_run_on_generated_stories(tmp_path, monkeypatch):
    """The README command, shrunk: stories -> BPE -> tokens -> training -> eval -> samples -> report."""
    monkeypatch.setenv("TRITONLM_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "run"
    code = main(["--preset", "cpu", "--budget", "8s", "--out", str(out), "--story_train_bytes=150000",
                 "--story_val_bytes=8000", "--vocab_size=300", "--num_samples=2", "--sample_tokens=20",
                 *TINY_MODEL, "--eval_interval=50", "--max_lr=1e-2", "--min_lr=1e-3"])
    assert code == 0
    report = json.loads((out / "report.json").read_text())
    assert report["final_val_loss"] < report["val_unigram_entropy"]  # it learnt to use the context
    assert math.isfinite(report["final_val_loss"]) and report["tokens_seen"] > 0
    assert len(report["samples"]) == 2 and all(s["text"] for s in report["samples"])
    assert report["data"]["tokenizer_dir"] and "generated stories" in report["data"]["train_source"]
    # A second run reuses the cached tokenizer and token files.
    assert sorted(p.name for p in (tmp_path / "cache" / "leaderboard" / "tokenizers").iterdir()) == [
        __import__("pathlib").Path(report["data"]["tokenizer_dir"]).name]


def test_a_run_measured_in_steps_instead_of_time(tmp_path, byte_tokens, capsys):
    """``--budget_seconds=none --max_iters=N`` (what the handout recipes do): the schedule follows
    the steps, the run takes exactly N of them, and the plan and report say so."""
    train, val = byte_tokens
    args = ["--train-data", str(train), "--val-data", str(val), "--budget_seconds=none", "--max_iters=7",
            "--out", str(tmp_path / "run"), *TINY_MODEL, "--eval_interval=3"]
    assert main([*args, "--dry-run"]) == 0
    plan = capsys.readouterr().out
    assert "; 7 steps; run folder" in plan and f"7 steps = {7 * 8 * 32:.3g} tokens" in plan
    assert main(args) == 0
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    assert (report["steps"], report["tokens_seen"], report["budget_seconds"], report["max_iters"]) == (7, 7 * 8 * 32, None, 7)
    assert re.search(r"\| training time / length \| \d+m\d\ds / 7 steps \|", (tmp_path / "run" / "report.md").read_text())


def test_an_interrupted_run_says_how_far_it_got_until_its_report_replaces_that(tmp_path, monkeypatch, capsys):
    """A stopped run writes progress.json (steps and tokens against the goal, the last periodic
    val loss against the corpus's floor, the time left at its rate) and its curve; the resumed,
    finished run's report takes their place."""
    from tritonlm.train.leaderboard import pipeline

    monkeypatch.setenv("TRITONLM_CACHE", str(tmp_path / "cache"))
    original = pipeline.run_training

    def stopped_at_step_6(cfg, hooks=()):
        def sigterm_at_step_6(record):
            if record["kind"] == "train" and record["step"] == 6:
                os.kill(os.getpid(), signal.SIGTERM)
        return original(cfg, hooks=[sigterm_at_step_6])

    out = tmp_path / "run"
    args = ["--preset", "cpu", "--budget_seconds=none", "--max_iters=10", "--out", str(out),
            "--story_train_bytes=60000", "--story_val_bytes=6000", "--vocab_size=300", "--num_samples=1",
            "--sample_tokens=5", *TINY_MODEL, "--eval_interval=4", "--log_interval=1"]
    monkeypatch.setattr(pipeline, "run_training", stopped_at_step_6)
    assert main(args) == 130
    message = capsys.readouterr().err
    progress = json.loads((out / "progress.json").read_text())
    per_step = 8 * 32  # batch x context
    assert (progress["steps"], progress["max_iters"], progress["fraction_done"]) == (6, 10, 0.6)
    assert (progress["tokens_seen"], progress["tokens_goal"]) == (6 * per_step, 10 * per_step)
    val = {r["step"]: r["val_loss"] for r in read_metrics(out / "metrics.jsonl") if r["kind"] == "val"}
    assert sorted(val) == [0, 4]  # the last evaluation came before the stop
    assert (progress["last_periodic_val_loss"], progress["last_val_step"]) == (val[4], 4)
    assert progress["last_val_above_floor"] == pytest.approx(val[4] - progress["val_entropy_floor"])
    assert 0 < progress["val_entropy_floor"] < val[4]
    assert progress["seconds_left_at_this_rate"] == pytest.approx(progress["training_seconds"] * 4 / 6)
    assert (out / "val_loss_vs_tokens.png").stat().st_size > 0
    assert [(s["step"], s["git_sha"] is not None) for s in progress["segments"]] == [(0, True)]
    assert "stopped at step 6 of 10 (60%)" in message and "progress.json" in message and "--resume" in message
    # The results page shows it as a run stopped part of the way, every figure linked to progress.json.
    from test_doc_figures import check_markdown
    from tritonlm.train.experiments.results import collect, render

    docs = tmp_path / "docs"
    collect([out], docs / "results")
    assert sorted(p.name for p in (docs / "results" / "run").iterdir()) == [
        "metrics.jsonl", "progress.json", "val_loss_vs_tokens.png"]
    page = render(docs / "results", docs / "results.md")
    checked, problems = check_markdown(page, docs, "results.md")
    assert problems == [] and checked == page.count("progress.json#/") == 10
    assert "## Runs stopped part of the way" in page and "### run (stopped at step 6 of 10)" in page and "](results/run/val_loss_vs_tokens.png)" in page
    assert "| [60%](results/run/progress.json#/fraction_done*100) |" in page

    monkeypatch.setattr(pipeline, "run_training", original)
    assert main([*args, "--resume"]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["steps"] == 10 and report["val_entropy_floor"] == progress["val_entropy_floor"]
    assert not (out / "progress.json").exists() and not (out / "val_loss_vs_tokens.png").exists()
