"""``python -m train.leaderboard.speedrun``: the plain recipe and the project's recipe, side by side.

Both train for the same budget on the same corpus and token files, one after the other, seed by
seed (plain, project, plain, project, ...), so load on a shared machine falls on both alike.
Each run is evaluated on every validation token. The report gives, per recipe, the median and
range over seeds of the final loss, the gap to the corpus's entropy floor, the tokens seen, the
throughput, and the time the project's recipe takes to reach the plain recipe's final loss
(read off its periodic validation curve), and draws every run's curve with the floor:

    speedrun.json  speedrun.md  speedrun.png  NAME-seedK.metrics.jsonl   (in --results)

    python -m train.leaderboard.speedrun --seeds 3 --results docs/results/speedrun

A stopped report continues where it stopped when run again with the same options.
"""

from __future__ import annotations

import argparse
import sys

from tritonlm.train.presentation import format_duration, markdown_table
from tritonlm.train.recipes import LEADERBOARD_CHOICES, get_recipe
from tritonlm.util.atomic import write_json_atomic, write_text_atomic
from tritonlm.util.cli import cli_main
from tritonlm.util.runinfo import run_metadata

from .study import add_data_arguments, copy_raw_metrics, describe_budget, open_study, plot_study
from .trials import (Trial, format_count, format_spread, run_trial, spread, summarise_runs, time_to_reach,
                     trial_config)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m train.leaderboard.speedrun", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    recipes = [name for name in LEADERBOARD_CHOICES if name != "auto"]
    parser.add_argument("--preset", default="cpu", choices=recipes, help="the project's recipe")
    parser.add_argument("--baseline", default="cpu-plain", choices=recipes, help="the plain recipe it is measured against")
    add_data_arguments(parser, default_out="runs/speedrun")
    return parser


def run_speedrun(args: argparse.Namespace) -> dict:
    project, plain = get_recipe(args.preset), get_recipe(args.baseline)
    study = open_study(args, project)
    budget, data, out, results = study.budget, study.data, study.out, study.results
    records = []
    for seed in range(args.seeds):
        for recipe in (plain, project):
            folder = out / f"{recipe.name}-seed{seed}"
            cfg = trial_config(recipe.train_config(), data, folder, seed, budget)
            records.append(run_trial(Trial(recipe.name, cfg, seed), data, project.leaderboard.eval_batch_size))
    report = summarise(records, plain.name, project.name, budget, data.val_entropy_floor)
    report.update(data=data.to_dict(), seeds=args.seeds, metadata=run_metadata())
    write_json_atomic(results / "speedrun.json", {**report, "runs": records})
    write_text_atomic(results / "speedrun.md", render(report))
    copy_raw_metrics(records, out, results)
    baseline_final = report["recipes"][plain.name]["final_val_loss"]["median"]
    plot_study(records, data.val_entropy_floor, results / "speedrun.png",
               f"{project.name} vs {plain.name}: {describe_budget(budget, args.seeds)}",
               reference=(f"{plain.name} final loss (median)", baseline_final))
    return report


def summarise(records: list[dict], plain: str, project: str, budget: float, floor: float | None) -> dict:
    """Per recipe: final loss, gap, tokens, tokens/s (median and range), and for the project's
    recipe the time its validation curve takes to reach the plain recipe's median final loss."""
    by_name = {name: [r for r in records if r["name"] == name] for name in (plain, project)}
    target = spread([r["final_val_loss"] for r in by_name[plain]])["median"]
    summary = {}
    for name, runs in by_name.items():
        reach = [time_to_reach(r["val_curve"], target) for r in runs]
        summary[name] = {
            **summarise_runs(runs),
            "seconds_to_plain_final": spread(reach),
            "reached_plain_final": sum(t is not None for t in reach),
        }
    return {"plain": plain, "project": project, "budget_seconds": budget, "entropy_floor": floor,
            "plain_final_val_loss": target, "recipes": summary}


def _seconds(value: float) -> str:
    return f"{value:.0f} s"


def render(report: dict) -> str:
    budget = report["budget_seconds"]
    rows = []
    for name, s in report["recipes"].items():
        reach = s["seconds_to_plain_final"]
        rows.append({
            "recipe": name, "final": format_spread(s["final_val_loss"]), "gap": format_spread(s["gap_to_floor"]),
            "tokens": format_spread(s["tokens"], format_count), "speed": format_spread(s["tokens_per_s"], format_count),
            "reach": (f"{format_spread(reach, _seconds)} ({reach['median'] / budget:.0%} of the budget)"
                      if reach["n"] else "not reached"),
        })
    floor = report["entropy_floor"]
    lines = [f"# Speedrun: `{report['project']}` against `{report['plain']}`", "",
             f"Same corpus and token files, {format_duration(budget)} of training per run, "
             f"{report['seeds']} seed(s) per recipe, run one after the other. Each figure is the median over seeds "
             "[minimum–maximum]. The final loss is measured on every validation token. The time to reach the plain "
             "recipe's final loss is read off the periodic validation curve (a few batches per point).", "",
             markdown_table(rows, ["recipe", "final", "gap", "tokens", "speed", "reach"],
                            ["recipe", "final val loss", "gap to the floor", "tokens seen", "tokens/s",
                             f"time to reach {report['plain_final_val_loss']:.3f}"]), ""]
    if floor is not None:
        lines += [f"Entropy floor of the validation set: {floor:.4f} nats/token.", ""]
    lines += ["![validation loss against training minutes](speedrun.png)", ""]
    return "\n".join(lines)


@cli_main
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    report = run_speedrun(args)
    print(render({**report, "seeds": args.seeds}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
