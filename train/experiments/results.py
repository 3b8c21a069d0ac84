"""``python -m train.experiments.results``: generate docs/results.md from the artefacts of runs made here.

(``python -m train.experiments.regenerate`` remakes all of them from one commit and calls this.)

``--collect RUN_OR_SWEEP ...`` first copies the small artefacts of leaderboard run folders
(report.json/.md, the val-loss plot, samples, the raw metrics.jsonl) and of sweep folders (table, overlay plot,
results.json, every run's raw metrics.jsonl; tokenizer tables) into ``docs/results/<name>/``; checkpoints and token files are
never copied. The page is then rendered from ``docs/results`` alone, so it can be regenerated
at any time without the runs: every figure on it comes from a committed JSON file, next to the
exact command that produced it.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import shutil
import sys
from pathlib import Path

from tritonlm.train.experiments.figure_links import (TABLE_LINKS, gap_tables, link, link_number, link_tables,
                                                     sweep_table_spec)
from tritonlm.train.presentation import fmt, format_duration, markdown_table
from tritonlm.train.run_folder import RunFolder
from tritonlm.util.atomic import write_text_atomic
from tritonlm.util.cli import cli_main

def run_files(folder: RunFolder) -> list[Path]:
    """The small artefacts of a leaderboard run folder, the raw metrics behind its plots included
    (never its checkpoint or token files)."""
    return [folder.report, folder.report_markdown, folder.val_curve_plot, folder.samples,
            folder.loss_vs_steps_plot, folder.metrics]

def progress_files(folder: RunFolder) -> list[Path]:
    """What a leaderboard run stopped part of the way shows: how far it got, its curve against the
    goal and the raw metrics behind it."""
    return [folder.progress, folder.progress_plot, folder.metrics]


SWEEP_SUFFIXES = (".md", ".png", ".json")


def collect(sources: list[Path], results_dir: Path) -> None:
    """Copy the small artefacts of run and sweep folders into ``results_dir/<folder name>``,
    replacing what an earlier collection put there (no file of an older run stays behind)."""
    for source in sources:
        if not source.is_dir():
            raise FileNotFoundError(f"{source} is not a run or sweep folder")
        target = results_dir / source.name
        if target.exists():
            shutil.rmtree(target)
        target.mkdir(parents=True)
        run = RunFolder(source)
        is_run = run.report.exists() or run.progress.exists()
        if run.report.exists():
            files = run_files(run)
        elif run.progress.exists():
            files = progress_files(run)
        else:
            files = [p for p in source.iterdir() if p.is_file() and p.suffix in SWEEP_SUFFIXES]
        for path in files:
            if path.exists():
                shutil.copy2(path, target / path.name)
        if not is_run:
            copy_sweep_metrics(source, target)
        print(f"collected {source} -> {target}")


def copy_sweep_metrics(sweep: Path, target: Path) -> None:
    """The raw metrics.jsonl of every run of a sweep (behind its plots and tables), as
    ``target/runs/<run>/metrics.jsonl``."""
    for metrics in sorted(sweep.glob("runs/*/metrics.jsonl")):
        destination = target / "runs" / metrics.parent.name / metrics.name
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(metrics, destination)


def module_command(metadata: dict) -> str:
    """The recorded command, runnable today: ``python -m ...`` as recorded, or (records made
    before run_metadata recorded ``-m``) ``leaderboard.py --x`` -> ``python -m train.leaderboard --x``;
    the experiments' ``--data`` (recorded before it was renamed) is spelt ``--train-data``."""
    command = metadata.get("command", "")
    first, _, rest = command.partition(" ")
    if first.endswith(".py"):
        first = f"python -m train.{first[:-3]}"
    command = f"{first} {rest}".strip()
    if "train.experiments " in command:
        command = re.sub(r"(?<=\s)--data(?=[\s=])", "--train-data", command)
    return command


LEADERBOARD_COLUMNS = (  # column, report.json key, format
    ("final val loss", "final_val_loss", "{:.4f}"), ("entropy floor", "val_entropy_floor", "{:.4f}"),
    ("above floor", "val_loss_above_floor", "{:.3f}"), ("unigram entropy", "val_unigram_entropy", "{:.4f}"),
    ("below unigram", "val_loss_below_unigram_entropy", "{:.3f}"), ("val tokens", "val_tokens", "{:,}"),
    ("tokens seen", "tokens_seen", "{:,}"), ("tokens/s", "tokens_per_second", "{:,.0f}"),
)


