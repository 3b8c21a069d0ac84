"""``python -m train.leaderboard.sweep``: the search that chose the ``cpu`` recipe, rerunnable.

Every candidate is the plain CPU recipe (``cpu-plain``: AdamW, cosine, fp32, eager, batch 16)
with some settings changed, trained for the same wall-clock budget (budget-matched, not
step-matched: a faster setting sees more tokens) on the same token files, then evaluated on every
validation token. The candidates add one lever at a time where they can, so each step's gain is
read off the table:

    sweep.json  sweep.md  sweep.png  NAME-seedK.metrics.jsonl   (in --results)

    python -m train.leaderboard.sweep --results docs/results/speedrun-sweep
    python -m train.leaderboard.sweep --only muon,muon-lr-high --budget 90s   # a quick screen

Finished candidates are read back from their run folders, so a stopped sweep continues.
"""

from __future__ import annotations

import argparse
import sys

from tritonlm.train.presentation import markdown_table
from tritonlm.train.recipes import get_recipe
from tritonlm.util.atomic import write_json_atomic, write_text_atomic
from tritonlm.util.cli import cli_main
from tritonlm.util.runinfo import run_metadata

from .study import add_data_arguments, copy_raw_metrics, describe_budget, open_study, plot_study
from .trials import Trial, format_count, format_spread, run_trial, summarise_runs, trial_config

BASE = "cpu-plain"
FAST = {"compile": "true", "dtype": "bf16"}
BATCH32 = {**FAST, "batch_size": "32", "max_lr": "3e-3", "min_lr": "3e-4"}
MUON = {**BATCH32, "optimizer": "muon", "muon_lr": "1e-2"}
RELU2_ZERO = {"model.ffn": "relu2", "model.d_ff": "none", "model.zero_init_output": "true"}

#: name -> (what changes, the overrides of the ``cpu-plain`` recipe), in the order they are run.
CANDIDATES: dict[str, tuple[str, dict[str, str]]] = {
    "plain": ("the plain recipe as it is", {}),
    "compiled-bf16": ("torch.compile + bf16 autocast", FAST),
    "batch32": ("+ batch 32, AdamW lr 3e-3", BATCH32),
    "muon": ("batch32 + Muon for the hidden matrices, muon_lr 1e-2", MUON),
    "muon-lr3e-3": ("batch32 + Muon, muon_lr 3e-3 (the AdamW rate)", {**MUON, "muon_lr": "3e-3"}),
    "relu2-zero": ("batch32 + ReLU² FFN (d_ff 4 d_model) + zero-initialised output projections",
                   {**BATCH32, **RELU2_ZERO}),
    "wide": ("batch32, d_model 384 (12 heads of 32)", {**BATCH32, "model.d_model": "384", "model.num_heads": "12",
                                                      "model.d_ff": "none"}),
    "muon-lr3e-3-relu2-zero": ("muon-lr3e-3 + ReLU² + zero-init", {**MUON, "muon_lr": "3e-3", **RELU2_ZERO}),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m train.leaderboard.sweep", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default=None, help=f"comma-separated candidates (default all: {', '.join(CANDIDATES)})")
    add_data_arguments(parser, default_out="runs/speedrun-sweep")
    return parser


def selected(only: str | None) -> list[str]:
    if not only:
        return list(CANDIDATES)
    names = [n.strip() for n in only.split(",") if n.strip()]
    unknown = [n for n in names if n not in CANDIDATES]
    if unknown:
        raise ValueError(f"unknown candidate(s) {', '.join(unknown)}; choose from {', '.join(CANDIDATES)}")
    return names


def run_sweep(args: argparse.Namespace) -> dict:
    base = get_recipe(BASE)
    study = open_study(args, base)
    budget, data, out, results = study.budget, study.data, study.out, study.results
    records = []
    for name in selected(args.only):
        for seed in range(args.seeds):
            cfg = trial_config(base.train_config(), data, out / f"{name}-seed{seed}", seed, budget, CANDIDATES[name][1])
            records.append(run_trial(Trial(name, cfg, seed), data, base.leaderboard.eval_batch_size))
    table = summarise(records)
    report = {"base": BASE, "budget_seconds": budget, "seeds": args.seeds, "entropy_floor": data.val_entropy_floor,
              "candidates": table, "data": data.to_dict(), "metadata": run_metadata()}
    write_json_atomic(results / "sweep.json", {**report, "runs": records})
    write_text_atomic(results / "sweep.md", render(report))
    copy_raw_metrics(records, out, results)
    plot_study(records, data.val_entropy_floor, results / "sweep.png",
               f"recipe sweep from {BASE}: {describe_budget(budget, args.seeds)}")
    return report


def summarise(records: list[dict]) -> list[dict]:
    rows = []
    for name in dict.fromkeys(r["name"] for r in records):
        runs = [r for r in records if r["name"] == name]
        rows.append({"name": name, "what": CANDIDATES[name][0], "overrides": CANDIDATES[name][1],
                     **summarise_runs(runs)})
    return rows


def render(report: dict) -> str:
    rows = [{"name": f"`{c['name']}`", "what": c["what"], "final": format_spread(c["final_val_loss"]),
             "gap": format_spread(c["gap_to_floor"]), "tokens": format_spread(c["tokens"], format_count),
             "speed": format_spread(c["tokens_per_s"], format_count)} for c in report["candidates"]]
    floor = report["entropy_floor"]
    return "\n".join([
        f"# Recipe sweep from `{report['base']}`", "",
        f"{describe_budget(report['budget_seconds'], report['seeds'])}, on the same token files; final loss on every "
        "validation token" + (f"; entropy floor {floor:.4f} nats/token" if floor is not None else "") + ".", "",
        markdown_table(rows, ["name", "what", "final", "gap", "tokens", "speed"],
                       ["candidate", "change", "final val loss", "gap to the floor", "tokens seen", "tokens/s"]), "",
        "![validation loss against training minutes](sweep.png)", ""])


@cli_main
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    print(render(run_sweep(args)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
