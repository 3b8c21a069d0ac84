"""A sweep: a named set of training runs that survives crashes, divergence and interruption.

Each run trains in its own folder ``<sweep>/runs/<name>`` through ``train.loop.run_training``.
When it ends, its outcome is written to ``<name>/result.json``:

- ``completed``: the run reached its budget with a finite loss;
- ``diverged``: the loss became NaN/inf (``NonFiniteLossError``), or the final validation loss
  ended above the untrained model's (the first evaluation): the optimiser made things worse;
- ``crashed``: any other exception (an invalid config, out of memory, ...), with the message.

None of these stops the sweep. Run again after an interruption (Ctrl-C, a killed job) and the
sweep resumes: runs with a ``result.json`` are skipped, a run with a checkpoint but no result
continues from its checkpoint (``--resume``; a budgeted run keeps its spent training time), and
the others start afresh. With ``final_eval`` each completed run is then measured on every
token of the validation set (the periodic evaluations see a few batches only), and that loss is
the one its table reports. The sweep ends with one overlay plot (validation loss against minutes
or tokens) and a Markdown table, both regenerated from the result files; a sweep whose settings
run at several seeds (``train.experiments.seeds``) adds the mean and spread of each setting and
plots each setting's mean curve.
"""

from __future__ import annotations

import dataclasses
import json
import math
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from tritonlm.util.cli import apply_overrides
from tritonlm.train.config import TrainConfig
from tritonlm.train.metrics_log import read_metrics
from tritonlm.train.run_folder import RunFolder
from tritonlm.util.runinfo import run_metadata
from tritonlm.train.presentation import markdown_table, plot_overlay, val_curve
from tritonlm.util.atomic import write_json_atomic, write_text_atomic
from tritonlm.util.cli import Interrupted
from tritonlm.train.experiments.seeds import groups_table, mean_curves, seed_groups

RESULT_FILE = "result.json"
STATUSES = ("completed", "diverged", "crashed")
COLUMNS = ["label", "status", "best_val_loss", "final_val_loss", "tokens_per_s", "tokens", "steps", "note"]
HEADERS = ["run", "status", "best val loss", "final val loss", "tokens/s", "tokens", "steps", "note"]
# with a final evaluation on the whole validation set, after the final (periodic) val loss
FULL_EVAL_COLUMNS = {"full_val_loss": "val loss, whole val set", "full_val_tokens": "val tokens"}


@dataclass(frozen=True)
class RunSpec:
    """One run of a sweep: a folder name, a label for plots and tables, and config overrides."""

    name: str
    label: str
    overrides: dict = field(default_factory=dict)  # dotted TrainConfig keys -> values
    group: str = ""  # the setting it repeats at another seed (its label when empty)


@dataclass
class Sweep:
    title: str
    out_dir: Path
    base: TrainConfig  # data, model, budget shared by every run
    runs: Sequence[RunSpec]
    plot_name: str = "overlay.png"
    table_name: str = "table.md"
    x_axis: str = "minutes"  # overlay x axis: "minutes" (training time) or "tokens" (seen, millions)
    final_eval: bool = False  # measure each completed run on every validation token
    eval_batch_size: int = 64  # sequences per batch of that final evaluation

    def run_dir(self, spec: RunSpec) -> Path:
        return self.out_dir / "runs" / spec.name


Trainer = Callable[[TrainConfig], dict]


def default_trainer(cfg: TrainConfig) -> dict:
    from tritonlm.train.loop import run_training

    return run_training(cfg)


def run_sweep(sweep: Sweep, trainer: Trainer = default_trainer) -> list[dict]:
    """Run (or resume) every run of ``sweep``; returns the results and writes plot and table."""
    names = [spec.name for spec in sweep.runs]
    if len(set(names)) != len(names):
        raise ValueError(f"run names must be unique within a sweep, got {names}")
    results = []
    for i, spec in enumerate(sweep.runs, start=1):
        run_dir = sweep.run_dir(spec)
        existing = read_result(run_dir)
        check_same_config(sweep, spec, existing, run_dir)
        if existing is not None:
            metrics = read_metrics(RunFolder(run_dir).metrics) if RunFolder(run_dir).metrics.exists() else []
            existing = with_final_eval(sweep, spec, reclassify(refreshed(existing, spec, metrics), metrics))
            print(f"[{i}/{len(sweep.runs)}] {spec.label}: already {existing['status']}, skipped")
            results.append(existing)
            continue
        resume = RunFolder(run_dir).checkpoint.exists()
        print(f"[{i}/{len(sweep.runs)}] {spec.label}: {'resuming' if resume else 'starting'} in {run_dir}")
        result = execute_run(sweep, spec, resume, trainer)
        print(f"    -> {result['status']}; best val loss {result['best_val_loss']}; {result['note']}")
        results.append(result)
    write_sweep_outputs(sweep, results)
    return results


