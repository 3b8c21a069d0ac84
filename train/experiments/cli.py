"""``python -m train.experiments KIND``: the experiment series of the assignment, as resumable sweeps.

Kinds (each writes ``<out>/<kind>.png`` (overlay of validation curves) and ``<out>/<kind>.md``
(best val loss, tokens/s, diverged or not), plus one folder per run):

- ``lr-sweep``: max learning rates on a log grid that ends in a diverging run;
- ``batch-size``: batch sizes from 1 up to the memory limit (the accounting's largest batch that
  fits the GPU; on a CPU a sensible cap), same learning rate and budget; with ``--tokens N``
  the same number of tokens each instead, and with ``--lrs a,b,c`` every size at every rate (the
  table then names each size's best rate);
- ``ablations``: baseline vs no RMSNorm, post-norm (also with a 20% warm-up), no positional
  embedding (NoPE), and a SiLU FFN with d_ff = 4 d_model; with ``--steps``, also each ablation's gap to the baseline of the
  same seed along training (``gaps.md``/``.json``/``.png``, see ``train.experiments.gaps``);
- ``tokenizers``: bytes/token of several tokenizers on several corpora, throughput, and the
  time to encode 825 GB (the Pile) (see ``train.experiments.tokenizers``);
- ``bpe-scale``: a 10k BPE on all of Gutenberg train and a 32k BPE on Gutenberg + IMDB train:
  time, peak memory (``--profile``: and a profile), longest tokens, the two vocabularies compared
  (see ``train.experiments.bpe_scale``);
- ``encode-datasets``: the bpe-scale tokenizers encode the splits of their corpora into token
  files: tokens, throughput, dtype and file size (see ``train.experiments.encode_datasets``);
- ``sampling``: samples of a trained run (``--run``) over a temperature x top-p grid, with the
  share of real words and of repeated 4-grams (see ``train.experiments.sampling``);
- ``loss-split``: a trained run's validation loss split by how common each target token is in
  training and whether it already occurred in the window (``--runs RUN ...``; see
  ``train.experiments.loss_split``);
- ``unicode``, ``lr-toy`` and ``adamw-accounting``: the checks behind docs/writeup.md.

Every run trains a small model for ``--budget`` of training time (or ``--steps`` steps) on
``--train-data`` (generated
stories, a shared corpus name such as ``gutenberg``, or files) prepared exactly as the
leaderboard does, and is then measured on every token of the validation set (``--val-bytes``
sets its size). ``--seeds N`` runs every setting at N seeds; the table then gives each setting's
mean, spread and range. ``--key=value`` overrides any training field of every run; ``--name`` keeps
two sweeps of one kind apart (``--name ablations-lr3e-3``). A crashed or
diverged run is recorded and the sweep goes on; running the same command again resumes it.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
from pathlib import Path

from tritonlm.util.cli import (ConfigError, add_dataclass_arguments, apply_overrides, cli_main, flag_key,
                               overrides_from_namespace)
from tritonlm.train.config import TrainConfig
from tritonlm.train.recipes import recipe_config
from tritonlm.corpora.settings import DataSettings
from tritonlm.corpora.sources import source_pair
from tritonlm.train.data import padded_vocab_size
from tritonlm.train.leaderboard.data import prepare_data
from tritonlm.train.presentation import markdown_table, parse_duration
from tritonlm.util.atomic import write_json_atomic, write_text_atomic
from tritonlm.train.experiments.seeds import seed_groups, setting_of, with_seeds
from tritonlm.train.experiments.sweep import RunSpec, Sweep, run_sweep

SWEEP_KINDS = ("lr-sweep", "batch-size", "ablations")
DEFAULT_LRS = (1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 1.0, 10.0)
ABLATIONS = {
    "baseline": ("baseline (pre-norm, RoPE, SwiGLU)", {}),
    "no-rmsnorm": ("no RMSNorm", {"model.norm": "none"}),
    "post-norm": ("post-norm", {"model.norm": "post"}),
    # the same with four times the warm-up: how much of post-norm's gap is its need for a long
    # warm-up (Xiong et al., 2020), measured rather than assumed
    "post-norm-warmup": ("post-norm, 20% warm-up", {"model.norm": "post", "warmup_fraction": 0.2}),
    "nope": ("no positional embedding (NoPE)", {"model.positions": "none"}),
    "silu-ffn": ("SiLU FFN, d_ff = 4 d_model", {"model.ffn": "silu", "model.d_ff": None}),
}
CPU_MAX_BATCH = 128  # on a CPU the "memory limit" is time: batches beyond this see too few steps


def lr_sweep_runs(values: list[str] | None) -> list[RunSpec]:
    lrs = [float(v) for v in values] if values else list(DEFAULT_LRS)
    return [RunSpec(f"lr={lr:g}", f"max_lr {lr:g}", {"max_lr": lr, "min_lr": lr / 10}) for lr in lrs]


EVALS_PER_RUN = 12  # token-matched runs: evaluations spread over the run, whatever its steps


def batch_size_runs(values: list[str] | None, base: TrainConfig, tokens: int | None = None,
                    lrs: list[float] | None = None) -> list[RunSpec]:
    """One run per batch size, the same time budget each; or, with ``tokens``, the same number
    of tokens each (steps = tokens / (batch x context)), and with ``lrs`` every batch size at
    every learning rate, so each size can be compared at its own best rate."""
    sizes = [int(v) for v in values] if values else default_batch_sizes(base)
    # Periodic evaluation draws eval_iters batches of the run's batch size: keep the number of
    # evaluated sequences the same for every run (128), so small batches are not judged on noise.
    eval_sequences = base.batch_size * base.eval_iters
    runs = []
    for b in sizes:
        overrides = {"batch_size": b, "eval_iters": max(1, eval_sequences // b)}
        if tokens:
            steps = math.ceil(tokens / (b * base.model.context_length))
            overrides.update(max_iters=steps, budget_seconds=None, eval_interval=max(1, steps // EVALS_PER_RUN),
                             checkpoint_interval=max(50, steps // 4))
        for lr in lrs or [None]:
            if lr is None:
                runs.append(RunSpec(f"batch={b}", f"batch {b}", overrides))
            else:
                runs.append(RunSpec(f"batch={b},lr={lr:g}", f"batch {b}, lr {lr:g}",
                                    {**overrides, "max_lr": lr, "min_lr": lr / 10}))
    return runs


BEST_RATE_COLUMNS = ["batch", "max_lr", "mean", "std", "completed", "steps", "tokens_per_s"]
BEST_RATE_HEADERS = ["batch", "best max_lr", "val loss (mean over seeds)", "std", "seeds completed", "steps",
                     "tokens/s (median)"]


def best_rate_per_batch_size(results: list[dict]) -> list[dict]:
    """For each batch size, its setting (learning rate) with the lowest mean loss over the seeds
    that completed (``seed_groups``: the whole-set loss where measured), with its spread, steps
    and median throughput."""
    settings: dict[str, dict] = {}
    for r in results:
        settings.setdefault(setting_of(r), r["overrides"])
    best: dict[int, dict] = {}
    for row in seed_groups(results):
        if row["mean"] is None:
            continue
        overrides = settings[row["group"]]
        entry = {"batch": overrides["batch_size"], "max_lr": overrides["max_lr"],
                 **{k: row[k] for k in ("group", "mean", "std", "completed", "steps", "tokens_per_s")}}
        if entry["batch"] not in best or entry["mean"] < best[entry["batch"]]["mean"]:
            best[entry["batch"]] = entry
    return [best[b] for b in sorted(best)]


def write_best_rates(out_dir: Path, table_name: str, results: list[dict]) -> None:
    """The best rate per batch size: a key of the sweep's results.json, and a table after its own."""
    rows = best_rate_per_batch_size(results)
    summary_path = out_dir / "results.json"
    write_json_atomic(summary_path, {**json.loads(summary_path.read_text()), "best_per_batch": rows})
    table = out_dir / table_name
    write_text_atomic(table, table.read_text() + "\n### Best learning rate per batch size\n\n"
                      + markdown_table(rows, BEST_RATE_COLUMNS, BEST_RATE_HEADERS) + "\n")


