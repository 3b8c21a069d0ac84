"""``python -m train.experiments.results``: generate docs/results.md from the artefacts of runs made here.

(``python -m train.experiments.regenerate`` remakes all of them from one commit and calls this.)

``--collect RUN_OR_SWEEP ...`` first copies the small artefacts of leaderboard run folders
(report.json/.md, the val-loss plot, samples) and of sweep folders (table, overlay plot,
results.json; tokenizer tables) into ``docs/results/<name>/``; checkpoints and token files are
never copied. The page is then rendered from ``docs/results`` alone, so it can be regenerated
at any time without the runs: every figure on it comes from a committed JSON file, next to the
exact command that produced it.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
from pathlib import Path

from tritonlm.train.presentation import fmt, format_duration, markdown_table
from tritonlm.train.run_folder import RunFolder
from tritonlm.util.atomic import write_text_atomic
from tritonlm.util.cli import cli_main

def run_files(folder: RunFolder) -> list[Path]:
    """The small artefacts of a leaderboard run folder (never its checkpoint or token files)."""
    return [folder.report, folder.report_markdown, folder.val_curve_plot, folder.samples,
            folder.loss_vs_steps_plot]

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
        files = run_files(run) if run.report.exists() else [
            p for p in source.iterdir() if p.is_file() and p.suffix in SWEEP_SUFFIXES]
        for path in files:
            if path.exists():
                shutil.copy2(path, target / path.name)
        print(f"collected {source} -> {target}")


def module_command(metadata: dict) -> str:
    """The recorded command, runnable: ``python -m ...`` as recorded, or (records made before
    run_metadata recorded ``-m``) ``leaderboard.py --x`` -> ``python -m train.leaderboard --x``."""
    command = metadata.get("command", "")
    first, _, rest = command.partition(" ")
    if first.endswith(".py"):
        first = f"python -m train.{first[:-3]}"
    return f"{first} {rest}".strip()


def leaderboard_section(results_dir: Path, rel: str) -> list[str]:
    reports = sorted(results_dir.glob("*/report.json"))
    if not reports:
        return []
    rows, details = [], []
    for path in reports:
        r = json.loads(path.read_text())
        name = path.parent.name
        rows.append({"run": name, "data": r["data"]["train_source"], "final val loss": f"{r['final_val_loss']:.4f}",
                     "entropy floor": f"{r['val_entropy_floor']:.4f}" if r.get("val_entropy_floor") is not None else "-",
                     "above floor": f"{r['val_loss_above_floor']:.3f}" if r.get("val_loss_above_floor") is not None else "-",
                     "unigram entropy": f"{r['val_unigram_entropy']:.4f}",
                     "below unigram": f"{r['val_loss_below_unigram_entropy']:.3f}",
                     "val tokens": r["val_tokens"], "tokens seen": r["tokens_seen"], "tokens/s": r["tokens_per_second"],
                     "training": format_duration(r["training_seconds"] or 0),
                     "whole command": format_duration(r["timings_seconds"]["total"])})
        sample = r["samples"][0]["text"] if r["samples"] else ""
        details += [f"### {name}", "", f"`{module_command(r['metadata'])}`", "",
                    f"Device {r['device']}, git {r['metadata']['git_sha'][:12]}, {r['metadata']['date']}; "
                    f"{r['parameters']:,} parameters; preset {r['preset']}; val set: {r['data']['val_source']}.", "",
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


def sweep_section(results_dir: Path, rel: str) -> list[str]:
    parts = []
    for path in sorted(results_dir.glob("*/results.json")):
        data = json.loads(path.read_text())
        name = path.parent.name
        command = module_command(data.get("metadata", {}))
        table = (path.parent / f"{name}.md").read_text() if (path.parent / f"{name}.md").exists() else ""
        table = table.replace(f"]({name}.png)", f"]({rel}/{name}/{name}.png)")
        table = table.replace("## ", "### ", 1)
        base = data.get("base", {})
        model = base.get("model", {})
        parts += [table.strip(), "", f"`{command}`", "",
                  f"Each run: {model.get('num_layers')} x {model.get('d_model')}, context {model.get('context_length')}, "
                  f"batch {base.get('batch_size')}, max_lr {fmt(base.get('max_lr'))} unless the run changes it, "
                  + (f"{fmt(base.get('budget_seconds'))} s of training." if base.get("budget_seconds")
                     else f"{base.get('max_iters')} optimizer steps."), ""]
    return ["## Experiments", "", *parts] if parts else []


TABLE_SECTIONS = (  # (folder in docs/results, its table, the command that made it)
    ("bpe-scale", "bpe_scale.md", "python -m train.experiments bpe-scale --profile --out runs/experiments"),
    ("tokenizers", "tokenizers.md", "python -m train.experiments tokenizers --out runs/experiments"),
    ("sampling", "sampling.md",
     "python -m train.experiments sampling --data gutenberg --run runs/regen/lb-cpu-gutenberg-10m --out runs/regen"),
)


def table_sections(results_dir: Path, rel: str) -> list[str]:
    """The tokenizer experiments' own tables, their plots re-pointed into ``results_dir``."""
    parts = []
    for folder, table, command in TABLE_SECTIONS:
        path = results_dir / folder / table
        if path.exists():
            text = re.sub(r"\]\(([\w.-]+\.png)\)", lambda m: f"]({rel}/{folder}/{m.group(1)})", path.read_text())
            parts += [text.strip(), "", f"`{command}`", ""]
    return parts


def render(results_dir: Path, page: Path) -> str:
    rel = results_dir.relative_to(page.parent).as_posix() if results_dir.is_relative_to(page.parent) else str(results_dir)
    parts = ["# Results", "",
             "Generated by `python -m train.experiments.results` from the artefacts in "
             f"[{rel}/]({rel}/) (copied from the run folders with `--collect`); do not edit by hand. "
             "Runs were made on the 2-core CPU development machine, shared with other jobs, so throughput "
             "figures (tokens/s, and the tokens a time budget buys) vary from run to run with the load; "
             "compare losses at equal tokens.", ""]
    parts += leaderboard_section(results_dir, rel) + sweep_section(results_dir, rel) + table_sections(results_dir, rel)
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
