"""The speedrun report and the recipe sweep: budget-matched trials on one corpus, resumable,
summarised by median and range, with the time to reach the plain recipe's final loss."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tritonlm.model import ModelConfig
from tritonlm.tokenizer.tokenfile import write_tokens
from tritonlm.train.config import TrainConfig
from tritonlm.train.leaderboard import speedrun, sweep
from tritonlm.train.leaderboard.trials import format_count, format_spread, spread, time_to_reach
from tritonlm.train.recipes import RECIPES, LeaderboardConfig, Recipe

pytestmark = pytest.mark.usefixtures("single_thread")

VOCAB = 64


def test_time_to_reach_interpolates_between_evaluations():
    curve = [(0.0, 4.0), (10.0, 3.0), (20.0, 2.0), (30.0, 1.5)]
    assert time_to_reach(curve, 2.5) == pytest.approx(15.0)
    assert time_to_reach(curve, 3.0) == pytest.approx(10.0)
    assert time_to_reach(curve, 5.0) == 0.0  # reached before training
    assert time_to_reach(curve, 1.0) is None  # never reached
    assert time_to_reach([], 1.0) is None


def test_spread_is_median_and_range_and_formats_honestly():
    s = spread([0.9, 0.7, 0.8, None])
    assert s == {"median": 0.8, "min": 0.7, "max": 0.9, "n": 3}
    assert format_spread(s) == "0.800 [0.700–0.900]"
    assert format_spread(spread([2_500_000, 65_536]), format_count) == "1.28M [65.5k–2.50M]"
    assert format_spread(spread([])) == "n/a"


@pytest.fixture()
def token_files(tmp_path):
    rng = np.random.default_rng(0)
    successors = rng.integers(0, VOCAB, size=(VOCAB, 2))
    ids = [0]
    for _ in range(12_000):
        ids.append(int(successors[ids[-1], rng.integers(0, 2)]))
    ids = np.array(ids)
    return (write_tokens(tmp_path / "train.tok", ids[:10_000], VOCAB),
            write_tokens(tmp_path / "val.tok", ids[10_000:], VOCAB))


def small_recipe(name: str, **train) -> Recipe:
    model = ModelConfig(vocab_size=VOCAB, context_length=16, d_model=32, num_layers=1, num_heads=2, kernels="torch")
    base = dict(model=model, batch_size=4, max_iters=None, budget_seconds=1.5, max_lr=1e-2, min_lr=1e-3,
                eval_interval=5, eval_iters=2, log_interval=5, checkpoint_interval=0, device="cpu", progress=False)
    return Recipe(name, "a test recipe", TrainConfig(**{**base, **train}), LeaderboardConfig(eval_batch_size=8))


def test_speedrun_runs_both_recipes_seed_by_seed_and_reports_them(tmp_path, token_files, monkeypatch, capsys):
    recipes = {"plain": small_recipe("plain", max_lr=1e-3, min_lr=1e-4), "fast": small_recipe("fast", optimizer="muon")}
    monkeypatch.setattr(speedrun, "get_recipe", recipes.__getitem__)
    monkeypatch.setattr(speedrun, "LEADERBOARD_CHOICES", ("auto", *recipes))
    out, results = tmp_path / "runs", tmp_path / "results"
    argv = ["--preset", "fast", "--baseline", "plain", "--seeds", "2", "--train-data", str(token_files[0]),
            "--val-data", str(token_files[1]), "--out", str(out), "--results", str(results)]
    assert speedrun.main(argv) == 0

    report = json.loads((results / "speedrun.json").read_text())
    runs = report["runs"]
    assert [(r["name"], r["seed"]) for r in runs] == [("plain", 0), ("fast", 0), ("plain", 1), ("fast", 1)]
    assert all(r["train_seconds"] == pytest.approx(1.5, abs=0.5) and r["tokens"] > 0 for r in runs)
    assert all(r["val_tokens"] == 2_000 for r in runs)  # every validation token but the first, once
    fast = report["recipes"]["fast"]
    assert fast["final_val_loss"]["n"] == 2 and fast["final_val_loss"]["min"] <= fast["final_val_loss"]["max"]
    plain_finals = sorted(r["final_val_loss"] for r in runs if r["name"] == "plain")
    assert report["plain_final_val_loss"] == pytest.approx(sum(plain_finals) / 2)
    assert {p.name for p in results.iterdir()} >= {"speedrun.md", "speedrun.png", "plain-seed0.metrics.jsonl",
                                                   "fast-seed1.metrics.jsonl"}
    table = (results / "speedrun.md").read_text()
    assert "| plain |" in table and "| fast |" in table and "time to reach" in table

    # run again: every trial is read back, none trained again
    before = {p: p.stat().st_mtime_ns for p in out.glob("*/checkpoint.pt")}
    assert speedrun.main(argv) == 0
    assert before and {p: p.stat().st_mtime_ns for p in out.glob("*/checkpoint.pt")} == before

    # a recipe changed since: its finished trial is not reused, and its run is kept, not replaced
    (out / "fast-seed0" / "trial.json").unlink()
    recipes["fast"] = small_recipe("fast", optimizer="muon", max_lr=5e-3)
    assert speedrun.main(argv) == 2
    assert "holds a run of another configuration" in capsys.readouterr().err
    assert before == {p: p.stat().st_mtime_ns for p in out.glob("*/checkpoint.pt")}


def test_sweep_names_its_candidates_and_refuses_unknown_ones(tmp_path, token_files, monkeypatch):
    monkeypatch.setattr(sweep, "get_recipe", lambda name: small_recipe(name))
    monkeypatch.setattr(sweep, "CANDIDATES", {"plain": ("as is", {}), "muon": ("Muon", {"optimizer": "muon"})})
    argv = ["--train-data", str(token_files[0]), "--val-data", str(token_files[1]), "--out", str(tmp_path / "runs"),
            "--results", str(tmp_path / "results"), "--budget", "1s"]
    assert sweep.main(argv) == 0
    report = json.loads((tmp_path / "results" / "sweep.json").read_text())
    assert [c["name"] for c in report["candidates"]] == ["plain", "muon"]
    assert [r["config"]["optimizer"] for r in report["runs"]] == ["adamw", "muon"]
    assert sweep.main([*argv, "--only", "plain,adam"]) == 2  # unknown candidate: a one-line error


def test_the_sweep_candidates_are_valid_overrides_of_the_plain_recipe():
    from tritonlm.util.cli import apply_overrides

    base = RECIPES[sweep.BASE].train_config()
    for name, (_, overrides) in sweep.CANDIDATES.items():
        apply_overrides(base, overrides)  # raises on an unknown field or a bad value
    assert sweep.CANDIDATES["plain"][1] == {}