def leaderboard_row(r: dict, name: str, target: str) -> dict:
    """One run's row of the leaderboard table, each figure a link into its report.json."""
    row = {"run": name, "data": r["data"]["train_source"]}
    for column, key, form in LEADERBOARD_COLUMNS:
        value = r.get(key)
        row[column] = "-" if value is None else link_number(value, form.format(value), target, f"/{key}")
    row["training"] = format_duration(r["training_seconds"] or 0)
    row["whole command"] = format_duration(r["timings_seconds"]["total"])
    return row


def leaderboard_section(results_dir: Path, rel: str) -> list[str]:
    reports = sorted(results_dir.glob("*/report.json"))
    if not reports:
        return []
    rows, details = [], []
    for path in reports:
        r = json.loads(path.read_text())
        name = path.parent.name
        target = f"{rel}/{name}/report.json"
        rows.append(leaderboard_row(r, name, target))
        sample = r["samples"][0]["text"] if r["samples"] else ""
        parameters = link(f"{r['parameters']:,}", target, "/parameters")
        details += [f"### {name}", "", f"`{module_command(r['metadata'])}`", "",
                    f"Device {r['device']}, git {r['metadata']['git_sha'][:12]}, {r['metadata']['date']}; "
                    f"{parameters} parameters; "
                    f"preset {r['preset']}; val set: {r['data']['val_source']}.", "",
                    f"![{name}]({rel}/{name}/val_loss_vs_minutes.png)", "",
                    f"First sample (prompt `{r['samples'][0]['prompt']!r}`):" if sample else "", "",
                    "> " + sample[:600].replace("\n", " ") if sample else "", "",
                    f"Full report: [{rel}/{name}/report.md]({rel}/{name}/report.md)", ""]
    columns = list(rows[0])
    return ["## Leaderboard runs (`cpu` preset)", "",
            "Final validation loss over the whole validation set, all in nats/token: against the entropy floor "
            "of the generated stories (the loss of the best possible model; \"above floor\" is what is left to "
            "learn) and against the unigram entropy of the same tokens (\"below unigram\" is what the model "
            "learnt from context).", "",
            markdown_table(rows, columns), "", *details]


def effective(runs: list[dict], base: dict, key: str) -> tuple[object, str]:
    """The first run's setting of ``key`` and the pointer to where results.json records it."""
    overrides = runs[0].get("overrides", {}) if runs else {}
    return (overrides[key], f"/results/0/overrides/{key}") if key in overrides else (base.get(key), f"/base/{key}")


def varies(runs: list[dict], key: str) -> bool:
    """Whether the runs of a sweep set ``key`` to different values (their names then give it)."""
    return len({repr(run.get("overrides", {}).get(key)) for run in runs}) > 1


def steps_phrase(runs: list[dict], target: str) -> str:
    """How many steps each batch size took when a sweep matched tokens rather than steps."""
    first_at = {}  # batch size -> index of its first run
    for i, run in enumerate(runs):
        first_at.setdefault(run["overrides"].get("batch_size"), i)

    def tokens_of(i: int) -> str:
        return link(f"{runs[i]['tokens']:,}", target, f"/results/{i}/tokens")

    steps = []
    for n, (batch, i) in enumerate(first_at.items()):
        iters = link(f"{runs[i]['overrides']['max_iters']:,}", target, f"/results/{i}/overrides/max_iters")
        steps.append(f"{iters} at {'batch ' if n == 0 else ''}{batch}")
    listed = ", ".join(steps[:-1]) + f" and {steps[-1]}" if len(steps) > 1 else steps[0]
    counts = [runs[i]["tokens"] for i in first_at.values()]
    usual = max(set(counts), key=counts.count)
    usual_at = next(i for i in first_at.values() if runs[i]["tokens"] == usual)
    odd = "".join(f" ({tokens_of(i)} tokens at batch {batch}, the step count rounded up)"
                  for batch, i in first_at.items() if runs[i]["tokens"] != usual)
    return f"as many optimizer steps as make {tokens_of(usual_at)} tokens: {listed}{odd}"