def run_config(sweep: Sweep, spec: RunSpec) -> dict:
    """The training config of one run, as a dict, without the fields that vary between attempts."""
    cfg = apply_overrides(sweep.base, {**spec.overrides, "out_dir": str(sweep.run_dir(spec))})
    config = {k: v for k, v in cfg.to_dict().items() if k not in ("resume", "overwrite", "progress")}
    return json.loads(json.dumps(config))  # as it reads back from result.json (tuples -> lists)


def check_same_config(sweep: Sweep, spec: RunSpec, existing: dict | None, run_dir: Path) -> None:
    """Refuse to resume a sweep folder whose runs were made with another configuration."""
    if existing is None or "config" not in existing:
        return
    try:
        current = run_config(sweep, spec)
    except Exception:  # noqa: BLE001 - an invalid config is recorded as crashed when it runs
        return
    if existing["config"] != current:
        changed = sorted(k for k in set(current) | set(existing["config"]) if current.get(k) != existing["config"].get(k))
        raise ValueError(f"{run_dir} holds a run made with a different configuration ({', '.join(changed)}); "
                         "resume it with the same options, or choose another --out")


def execute_run(sweep: Sweep, spec: RunSpec, resume: bool, trainer: Trainer) -> dict:
    """Train one run and record its outcome; exceptions become ``crashed``/``diverged`` results."""
    from tritonlm.train.loop import NonFiniteLossError

    run_dir = sweep.run_dir(spec)
    summary, status, note = {}, "completed", ""
    try:
        cfg = apply_overrides(sweep.base, {**spec.overrides, "out_dir": str(run_dir), "resume": resume,
                                           "overwrite": not resume})
        summary = trainer(cfg)
        if summary.get("status") == "interrupted":
            raise Interrupted(f"{spec.label} was interrupted; run the sweep again to resume it")
    except NonFiniteLossError as e:
        status, note = "diverged", str(e).split(";")[0]
    except (KeyboardInterrupt, Interrupted, SystemExit):
        raise
    except Exception as e:  # noqa: BLE001 - any failure of one run is recorded, the sweep goes on
        status, note = "crashed", f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
        write_text_atomic(run_dir / "error.txt", traceback.format_exc())
    result = summarise_run(spec, run_dir, summary, status, note)
    try:
        result["config"] = run_config(sweep, spec)
    except Exception:  # noqa: BLE001 - the config itself was the crash
        result["config"] = None
    write_json_atomic(run_dir / RESULT_FILE, result)
    return with_final_eval(sweep, spec, result)


def with_final_eval(sweep: Sweep, spec: RunSpec, result: dict) -> dict:
    """``result`` with its loss on every validation token (measured once, then kept in
    result.json), when the sweep asks for it and the run completed."""
    if not sweep.final_eval or result["status"] != "completed" or result.get("full_val_loss") is not None:
        return result
    from tritonlm.tokenizer.tokenfile import open_tokens
    from tritonlm.train.leaderboard.evaluate import evaluate_full
    from tritonlm.train.run_folder import load_model

    cfg = apply_overrides(sweep.base, spec.overrides)
    try:
        model = load_model(sweep.run_dir(spec), cfg.device, cfg.model.kernels)
        tokens, _ = open_tokens(cfg.val_data)
        final = evaluate_full(model, tokens, cfg, sweep.eval_batch_size, next(model.parameters()).device)
    except Exception as e:  # noqa: BLE001 - e.g. a run folder without its checkpoint: the sweep goes on
        print(f"    {spec.label}: no final evaluation ({type(e).__name__}: {e}); its periodic val loss stands")
        return result
    result = {**result, "full_val_loss": final["val_loss"], "full_val_tokens": final["val_tokens"]}
    write_json_atomic(sweep.run_dir(spec) / RESULT_FILE, result)
    return result


def summarise_run(spec: RunSpec, run_dir: Path, summary: dict, status: str, note: str) -> dict:
    metrics = read_metrics(RunFolder(run_dir).metrics)
    _, losses = val_curve([m for m in metrics if m.get("kind") == "val"])
    finite = [v for v in losses if math.isfinite(v)]
    train_losses = [m.get("train_loss") for m in metrics if m.get("kind") == "train"]
    if status == "completed":
        blow_up = divergence_note(losses, train_losses)
        status, note = ("diverged", blow_up) if blow_up else (status, note)
    return {
        "name": spec.name, "label": spec.label, "group": spec.group or spec.label, "overrides": spec.overrides,
        "status": status,
        "best_val_loss": min(finite) if finite else None,
        "final_val_loss": losses[-1] if losses else None,
        "tokens_per_s": _tokens_per_s(metrics) or summary.get("tokens_per_s"),
        "tokens": summary.get("tokens") or (metrics[-1].get("tokens") if metrics else None),
        "steps": summary.get("steps") or (metrics[-1].get("step") if metrics else None),
        "train_seconds": summary.get("train_seconds"),
        "note": note or summary.get("message", ""),
    }


