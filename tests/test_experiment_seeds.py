"""Sweeps at several seeds: each setting's mean and spread, the final loss on the whole
validation set, and a one-seed sweep that grows to more seeds in place."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import numpy as np
import pytest

from tritonlm.corpora.stories import generate_corpus
from tritonlm.tokenizer.tokenfile import write_tokens
from tritonlm.train.experiments.cli import main
from tritonlm.train.experiments.seeds import mean_curves, seed_groups, with_seeds
from tritonlm.train.experiments.sweep import RunSpec, Sweep, run_sweep

from test_experiments import FakeTrainer, _base


def test_with_seeds_repeats_each_setting_and_keeps_the_first_seeds_name():
    runs = with_seeds([RunSpec("lr=0.01", "max_lr 0.01", {"max_lr": 0.01}), RunSpec("b", "B", {})], 3, first_seed=5)
    assert [r.name for r in runs] == ["lr=0.01", "lr=0.01,seed=6", "lr=0.01,seed=7", "b", "b,seed=6", "b,seed=7"]
    assert [r.overrides.get("seed") for r in runs] == [None, 6, 7, None, 6, 7]
    assert all(r.overrides["max_lr"] == 0.01 for r in runs[:3])
    assert {r.group for r in runs} == {"max_lr 0.01", "B"}
    assert runs[1].label == "max_lr 0.01, seed 6"
    one = with_seeds([RunSpec("lr=0.01", "max_lr 0.01", {"max_lr": 0.01})], 1)
    assert one == [RunSpec("lr=0.01", "max_lr 0.01", {"max_lr": 0.01}, group="max_lr 0.01")]
    with pytest.raises(ValueError, match="at least 1"):
        with_seeds(runs, 0)


def _result(group, loss, status="completed", full=None):
    return {"group": group, "label": group, "status": status, "final_val_loss": loss, "full_val_loss": full}


def test_seed_groups_give_mean_spread_range_and_overlap_with_the_best():
    a = [3.91, 4.02, 3.95]
    b = [4.31, 4.18, 4.40]
    results = [_result("a", 9.0, full=v) for v in a] + [_result("b", v) for v in b]
    results += [_result("b", 2.0, status="diverged"), _result("c", 4.0), _result("c", 4.1, full=3.95)]
    rows = {r["group"]: r for r in seed_groups(results)}
    assert list(rows) == ["a", "b", "c"]
    assert rows["a"]["mean"] == pytest.approx(np.mean(a)) and rows["a"]["std"] == pytest.approx(np.std(a, ddof=1))
    assert (rows["a"]["min"], rows["a"]["max"]) == (min(a), max(a))  # the whole-set loss wins over the periodic one
    assert rows["b"]["completed"] == "3 of 4" and rows["b"]["mean"] == pytest.approx(statistics.fmean(b))
    assert rows["a"]["gap_to_best"] == 0 and rows["b"]["gap_to_best"] == pytest.approx(np.mean(b) - np.mean(a))
    assert rows["b"]["overlaps_best"] is False and rows["c"]["overlaps_best"] is True  # c spans 3.95-4.0
    assert rows["a"]["tokens_per_s"] is None  # no run logged a rate


def test_seed_groups_give_steps_and_median_throughput():
    runs = [dict(_result("a", 4.0), steps=5, tokens_per_s=10.0), dict(_result("a", 4.1), steps=100, tokens_per_s=900.0),
            dict(_result("a", 4.2), steps=100, tokens_per_s=1000.0)]
    runs[0]["status"] = "diverged"  # stopped at step 5
    (row,) = seed_groups(runs)
    assert (row["steps"], row["tokens_per_s"]) == (100, 900.0)


def test_mean_curves_average_seeds_evaluated_at_the_same_points():
    curves = {"a, seed 0": ([1, 2], [5.0, 4.0]), "a, seed 1": ([1, 2], [6.0, 3.0]), "b, seed 0": ([1, 2], [7.0, 7.0]),
              "b, seed 1 (diverged)": ([1], [9.0])}
    groups = {"a, seed 0": "a", "a, seed 1": "a", "b, seed 0": "b", "b, seed 1 (diverged)": "b"}
    assert mean_curves(curves, groups) == {"a (mean of 2 seeds)": ([1, 2], [5.5, 3.5]), "b": ([1, 2], [7.0, 7.0])}
    curves["b, seed 1 (diverged)"] = ([1, 2], [9.0, 9.0])
    assert mean_curves(curves, groups, {"b, seed 1 (diverged)"})["b (mean of 2 seeds, 1 diverged or crashed)"] == (
        [1, 2], [8.0, 8.0])


def test_a_one_seed_sweep_grows_to_three_seeds_in_place(tmp_path):
    runs = [RunSpec("x", "lr 1e-3", {"max_lr": 1e-3}), RunSpec("y", "lr 3e-3", {"max_lr": 3e-3})]
    base = _base(tmp_path)
    run_sweep(Sweep("one seed", tmp_path / "sweep", base, with_seeds(runs, 1)), FakeTrainer())
    grown = Sweep("three seeds", tmp_path / "sweep", base, with_seeds(runs, 3))
    trainer = FakeTrainer()
    results = run_sweep(grown, trainer)
    assert [c[0] for c in trainer.calls] == ["x,seed=1", "x,seed=2", "y,seed=1", "y,seed=2"]
    assert [r["group"] for r in results] == ["lr 1e-3"] * 3 + ["lr 3e-3"] * 3
    summary = json.loads((tmp_path / "sweep" / "results.json").read_text())
    assert [(g["group"], g["completed"]) for g in summary["groups"]] == [("lr 1e-3", "3 of 3"), ("lr 3e-3", "3 of 3")]
    table = (tmp_path / "sweep" / "table.md").read_text()
    assert "### Each setting over its seeds" in table and table.count("| lr 1e-3, seed ") == 3


def test_a_real_sweep_at_two_seeds_measures_every_validation_token(tmp_path):
    ids = np.frombuffer(generate_corpus(30_000, seed=0).encode(), dtype=np.uint8)
    train = write_tokens(tmp_path / "train.tok", ids, 256)
    val = write_tokens(tmp_path / "val.tok", ids[-2001:], 256)
    code = main(["lr-sweep", "--train-data", str(train), "--val-data", str(val), "--steps", "6", "--values", "3e-3",
                 "--seeds", "2", "--out", str(tmp_path / "out"), "--model.d_model=32", "--model.num_layers=1",
                 "--model.num_heads=2", "--model.context_length=32", "--batch_size=4", "--eval_interval=3",
                 "--eval_iters=1", "--model.kernels=torch"])
    assert code == 0
    summary = json.loads((tmp_path / "out" / "lr-sweep" / "results.json").read_text())
    runs = summary["results"]
    assert [r["name"] for r in runs] == ["lr=0.003", "lr=0.003,seed=1"]
    assert all(r["full_val_tokens"] == 2000 for r in runs)  # every token after the first is predicted once
    assert runs[0]["full_val_loss"] != runs[1]["full_val_loss"]  # the seeds made different models
    assert summary["groups"][0]["mean"] == pytest.approx(np.mean([r["full_val_loss"] for r in runs]))
    assert "2 seeds" in summary["title"]


def test_the_results_page_links_every_figure_of_a_seeded_sweep(tmp_path):
    """docs/results.md's generator on a sweep at three seeds: the table of settings links each
    mean and spread to results.json's ``/groups``, the runs' table to ``/results``, and every
    link holds the figure it shows."""
    from test_doc_figures import check_markdown
    from tritonlm.train.experiments.results import collect, render

    runs = [RunSpec("x", "lr 1e-3", {"max_lr": 1e-3}), RunSpec("y", "lr 3e-3", {"max_lr": 3e-3})]
    run_sweep(Sweep("three seeds", tmp_path / "sweeps" / "seeded", _base(tmp_path), with_seeds(runs, 3),
                    table_name="seeded.md", plot_name="seeded.png"), FakeTrainer())
    collect([tmp_path / "sweeps" / "seeded"], tmp_path / "docs" / "results")
    page = render(tmp_path / "docs" / "results", tmp_path / "docs" / "results.md")
    checked, problems = check_markdown(page, tmp_path / "docs", "results.md")
    assert problems == []
    assert page.count("results.json#/groups/") >= 2 * 4  # mean, min, max, gap of both settings (std may be "—")
    assert page.count("results.json#/results/") >= 6 * 2 and checked == page.count(".json#/")
    for run in ("x", "x,seed=1", "x,seed=2", "y", "y,seed=1", "y,seed=2"):  # the raw metrics behind the plot
        collected = tmp_path / "docs" / "results" / "seeded" / "runs" / run / "metrics.jsonl"
        assert collected.read_bytes() == (tmp_path / "sweeps" / "seeded" / "runs" / run / "metrics.jsonl").read_bytes()


def test_the_best_rate_per_batch_size_is_judged_on_the_mean_over_seeds():
    from tritonlm.train.experiments.cli import best_rate_per_batch_size

    def run(batch, lr, loss, rate, status="completed", steps=10):
        return {"status": status, "group": f"batch {batch}, lr {lr}", "label": f"batch {batch}, lr {lr}",
                "overrides": {"batch_size": batch, "max_lr": lr}, "full_val_loss": loss, "final_val_loss": loss + 1,
                "steps": steps, "tokens_per_s": rate}

    # batch 4: 1e-2 holds the single best run (3.0) but 3e-3 the better mean (3.05 against 3.1);
    # its diverged seed stopped early and counts for neither the mean nor the steps
    rows = best_rate_per_batch_size([
        run(4, 1e-2, 3.0, 90.0), run(4, 1e-2, 3.2, 95.0), run(4, 3e-3, 3.1, 100.0), run(4, 3e-3, 3.0, 300.0),
        run(4, 3e-3, 2.0, 120.0, status="diverged", steps=3), run(16, 1e-2, 2.9, 400.0), run(16, 3e-3, 2.95, 410.0)])
    assert [(r["batch"], r["max_lr"]) for r in rows] == [(4, 3e-3), (16, 1e-2)]
    four = rows[0]
    assert four["mean"] == pytest.approx(3.05) and four["std"] == pytest.approx(statistics.stdev([3.1, 3.0]))
    assert (four["completed"], four["steps"], four["tokens_per_s"]) == ("2 of 3", 10, 120.0)  # median of 3 rates


def test_a_run_that_cannot_be_evaluated_again_keeps_its_periodic_loss(tmp_path, capsys):
    """A finished run whose checkpoint is gone (the fake trainer writes none) is reported with
    its last periodic validation loss; the sweep does not stop."""
    runs = with_seeds([RunSpec("x", "lr 1e-3", {"max_lr": 1e-3})], 2)
    sweep = Sweep("no checkpoints", tmp_path / "sweep", _base(tmp_path), runs, final_eval=True)
    results = run_sweep(sweep, FakeTrainer())
    assert [r["status"] for r in results] == ["completed", "completed"]
    assert all("full_val_loss" not in r for r in results)
    assert capsys.readouterr().out.count("no final evaluation (FileNotFoundError") == 2
    assert seed_groups(results)[0]["mean"] == 2.0  # the fake runs' last periodic loss


def test_a_runs_throughput_is_the_median_of_its_logged_rates(tmp_path):
    """One interval slowed by other work (or a paused process) does not set a run's tokens/s."""
    import json as _json

    class Paused(FakeTrainer):
        def __call__(self, cfg):
            summary = super().__call__(cfg)
            with open(Path(cfg.out_dir) / "metrics.jsonl", "a") as f:
                for rate in (1000.0, 1010.0, 3.0, 990.0, 1005.0):
                    f.write(_json.dumps({"kind": "train", "step": 1, "train_loss": 2.0, "tokens_per_s": rate}) + "\n")
            return {**summary, "tokens_per_s": 50.0}  # tokens / training time, the pause included

    sweep = Sweep("throughput", tmp_path / "sweep", _base(tmp_path), [RunSpec("x", "x", {"max_lr": 1e-3})])
    (result,) = run_sweep(sweep, Paused())
    assert result["tokens_per_s"] == 1000.0
    recorded = _json.loads((tmp_path / "sweep" / "runs" / "x" / "result.json").read_text())
    recorded["tokens_per_s"] = 50.0  # as an older version recorded it: read again on resuming
    (tmp_path / "sweep" / "runs" / "x" / "result.json").write_text(_json.dumps(recorded))
    (again,) = run_sweep(sweep, FakeTrainer())
    assert again["tokens_per_s"] == 1000.0