def sweep_caption(data: dict, target: str) -> str:
    """What every run of a sweep shares, and which settings its runs' names give, each figure a link."""
    base, runs = data.get("base", {}), data.get("results", [])
    model = base.get("model", {})
    parts = [f"{link(model.get('num_layers'), target, '/base/model/num_layers')} x "
             f"{link(model.get('d_model'), target, '/base/model/d_model')}",
             f"context {link(model.get('context_length'), target, '/base/model/context_length')}"]
    named = [label for key, label in (("batch_size", "batch size"), ("max_lr", "max_lr")) if varies(runs, key)]
    for key, label, show in (("batch_size", "batch", str), ("max_lr", "max_lr", fmt)):
        if not varies(runs, key):
            value, pointer = effective(runs, base, key)
            parts.append(f"{label} {link(show(value), target, pointer)}")
    if named:
        tenth = varies(runs, "max_lr") and all(
            math.isclose(r["overrides"].get("min_lr", -1), r["overrides"]["max_lr"] / 10) for r in runs)
        parts.append(f"the {' and '.join(named)} its name gives" + (" (min_lr a tenth of max_lr)" if tenth else ""))
    budget, budget_pointer = effective(runs, base, "budget_seconds")
    if budget:
        parts.append(f"{link(fmt(budget), target, budget_pointer)} s of training")
    elif varies(runs, "max_iters") and varies(runs, "batch_size"):
        parts.append(steps_phrase(runs, target))
    else:
        iters, iters_pointer = effective(runs, base, "max_iters")
        parts.append(f"{link(iters, target, iters_pointer)} optimizer steps")
    return "Each run: " + ", ".join(parts) + "."


def sweep_section(results_dir: Path, rel: str) -> list[str]:
    sweeps = []  # (name, data, table as the page shows it)
    for path in sorted(results_dir.glob("*/results.json")):
        name = path.parent.name
        table_path = path.parent / f"{name}.md"
        table = table_path.read_text() if table_path.exists() else ""
        table = re.sub(r"^(#+) ", r"#\1 ", table.replace(f"]({name}.png)", f"]({rel}/{name}/{name}.png)"),
                       flags=re.M)  # one level down: the page's own sections are "##"
        sweeps.append((name, json.loads(path.read_text()), table))
    titles = [table.splitlines()[0] if table else "" for _, _, table in sweeps]
    parts = []
    for (name, data, table), title in zip(sweeps, titles):
        target = f"{rel}/{name}/results.json"
        if title and titles.count(title) > 1:  # sweeps of one kind: the folder tells them apart
            table = table.replace(title, f"{title}: `{name}`", 1)
        parts += [link_tables(table, target, sweep_table_spec(data)).strip(), ""]
        gaps = results_dir / name / "gaps.md"
        if gaps.exists():  # an ablation sweep's gaps to its baseline along training
            text = gaps.read_text().replace("](gaps.png)", f"]({rel}/{name}/gaps.png)").replace("### ", "#### ", 1)
            parts += [link_tables(text, f"{rel}/{name}/gaps.json", gap_tables).strip(), ""]
        parts += [f"`{module_command(data.get('metadata', {}))}`", "", sweep_caption(data, target), ""]
    return ["## Experiments", "", *parts] if parts else []


# (folder in docs/results, its table): the table's JSON file (``TABLE_LINKS``) links its figures
# and records the command that made it.
TABLE_SECTIONS = (("bpe-scale", "bpe_scale.md"), ("encode-datasets", "encode_datasets.md"),
                  ("tokenizers", "tokenizers.md"), ("sampling", "sampling.md"),
                  ("loss-split", "loss_split.md"))


PROGRESS_COLUMNS = (  # column, progress.json key, format, pointer suffix (the unit the page shows)
    ("steps", "steps", "{:,}", ""), ("of", "max_iters", "{:,}", ""), ("done", "fraction_done", "{:.0%}", "*100"),
    ("tokens seen", "tokens_seen", "{:,}", ""), ("last val loss", "last_periodic_val_loss", "{:.4f}", ""), ("at step", "last_val_step", "{:,}", ""),
    ("on val tokens", "periodic_val_tokens", "{:,}", ""), ("entropy floor", "val_entropy_floor", "{:.4f}", ""),
    ("above floor", "last_val_above_floor", "{:.3f}", ""), ("tokens/s", "tokens_per_second", "{:,.0f}", ""),
)