def default_batch_sizes(base: TrainConfig) -> list[int]:
    """Powers of two from 1 to the memory limit (accounting estimate on a GPU; a cap on a CPU)."""
    import torch

    from tritonlm.model.accounting import max_batch_size

    if torch.cuda.is_available() and base.device != "cpu":
        total = torch.cuda.get_device_properties(0).total_memory
        limit = max_batch_size(base.model, int(total * 0.9), activation_bytes=2 if base.dtype != "fp32" else 4)
    else:
        limit = CPU_MAX_BATCH
    sizes, b = [], 1
    while b <= limit:
        sizes.append(b)
        b *= 4 if b < 16 else 2
    return sizes if sizes[-1] == limit else [*sizes, limit]


def ablation_runs(values: list[str] | None) -> list[RunSpec]:
    names = values or list(ABLATIONS)
    unknown = [n for n in names if n not in ABLATIONS]
    if unknown:
        raise SystemExit(f"unknown ablation(s) {unknown}; choose from {', '.join(ABLATIONS)}")
    return [RunSpec(n, ABLATIONS[n][0], ABLATIONS[n][1]) for n in names]


def build_sweep(kind: str, args: argparse.Namespace, base: TrainConfig) -> Sweep:
    values = [v for v in args.values.split(",") if v] if args.values else None
    lrs = [float(v) for v in args.lrs.split(",") if v] if args.lrs else None
    runs = {"lr-sweep": lambda: lr_sweep_runs(values),
            "batch-size": lambda: batch_size_runs(values, base, args.tokens, lrs),
            "ablations": lambda: ablation_runs(values)}[kind]()
    titles = {"lr-sweep": "Learning-rate sweep", "batch-size": "Batch-size sweep", "ablations": "Architecture ablations"}
    if base.budget_seconds:
        length = f"{base.budget_seconds:g} s of training each"
    elif kind == "batch-size" and args.tokens:
        length = f"{args.tokens:,} tokens each"
    else:
        length = f"{base.max_iters} steps each"
    seeds = f", {args.seeds} seeds" if args.seeds > 1 else ""
    title = f"{titles[kind]} ({args.train_data or 'stories'}, {length}{seeds})"
    name = args.name or kind
    return Sweep(title, Path(args.out) / name, base, with_seeds(runs, args.seeds, base.seed), plot_name=f"{name}.png",
                 table_name=f"{name}.md", x_axis="minutes" if base.budget_seconds else "tokens", final_eval=True)


