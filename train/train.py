"""``python -m train.train --preset NAME --key=value ...``: train a model from the command line.

Every ``TrainConfig`` field is a flag (``--batch_size=64``, ``--model.d_model=256``,
``--betas=0.9,0.95``, ``--resume``); ``--help`` lists them with their defaults. Data-parallel:
``torchrun --nproc_per_node=N -m train.train ...``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from tritonlm.util.cli import ConfigError, cli_main, add_dataclass_arguments, apply_overrides, overrides_from_namespace, parse_overrides
from .config import TrainConfig
from .loop import run_training
from .recipes import RECIPES, recipe_config


def build_parser(base: TrainConfig) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m train.train", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter, allow_abbrev=False)
    parser.add_argument("--preset", default="tiny", help=f"starting config: {', '.join(RECIPES)} (default: tiny)")
    parser.add_argument("--print-config", action="store_true", help="print the resolved config as JSON and exit")
    parser.add_argument("--kernels", default=None,
                        help="kernel backends, shorthand for --model.kernels: auto, torch, triton, 'triton,attention=torch'")
    add_dataclass_arguments(parser, base)
    return parser


def config_from_args(argv: list[str]) -> tuple[TrainConfig, argparse.Namespace]:
    """Resolve ``--preset`` first (it decides the defaults), then apply the field overrides."""
    pre = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    pre.add_argument("--preset", default="tiny")
    known, _ = pre.parse_known_args(argv)
    try:
        base = recipe_config(known.preset)
    except ValueError as e:
        build_parser(TrainConfig()).error(str(e))
    parser = build_parser(base)
    args, rest = parser.parse_known_args(argv)
    try:
        shorthand = {"model.kernels": args.kernels} if args.kernels else {}
        overrides = {**shorthand, **overrides_from_namespace(args), **parse_overrides(rest, base)}
        return apply_overrides(base, overrides), args
    except ConfigError as e:
        parser.error(str(e))


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
