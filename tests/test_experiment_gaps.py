"""An ablation's gap to the baseline along training, paired by seed: the arithmetic against
numpy, the files a seeded ablation sweep writes, and their figures on the results page."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tritonlm.train.experiments.gaps import paired_gaps, write_gaps
from tritonlm.train.experiments.results import collect, render
from tritonlm.train.experiments.seeds import with_seeds
from tritonlm.train.experiments.sweep import RunSpec, Sweep, run_sweep

from test_experiments import _base

TOKENS = [0, 1000, 2000, 3000, 4000]
# (group, seed) -> val losses at TOKENS: the ablation starts 0.5 behind and closes to 0.1-0.2
LOSSES = {
    ("base", 0): [6.0, 5.0, 4.4, 4.1, 4.0], ("base", 1): [6.0, 5.1, 4.5, 4.2, 4.05],
    ("abl", 0): [6.0, 5.5, 4.8, 4.3, 4.1], ("abl", 1): [6.0, 5.7, 4.9, 4.45, 4.25],
}
FINALS = {("base", 0): 3.95, ("base", 1): 4.0, ("abl", 0): 4.1, ("abl", 1): 4.2}


def test_paired_gaps_subtract_the_baseline_of_the_same_seed_at_the_same_tokens():
    curves = {g: {s: (TOKENS, LOSSES[g, s]) for s in (0, 1)} for g in ("base", "abl")}
    curves["abl"][2] = (TOKENS, [9.0] * 5)  # a seed without a baseline partner is left out
    finals = {g: {s: FINALS[g, s] for s in (0, 1)} for g in ("base", "abl")}
    (row,) = paired_gaps(curves, finals, "base")
    gaps = np.array([np.subtract(LOSSES["abl", s], LOSSES["base", s]) for s in (0, 1)])
    assert row["seeds"] == 2 and row["tokens"] == TOKENS
    np.testing.assert_allclose(row["mean"], gaps.mean(axis=0))
    np.testing.assert_allclose(row["std"], gaps.std(axis=0, ddof=1))
    assert row["at_25"] == pytest.approx(gaps.mean(axis=0)[1])  # first evaluation at or after 1,000 tokens
    assert row["at_50"] == pytest.approx(gaps.mean(axis=0)[2]) and row["at_100"] == pytest.approx(gaps.mean(axis=0)[4])
    final = [FINALS["abl", s] - FINALS["base", s] for s in (0, 1)]
    assert row["final_mean"] == pytest.approx(np.mean(final)) and row["final_std"] == pytest.approx(np.std(final, ddof=1))


class CurveTrainer:
    """Writes the LOSSES curve of its run's (group, seed) and reports it completed."""

    def __call__(self, cfg):
        out = Path(cfg.out_dir)
        out.mkdir(parents=True, exist_ok=True)
        group = "abl" if out.name.startswith("abl") else "base"
        with open(out / "metrics.jsonl", "w") as f:
            for tokens, loss in zip(TOKENS, LOSSES[group, cfg.seed]):
                f.write(json.dumps({"kind": "val", "step": tokens // 100, "tokens": tokens, "val_loss": loss}) + "\n")
        return {"status": "completed", "tokens": TOKENS[-1], "steps": 40, "tokens_per_s": 100.0}


def test_a_seeded_ablation_sweep_writes_its_gaps_and_the_page_links_them(tmp_path):
    runs = with_seeds([RunSpec("base", "base", {}), RunSpec("abl", "abl", {"model.norm": "post"})], 2)
    sweep = Sweep("ablations", tmp_path / "sweeps" / "abl-sweep", _base(tmp_path), runs,
                  table_name="abl-sweep.md", plot_name="abl-sweep.png")
    results = run_sweep(sweep, CurveTrainer())
    for r in results:  # as the final evaluation would have recorded them
        r["full_val_loss"] = FINALS[r["group"], r["overrides"].get("seed", 0)]
    (row,) = write_gaps(sweep.out_dir, {s.name: sweep.run_dir(s) for s in runs}, results, 0, sweep.title)
    assert row["group"] == "abl" and row["final_mean"] == pytest.approx(0.175)
    saved = json.loads((sweep.out_dir / "gaps.json").read_text())
    assert saved["baseline"] == "base" and saved["groups"][0]["mean"] == pytest.approx(row["mean"])
    assert (sweep.out_dir / "gaps.png").stat().st_size > 0

    from test_doc_figures import check_markdown

    collect([sweep.out_dir], tmp_path / "docs" / "results")
    page = render(tmp_path / "docs" / "results", tmp_path / "docs" / "results.md")
    checked, problems = check_markdown(page, tmp_path / "docs", "results.md")
    assert problems == [] and "#### Gap to the baseline over training (base)" in page
    for key in ("at_25", "at_50", "at_100", "final_mean", "final_std"):
        assert f"results/abl-sweep/gaps.json#/groups/0/{key})" in page
    assert "](results/abl-sweep/gaps.png)" in page


def test_a_real_ablation_sweep_by_steps_reports_its_gaps(tmp_path):
    from tritonlm.corpora.stories import generate_corpus
    from tritonlm.tokenizer.tokenfile import write_tokens
    from tritonlm.train.experiments.cli import main

    ids = np.frombuffer(generate_corpus(30_000, seed=0).encode(), dtype=np.uint8)
    train = write_tokens(tmp_path / "train.tok", ids, 256)
    val = write_tokens(tmp_path / "val.tok", ids[-1501:], 256)
    assert main(["ablations", "--train-data", str(train), "--val-data", str(val), "--steps", "6",
                 "--values", "baseline,nope", "--seeds", "2", "--out", str(tmp_path / "out"), "--model.d_model=32",
                 "--model.num_layers=1", "--model.num_heads=2", "--model.context_length=32", "--batch_size=4",
                 "--eval_interval=3", "--eval_iters=1", "--model.kernels=torch"]) == 0
    folder = tmp_path / "out" / "ablations"
    runs = {r["name"]: r for r in json.loads((folder / "results.json").read_text())["results"]}
    (row,) = json.loads((folder / "gaps.json").read_text())["groups"]
    assert row["group"].startswith("no positional embedding") and row["seeds"] == 2
    paired = [runs["nope"]["full_val_loss"] - runs["baseline"]["full_val_loss"],
              runs["nope,seed=1"]["full_val_loss"] - runs["baseline,seed=1"]["full_val_loss"]]
    assert row["final_mean"] == pytest.approx(np.mean(paired))
    assert row["tokens"][-1] == 6 * 4 * 32  # the last evaluation, after the last step