def experiment_config(steps: int | None, budget_seconds: float | None) -> TrainConfig:
    """The ``experiment`` recipe for ``steps`` optimizer steps, or, with ``budget_seconds``, for
    that much training time instead (what the batch-size question asks about)."""
    length = {"max_iters": None, "budget_seconds": budget_seconds} if budget_seconds else {"max_iters": steps}
    return dataclasses.replace(recipe_config("experiment"), **length)


def prepare_base(args: argparse.Namespace, overrides: dict[str, str]) -> TrainConfig:
    """The shared config of a sweep: data prepared (cached) as the leaderboard does, overrides."""
    settings = DataSettings(vocab_size=args.vocab_size, tokenizer_train_bytes=args.tokenizer_bytes,
                            train_bytes=args.train_bytes, val_bytes=args.val_bytes,
                            story_train_bytes=args.train_bytes or 10_000_000, story_val_bytes=args.val_bytes or 300_000)
    data = prepare_data(args.train_data, args.val_data, settings)
    if args.tokens and (args.kind != "batch-size" or args.budget):
        raise ValueError("--tokens sets the length of batch-size runs; it cannot be combined with --budget "
                         "or used with another kind")
    budget = args.budget or ("40s" if args.kind == "batch-size" and not args.tokens else None)
    base = experiment_config(args.steps, parse_duration(budget) if budget else None)
    base = apply_overrides(base, {"train_data": str(data.train_tokens), "val_data": str(data.val_tokens),
                                  "model.vocab_size": padded_vocab_size(data.vocab_size)})
    return apply_overrides(base, overrides)


# TrainConfig fields a sweep sets itself, through its own flags (one flag per setting).
SWEEP_OWNED = ("train_data", "val_data", "tokenizer", "out_dir", "max_iters", "budget_seconds")
# A run's flag for one of them, or an old spelling, and the experiments' flag to use instead.
REPLACED_FLAGS = {"out_dir": "--out (and --name)", "max_iters": "--steps", "budget_seconds": "--budget",
                  "data": "--train-data"}


