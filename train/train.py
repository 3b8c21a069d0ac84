"""``python -m train.train --preset NAME --key=value ...``: train a model from the command line.

Every ``TrainConfig`` field is a flag (``--batch_size=64``, ``--model.d_model=256``,
``--betas=0.9,0.95``, ``--resume``); ``--help`` lists them with their defaults. The model's
vocabulary comes from the training file unless ``--model.vocab_size`` is given, and the run folder
records the tokenizer the file names. ``--resume --out_dir=RUN`` alone continues a run with its
saved configuration (other flags given with it are overrides; the model cannot change).
Data-parallel: ``torchrun --nproc_per_node=N -m train.train ...``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from tritonlm.tokenizer.tokenfile import read_token_header
from tritonlm.util.cli import (ConfigError, add_dataclass_arguments, apply_overrides, cli_main, convert_value,
                               overrides_from_namespace, parse_overrides)
from tritonlm.util.config_file import read_config_file

from .config import TrainConfig
from .data import padded_vocab_size
from .loop import run_training
from .recipes import RECIPES, recipe_config
from .run_folder import RunFolder


def build_parser(base: TrainConfig) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m train.train", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter, allow_abbrev=False)
    parser.add_argument("--preset", default="tiny", help=f"starting config: {', '.join(RECIPES)} (default: tiny)")
    parser.add_argument("--config", default=None, help="TOML file of settings (keys as the flags; [model] table); "
                                                       "flags given too override it. Every run writes RUN/config.toml")
    parser.add_argument("--print-config", action="store_true", help="print the resolved config as JSON and exit")
    parser.add_argument("--kernels", default=None,
                        help="kernel backends, shorthand for --model.kernels: auto, torch, triton, 'triton,attention=torch'")
    add_dataclass_arguments(parser, base)
    return parser


def config_from_args(argv: list[str]) -> tuple[TrainConfig, argparse.Namespace]:
    """Resolve the starting config first (``--preset``, or on ``--resume`` without a preset the
    run's own ``config.json``), then apply the field overrides; without ``--model.vocab_size``
    a new run takes its vocabulary from the training file."""
    pre = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    pre.add_argument("--preset", default=None)
    known, _ = pre.parse_known_args(argv)
    try:
        base = recipe_config(known.preset or "tiny")
    except ValueError as e:
        build_parser(TrainConfig()).error(str(e))
    parser = build_parser(base)
    args, rest = parser.parse_known_args(argv)
    try:
        from_file = read_config_file(args.config, base) if args.config else {}
        shorthand = {"model.kernels": args.kernels} if args.kernels else {}
        overrides = {**from_file, **shorthand, **overrides_from_namespace(args), **parse_overrides(rest, base)}
        saved = saved_run_config(overrides) if known.preset is None else None
        if saved is not None:
            return resumed_config(saved, overrides), args
        cfg = apply_overrides(base, overrides)
    except ConfigError as e:
        parser.error(str(e))
    return (cfg if "model.vocab_size" in overrides or cfg.resume else vocab_from_data(cfg)), args


def saved_run_config(overrides: dict[str, str]) -> TrainConfig | None:
    """The configuration a ``--resume`` continues: ``config.json`` of the run in ``--out_dir``
    (None when not resuming, or when there is none: the resume then fails naming the folder)."""
    if convert_value(overrides.get("resume", "false"), bool, "resume") is not True or "out_dir" not in overrides:
        return None
    try:
        saved = RunFolder(overrides["out_dir"]).saved_config()
    except ValueError as e:  # a damaged config.json: a flag error that names it, not a traceback
        raise ConfigError(str(e)) from e
    return None if saved is None else TrainConfig.from_dict(saved)


def resumed_config(saved: TrainConfig, overrides: dict[str, str]) -> TrainConfig:
    """The saved config with the flags given beside ``--resume``; the model is the checkpoint's, so
    a flag that changes its shape is refused (``model.kernels`` only picks the backends)."""
    fixed = sorted(k for k in overrides if k.startswith("model.") and k != "model.kernels")
    if fixed:
        raise ConfigError(f"--{fixed[0]} cannot change on --resume: the run's checkpoint fixes its model; "
                          "start a new run in another --out_dir to change it")
    cfg = apply_overrides(saved, overrides)
    given = ", ".join(f"{k}={v}" for k, v in overrides.items() if k not in ("resume", "out_dir")) or "none"
    print(f"resuming {cfg.out_dir} with its saved configuration (config.json); flags given: {given}", file=sys.stderr)
    return cfg


def vocab_from_data(cfg: TrainConfig) -> TrainConfig:
    """``cfg`` with the vocabulary of its training file (padded to a multiple of 64), said aloud."""
    if not cfg.train_data or not Path(cfg.train_data).is_file():
        return cfg  # the run reports the missing file
    data_vocab = read_token_header(cfg.train_data).vocab_size
    vocab = padded_vocab_size(data_vocab)
    if vocab != cfg.model.vocab_size:
        print(f"model.vocab_size = {vocab}: the vocabulary of {cfg.train_data} ({data_vocab})"
              + (" padded to a multiple of 64" if vocab != data_vocab else "")
              + "; pass --model.vocab_size to choose another", file=sys.stderr)
    return apply_overrides(cfg, {"model.vocab_size": vocab})


@cli_main
def main(argv: list[str] | None = None) -> int:
    cfg, args = config_from_args(sys.argv[1:] if argv is None else argv)
    if args.print_config:
        print(json.dumps(cfg.to_dict(), indent=2))
        return 0
    summary = run_training(cfg)
    if os.environ.get("RANK", "0") != "0":
        return 0  # under torchrun, rank 0 reports
    if summary["status"] == "interrupted":
        print(f"interrupted at step {summary['steps']}; checkpoint {summary['checkpoint']}; continue with --resume")
    else:
        val = summary["final_val_loss"]
        print(f"done: {summary['steps']} steps, {summary['tokens']:,} tokens, "
              f"{summary['tokens_per_s']:,.0f} tokens/s, final val loss {val if val is None else round(val, 4)}; "
              f"run folder {cfg.out_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
