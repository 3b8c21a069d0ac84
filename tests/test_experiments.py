"""Sweeps: diverged and crashed runs are recorded without stopping the sweep; interrupted sweeps resume."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from tritonlm.model import ModelConfig
from tritonlm.tokenizer.tokenfile import write_tokens
from tritonlm.train.config import TrainConfig
from tritonlm.train.experiments.cli import ablation_runs, batch_size_runs, default_batch_sizes, lr_sweep_runs, main
from tritonlm.train.experiments.sweep import RunSpec, Sweep, run_sweep
from tritonlm.train.experiments.writeup_checks import lr_toy
from tritonlm.corpora.stories import generate_corpus
from tritonlm.train.loop import NonFiniteLossError
from tritonlm.train.presentation import fmt
from tritonlm.util.cli import apply_overrides


def _base(tmp_path) -> TrainConfig:
    model = ModelConfig(vocab_size=256, context_length=16, d_model=16, num_layers=1, num_heads=2, kernels="torch")
    return TrainConfig(model=model, train_data=str(tmp_path / "unused.tok"), max_iters=None, budget_seconds=1.0,
                       progress=False)


class FakeTrainer:
    """Stands in for run_training: records calls, writes metrics, fails on request."""

    def __init__(self, fail: dict[str, BaseException] | None = None):
        self.calls, self.fail = [], fail or {}

    def __call__(self, cfg: TrainConfig) -> dict:
        from pathlib import Path

        name = Path(cfg.out_dir).name
        self.calls.append((name, cfg.resume, cfg.max_lr))
        Path(cfg.out_dir).mkdir(parents=True, exist_ok=True)
        if name in self.fail:
            raise self.fail[name]
        losses = {True: [5.5, 3.0, 2.0], False: [5.5, 6.0, 7.5]}[cfg.max_lr < 1]
        if cfg.max_lr == 3.0:
            losses = [5.5, 9.0, 5.2]  # blew up, then recovered below the start
        with open(Path(cfg.out_dir) / "metrics.jsonl", "w") as f:
            for i, loss in enumerate(losses):
                f.write(json.dumps({"kind": "val", "step": i * 10, "tokens": i * 100, "elapsed_s": i * 0.5, "val_loss": loss}) + "\n")
        return {"status": "completed", "tokens": 200, "steps": 20, "tokens_per_s": 400.0, "train_seconds": 0.5}


def test_diverged_and_crashed_runs_are_recorded_and_the_sweep_goes_on(tmp_path):
    runs = [RunSpec("ok", "lr 1e-3", {"max_lr": 1e-3}), RunSpec("nan", "lr 10", {"max_lr": 10.0}),
            RunSpec("worse", "lr 5", {"max_lr": 5.0}), RunSpec("spike", "lr 3", {"max_lr": 3.0}),
            RunSpec("boom", "bad config", {}),
            RunSpec("invalid", "num_heads 3", {"model.num_heads": 3}), RunSpec("ok2", "lr 3e-3", {"max_lr": 3e-3})]
    trainer = FakeTrainer({"nan": NonFiniteLossError("loss became non-finite at step 7 (loss=nan); stopping"),
                           "boom": MemoryError("out of memory")})
    sweep = Sweep("test sweep", tmp_path / "sweep", _base(tmp_path), runs)
    results = {r["name"]: r for r in run_sweep(sweep, trainer)}
    assert [c[0] for c in trainer.calls] == ["ok", "nan", "worse", "spike", "boom", "ok2"]  # invalid never trains
    assert results["ok"]["status"] == "completed" and results["ok"]["best_val_loss"] == 2.0
    assert results["nan"]["status"] == "diverged" and "non-finite" in results["nan"]["note"]
    assert results["worse"]["status"] == "diverged"  # finite, but ended worse than untrained
    assert results["spike"]["status"] == "diverged" and "blew up" in results["spike"]["note"]
    assert results["boom"]["status"] == "crashed" and "MemoryError" in results["boom"]["note"]
    assert results["invalid"]["status"] == "crashed" and "num_heads" in results["invalid"]["note"]
    assert (tmp_path / "sweep" / "runs" / "boom" / "error.txt").read_text().count("MemoryError")
    table = (tmp_path / "sweep" / "table.md").read_text()
    assert table.count("| diverged |") == 3 and table.count("| crashed |") == 2 and table.count("| completed |") == 2
    assert (tmp_path / "sweep" / "overlay.png").stat().st_size > 0


def test_an_interrupted_sweep_resumes_skipping_finished_runs_and_resuming_partial_ones(tmp_path):
    runs = [RunSpec(n, n, {"max_lr": 1e-3}) for n in ("a", "b", "c")]
    sweep = Sweep("resume", tmp_path / "sweep", _base(tmp_path), runs)
    first = FakeTrainer({"b": KeyboardInterrupt()})
    with pytest.raises(KeyboardInterrupt):
        run_sweep(sweep, first)
    assert [c[0] for c in first.calls] == ["a", "b"]
    (tmp_path / "sweep" / "runs" / "b" / "checkpoint.pt").write_bytes(b"partial run")  # b had checkpointed
    second = FakeTrainer()
    results = run_sweep(sweep, second)
    assert second.calls == [("b", True, 1e-3), ("c", False, 1e-3)]  # a skipped, b resumed, c fresh
    assert [r["status"] for r in results] == ["completed"] * 3
    third = FakeTrainer()
    run_sweep(sweep, third)
    assert third.calls == []
    changed = Sweep("resume", tmp_path / "sweep", replace(_base(tmp_path), batch_size=4), runs)
    with pytest.raises(ValueError, match="different configuration .*batch_size"):
        run_sweep(changed, FakeTrainer())


def test_a_real_lr_sweep_records_a_diverging_run(tmp_path):
    ids = np.frombuffer(generate_corpus(40_000, seed=0).encode(), dtype=np.uint8)
    train = write_tokens(tmp_path / "train.tok", ids, 256)
    val = write_tokens(tmp_path / "val.tok", ids[-3000:], 256)
    code = main(["lr-sweep", "--train-data", str(train), "--val-data", str(val), "--budget", "2s", "--values", "3e-3,30",
                 "--out", str(tmp_path / "out"), "--model.d_model=32", "--model.num_layers=1", "--model.num_heads=2",
                 "--model.context_length=32", "--batch_size=8", "--eval_interval=10", "--eval_iters=2",
                 "--warmup_fraction=0", "--grad_clip=0", "--model.kernels=torch"])
    assert code == 0
    results = json.loads((tmp_path / "out" / "lr-sweep" / "results.json").read_text())["results"]
    assert [r["status"] for r in results] == ["completed", "diverged"]
    assert results[0]["best_val_loss"] < np.log(256)
    assert (tmp_path / "out" / "lr-sweep" / "lr-sweep.png").stat().st_size > 0
    assert "diverged" in (tmp_path / "out" / "lr-sweep" / "lr-sweep.md").read_text()


def test_sweep_definitions_cover_the_assignment():
    lrs = [r.overrides["max_lr"] for r in lr_sweep_runs(None)]
    assert lrs == sorted(lrs) and lrs[-1] >= 0.1  # ends at a rate that diverges
    base = TrainConfig(device="cpu")
    models = {r.name: apply_overrides(base, r.overrides).model for r in ablation_runs(None)}
    assert models["baseline"] == base.model
    assert models["no-rmsnorm"].norm == "none" and models["post-norm"].norm == "post"
    warm = {r.name: r.overrides for r in ablation_runs(None)}["post-norm-warmup"]
    assert models["post-norm-warmup"].norm == "post" and warm["warmup_fraction"] == 0.2
    assert models["nope"].positions == "none"
    assert models["silu-ffn"].ffn == "silu" and models["silu-ffn"].d_ff == 4 * base.model.d_model
    sizes = default_batch_sizes(TrainConfig(device="cpu"))
    assert sizes[0] == 1 and sizes == sorted(set(sizes)) and sizes[-1] >= 64
    runs = batch_size_runs(["1", "7", "512"], TrainConfig(batch_size=16, eval_iters=8))
    assert [r.overrides["batch_size"] for r in runs] == [1, 7, 512]
    assert [r.overrides["eval_iters"] for r in runs] == [128, 18, 1]  # ~128 evaluated sequences each


def test_batch_sizes_at_equal_tokens_and_each_rate():
    base = TrainConfig(batch_size=16, eval_iters=8)  # context 256 by default
    runs = batch_size_runs(["2", "16", "100"], base, tokens=300_000, lrs=[1e-3, 1e-2])
    assert [r.name for r in runs] == ["batch=2,lr=0.001", "batch=2,lr=0.01", "batch=16,lr=0.001",
                                      "batch=16,lr=0.01", "batch=100,lr=0.001", "batch=100,lr=0.01"]
    for r in runs:
        tokens = r.overrides["max_iters"] * r.overrides["batch_size"] * base.model.context_length
        assert 300_000 <= tokens < 300_000 + r.overrides["batch_size"] * base.model.context_length
        assert r.overrides["budget_seconds"] is None and r.overrides["min_lr"] == r.overrides["max_lr"] / 10
    assert [r.overrides["max_iters"] for r in runs[::2]] == [586, 74, 12]
    # About a dozen evaluations per run, however many steps it takes.
    assert all(9 <= r.overrides["max_iters"] // r.overrides["eval_interval"] <= 12 for r in runs)


def test_a_named_token_matched_batch_sweep_reports_the_best_rate_per_size(tmp_path):
    ids = np.frombuffer(generate_corpus(40_000, seed=0).encode(), dtype=np.uint8)
    train = write_tokens(tmp_path / "train.tok", ids, 256)
    val = write_tokens(tmp_path / "val.tok", ids[-3000:], 256)
    code = main(["batch-size", "--train-data", str(train), "--val-data", str(val), "--tokens", "4096", "--values", "4,16",
                 "--lrs", "1e-4,3e-3", "--name", "bs-equal-tokens", "--out", str(tmp_path / "out"),
                 "--model.d_model=32", "--model.num_layers=1", "--model.num_heads=2", "--model.context_length=32",
                 "--eval_iters=2", "--warmup_fraction=0", "--model.kernels=torch"])
    assert code == 0
    folder = tmp_path / "out" / "bs-equal-tokens"
    results = json.loads((folder / "results.json").read_text())["results"]
    assert [r["tokens"] for r in results] == [4096] * 4
    assert [r["steps"] for r in results] == [32, 32, 8, 8]
    table = (folder / "bs-equal-tokens.md").read_text()
    best = table.split("### Best learning rate per batch size")[1]
    recorded = json.loads((folder / "results.json").read_text())["best_per_batch"]
    assert [row["batch"] for row in recorded] == [4, 16]
    for b, row in zip((4, 16), recorded):
        runs = [r for r in results if r["overrides"]["batch_size"] == b]
        winner = min(runs, key=lambda r: r["full_val_loss"])  # one seed: its whole-validation-set loss
        assert (row["max_lr"], row["mean"], row["steps"]) == (winner["overrides"]["max_lr"], winner["full_val_loss"],
                                                               winner["steps"])
        assert f"| {b} | {fmt(row['max_lr'])} | {fmt(row['mean'])} | — | 1 of 1 | {row['steps']} |" in best
    from test_doc_figures import check_markdown
    from tritonlm.train.experiments.results import collect, render

    collect([folder], tmp_path / "docs" / "results")  # the results page links the best rates to their JSON
    page = render(tmp_path / "docs" / "results", tmp_path / "docs" / "results.md")
    checked, problems = check_markdown(page, tmp_path / "docs", "results.md")
    assert problems == [] and page.count("results.json#/best_per_batch/") >= 2 * 4
    assert (folder / "bs-equal-tokens.png").stat().st_size > 0


def test_lr_toy_example_converges_at_1e2_and_diverges_at_1e3():
    assert lr_toy(1e1)[-1] < lr_toy(1e1)[0]
    assert lr_toy(1e2)[-1] < 1e-6 * lr_toy(1e2)[0]
    assert lr_toy(1e3)[-1] > 1e6 * lr_toy(1e3)[0]


@pytest.mark.parametrize("flag, right", [
    ("--data=gutenberg", "--train-data"), ("--max_iters=5", "--steps"), ("--budget-seconds=5", "--budget"),
    ("--out_dir=x", "--out (and --name)"),
])
def test_a_run_flag_the_sweep_sets_itself_is_refused_with_the_sweeps_flag(flag, right, tmp_path, capsys):
    assert main(["lr-sweep", flag, "--out", str(tmp_path)]) == 2
    assert f"use {right}" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())  # refused before any data or run folder is made