def progress_section(results_dir: Path, rel: str) -> list[str]:
    """Long runs stopped part of the way: how far each got, its curve, and every stretch of it."""
    rows, details = [], []
    for path in sorted(results_dir.glob("*/progress.json")):
        p, name = json.loads(path.read_text()), path.parent.name
        target = f"{rel}/{name}/progress.json"
        row = {"run": name}
        for column, key, form, unit in PROGRESS_COLUMNS:
            value = p.get(key)
            row[column] = "-" if value is None else link_number(value, form.format(value), target, f"/{key}{unit}")
        row["training"] = format_duration(p["training_seconds"])
        left = p.get("seconds_left_at_this_rate")
        row["left at this rate"] = "-" if left is None else format_duration(left)
        rows.append(row)
        stretches = [f"from step {s['step']:,}: git {(s['git_sha'] or '?')[:12]}, {s['device']}, {s['date']}"
                     for s in p["segments"]]
        started = module_command(p["segments"][0] if p["segments"] else p["metadata"])
        details += [f"### {name} (stopped at step {p['steps']:,} of {p['max_iters']:,})", "",
                    f"`{started}`, continued with the same command plus `--resume`.", "",
                    f"Preset {p['preset']}; stretches of the run: " + "; ".join(stretches) + ".", "",
                    f"![{name}]({rel}/{name}/val_loss_vs_tokens.png)", ""]
    if not rows:
        return []
    return ["## Runs stopped part of the way", "",
            "Long runs collected where they stopped. A run resumes with `--resume` from the checkpoint in its run "
            "folder, while that folder is kept, and gets its full report (the whole validation set, samples) when "
            "it finishes. The loss here is the last periodic evaluation, on a sample of the validation set.", "",
            markdown_table(rows, list(rows[0])), "", *details]


def table_sections(results_dir: Path, rel: str) -> list[str]:
    """The tokenizer experiments' own tables, their plots re-pointed into ``results_dir``, each
    under the command its result file records."""
    parts = []
    for folder, table in TABLE_SECTIONS:
        path = results_dir / folder / table
        if path.exists():
            json_name, spec = TABLE_LINKS[table]
            text = re.sub(r"\]\(([\w.-]+\.png)\)", lambda m: f"]({rel}/{folder}/{m.group(1)})", path.read_text())
            text = link_tables(text, f"{rel}/{folder}/{json_name}", spec)
            metadata = json.loads((results_dir / folder / json_name).read_text()).get("metadata", {})
            parts += [text.strip(), "", f"`{module_command(metadata)}`", ""]
    return parts


def render(results_dir: Path, page: Path) -> str:
    rel = results_dir.relative_to(page.parent).as_posix() if results_dir.is_relative_to(page.parent) else str(results_dir)
    parts = ["# Results", "",
             "Generated by `python -m train.experiments.results` from the artefacts in "
             f"[{rel}/]({rel}/) (copied from the run folders with `--collect`); do not edit its figures by hand. "
             "Runs were made on the 2-core CPU development machine, shared with other jobs, so throughput "
             "figures (tokens/s, and the tokens a time budget buys) vary from run to run with the load; "
             "compare losses at equal tokens.", "",
             "Every figure on this page that a result file holds is a link to that file: click it to see the JSON "
             "it comes from, where the part of the link after `#` (a JSON pointer, such as "
             "`/results/0/final_val_loss`) names the value, and `*1e-6` or `*100` after it means the page shows "
             "the value in MB or as a percentage. `tests/test_doc_figures.py` checks each figure against its "
             "file, rounded as the page shows it.", ""]
    parts += (leaderboard_section(results_dir, rel) + progress_section(results_dir, rel) + sweep_section(results_dir, rel)
              + table_sections(results_dir, rel))
    return "\n".join(parts) + "\n"


@cli_main
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m train.experiments.results", description=__doc__.split("\n\n")[0])
    parser.add_argument("--collect", nargs="*", type=Path, default=[], help="run or sweep folders to copy in first")
    parser.add_argument("--results-dir", type=Path, default=Path("docs/results"))
    parser.add_argument("--page", type=Path, default=Path("docs/results.md"))
    args = parser.parse_args(argv)
    collect(args.collect, args.results_dir)
    write_text_atomic(args.page, render(args.results_dir.resolve(), args.page.resolve()))
    print(f"wrote {args.page}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