def refuse_run_flags(argv: list[str]) -> None:
    """A run's flag for a setting the sweep owns (``--max-iters``, ``--out-dir``, ...) is an error
    that names the experiments' flag for it."""
    for item in argv:
        if item.startswith("--") and flag_key(item) in REPLACED_FLAGS:
            raise ConfigError(f"{item.split('=', 1)[0]} is not a flag of the experiments: "
                              f"use {REPLACED_FLAGS[flag_key(item)]}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m train.experiments", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("kind", choices=[*SWEEP_KINDS, "tokenizers", "bpe-scale", "encode-datasets", "sampling", "loss-split",
                                         "unicode", "lr-toy", "adamw-accounting"])
    parser.add_argument("--train-data", default=None,
                        help="training data: stories (default), gutenberg, imdb, a text or token file")
    parser.add_argument("--val-data", default=None, help="validation data (default: the matching split)")
    parser.add_argument("--steps", type=int, default=150, help="optimizer steps per run (default 150)")
    parser.add_argument("--budget", default=None,
                        help="training time per run instead of --steps (default for batch-size: 40s)")
    parser.add_argument("--seeds", type=int, default=1,
                        help="sweeps: run every setting at N seeds (--seed and the next ones) and report mean and spread (default 1)")
    parser.add_argument("--values", default=None, help="comma-separated run values (learning rates, batch sizes, ablation names)")
    parser.add_argument("--out", default="runs/experiments", help="sweep folder (default runs/experiments)")
    parser.add_argument("--name", default=None,
                        help="name of the sweep's folder and files inside --out (default: the kind)")
    parser.add_argument("--tokens", type=int, default=None,
                        help="batch-size: the same number of tokens for every run instead of the same time")
    parser.add_argument("--lrs", default=None,
                        help="batch-size: comma-separated learning rates, each batch size at each of them")
    parser.add_argument("--profile", action="store_true", help="bpe-scale: also profile each case under cProfile")
    parser.add_argument("--run", default=None, help="sampling: the trained run folder (or checkpoint) to sample from")
    parser.add_argument("--tokenizer", default=None, help="sampling: tokenizer folder (default: found beside the run)")
    parser.add_argument("--compare", nargs="+", default=(), metavar="RUN",
                        help="sampling: other runs of the same corpus, sampled alike at one setting beside --run")
    parser.add_argument("--runs", nargs="+", default=(), metavar="RUN",
                        help="loss-split: trained run folders whose validation loss to split")
    parser.add_argument("--windows", type=int, default=256,
                        help="loss-split: validation windows (of the context length) per run (default 256)")
    parser.add_argument("--vocab-size", type=int, default=2048, help="BPE vocabulary for text data")
    parser.add_argument("--tokenizer-bytes", type=int, default=2_000_000, help="bytes the BPE trainer reads")
    parser.add_argument("--train-bytes", type=int, default=10_000_000,
                        help="use only the first bytes of the training text (default 10 MB; 0 = all)")
    parser.add_argument("--val-bytes", type=int, default=300_000, help="use only the first bytes of the validation text")
    # The data, the run folders and the length of every run are the experiments' own flags (one flag
    # per setting): --train-data/--val-data/--tokenizer, --out/--name, --steps/--budget.
    add_dataclass_arguments(parser, recipe_config("experiment"), "training options of every run (TrainConfig fields)",
                            exclude=SWEEP_OWNED)
    return parser


def sampling_main(args: argparse.Namespace) -> int:
    """The sampling experiment: words of the run's corpus (its validation text) are the reference."""
    from tritonlm.train.experiments.sampling import run as sampling_run

    if not args.run:
        raise ValueError("sampling needs --run RUN (a finished run folder, or its checkpoint.pt)")
    _, validation = source_pair(args.train_data, args.val_data, DataSettings(train_bytes=1_000_000, val_bytes=5_000_000))
    reference = validation.path()
    sampling_run(args.run, reference, Path(args.out) / (args.name or "sampling"), tokenizer=args.tokenizer,
                 compare=tuple(args.compare))
    return 0


@cli_main
def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    refuse_run_flags(argv or [])
    args = parser.parse_args(argv)
    if args.kind == "tokenizers":
        from tritonlm.train.experiments.tokenizers import main as tokenizers_main

        return tokenizers_main(args.out)
    if args.kind == "bpe-scale":
        from tritonlm.train.experiments.bpe_scale import run as bpe_scale_run

        bpe_scale_run(args.out, profile=args.profile)
        return 0
    if args.kind == "encode-datasets":
        from tritonlm.train.experiments.encode_datasets import run as encode_datasets_run

        encode_datasets_run(args.out)
        return 0
    if args.kind == "sampling":
        return sampling_main(args)
    if args.kind == "loss-split":
        from tritonlm.train.experiments.loss_split import run as loss_split_run

        loss_split_run(list(args.runs), Path(args.out) / (args.name or "loss-split"), windows=args.windows)
        return 0
    if args.kind in ("unicode", "lr-toy", "adamw-accounting"):
        from tritonlm.train.experiments.writeup_checks import main as checks_main

        return checks_main(args.kind)
    base = prepare_base(args, overrides_from_namespace(args))
    sweep = build_sweep(args.kind, args, base)
    results = run_sweep(sweep)
    if args.kind == "ablations" and not base.budget_seconds:  # equal steps: the gaps line up by tokens
        from tritonlm.train.experiments.gaps import write_gaps

        write_gaps(sweep.out_dir, {spec.name: sweep.run_dir(spec) for spec in sweep.runs}, results, base.seed,
                   sweep.title)
    if args.kind == "batch-size" and args.lrs:
        write_best_rates(sweep.out_dir, sweep.table_name, results)
    failed = sum(r["status"] != "completed" for r in results)
    print(f"{len(results)} runs, {failed} diverged or crashed; table and plot in {sweep.out_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