BLOW_UP_NATS = 1.0  # a validation loss this far above the untrained model's is a blow-up


def divergence_note(val_losses: list[float], train_losses: list[float | None]) -> str:
    """Why a run that finished counts as diverged ("" if it does not): a non-finite loss, a
    validation loss that blew up above the untrained model's (the first evaluation) by more
    than ``BLOW_UP_NATS`` at any point, or a final one above it."""
    if any(v is not None and not math.isfinite(v) for v in [*val_losses, *train_losses]):
        return "non-finite loss"
    if len(val_losses) < 2:
        return ""
    first, worst = val_losses[0], max(val_losses[1:])
    if worst > first + BLOW_UP_NATS:
        return f"val loss blew up to {worst:.3f} (untrained: {first:.3f}) before ending at {val_losses[-1]:.3f}"
    if val_losses[-1] > first:
        return f"final val loss {val_losses[-1]:.3f} above the untrained model's {first:.3f}"
    return ""


def reclassify(result: dict, metrics: list[dict]) -> dict:
    """A recorded ``completed`` run judged again from its metrics (the criterion may be newer)."""
    if result.get("status") != "completed":
        return result
    _, losses = val_curve([m for m in metrics if m.get("kind") == "val"])
    note = divergence_note(losses, [m.get("train_loss") for m in metrics if m.get("kind") == "train"])
    return {**result, "status": "diverged", "note": note} if note else result


def refreshed(result: dict, spec: RunSpec, metrics: list[dict]) -> dict:
    """A recorded result named as this sweep names it (a one-seed sweep grown to more seeds
    relabels its runs), its throughput read again from its metrics as the median below."""
    return {**result, "label": spec.label, "group": spec.group or spec.label,
            "tokens_per_s": _tokens_per_s(metrics) or result.get("tokens_per_s")}


def _tokens_per_s(metrics: list[dict]) -> float | None:
    """The median of the rates logged over the run's intervals: on a shared machine one slow or
    paused interval moves it little, where tokens / training time takes all of it in."""
    rates = [m["tokens_per_s"] for m in metrics if m.get("kind") == "train" and m.get("tokens_per_s")]
    return sorted(rates)[len(rates) // 2] if rates else None


def read_result(run_dir: Path) -> dict | None:
    """The recorded outcome of a finished run, or None (not run, unfinished, or a torn write)."""
    path = run_dir / RESULT_FILE
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def write_sweep_outputs(sweep: Sweep, results: list[dict]) -> tuple[Path, Path]:
    """The overlay plot and the Markdown table (plus results.json) of a sweep."""
    repeated = len({spec.group or spec.label for spec in sweep.runs}) < len(sweep.runs)
    curves, groups, failed = {}, {}, set()
    for spec, result in zip(sweep.runs, results):
        metrics = read_metrics(RunFolder(sweep.run_dir(spec)).metrics)
        x, y = val_curve([m for m in metrics if m.get("kind") == "val"], sweep.x_axis)
        label = spec.label + ("" if result["status"] == "completed" else f" ({result['status']})")
        curves[label], groups[label] = (x, y), spec.group or spec.label
        if result["status"] != "completed":
            failed.add(label)
    xlabel = "training minutes" if sweep.x_axis == "minutes" else "tokens seen (millions)"
    plot = plot_overlay(mean_curves(curves, groups, failed) if repeated else curves, sweep.out_dir / sweep.plot_name,
                        sweep.title, xlabel=xlabel)
    columns, headers = run_columns(sweep)
    text = f"## {sweep.title}\n\n"
    if repeated:
        text += f"### Each setting over its seeds\n\n{groups_table(results)}\n\n### Every run\n\n"
    text += f"{markdown_table(results, columns, headers)}\n\n![{sweep.title}]({sweep.plot_name})\n"
    write_text_atomic(sweep.out_dir / sweep.table_name, text)
    summary = {"title": sweep.title, "base": dataclasses.asdict(sweep.base),
               "results": [{k: v for k, v in r.items() if k != "config"} for r in results]}
    if repeated:
        summary["groups"] = seed_groups(results)
    write_json_atomic(sweep.out_dir / "results.json", {**summary, "metadata": run_metadata()})
    return plot, sweep.out_dir / sweep.table_name


def run_columns(sweep: Sweep) -> tuple[list[str], list[str]]:
    """The per-run table's columns and headers (the whole-validation-set loss when measured)."""
    if not sweep.final_eval:
        return COLUMNS, HEADERS
    at = COLUMNS.index("final_val_loss") + 1
    return ([*COLUMNS[:at], *FULL_EVAL_COLUMNS, *COLUMNS[at:]],
            [*HEADERS[:at], *FULL_EVAL_COLUMNS.values(), *HEADERS[at:]])
