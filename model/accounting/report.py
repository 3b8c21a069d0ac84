"""``python -m model.accounting``: parameter, FLOP and training-memory tables for model shapes.

Examples::

    python -m model.accounting                              # GPT-2 small, medium, large, XL
    python -m model.accounting --preset gpt2-xl --context 16384
    python -m model.accounting --preset tinystories --batch 64 --memory-gb 24
    python -m model.accounting --preset tiny --d_model 128 --num_layers 3 --ffn silu

Every ``ModelConfig`` field is a flag (``--d_model``/``--d-model``, ``--tie_embeddings true``...)
that overrides the preset(s).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from tritonlm.util.atomic import write_json_atomic
from tritonlm.util.cli import add_dataclass_arguments, apply_overrides, cli_main, overrides_from_namespace

from . import GIB, count_parameters, forward_flops, max_batch_size, parameter_counts, training_memory
from ..config import ModelConfig
from ..presets import PRESETS, preset

DEFAULT_PRESETS = ("gpt2-small", "gpt2-medium", "gpt2-large", "gpt2-xl")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m model.accounting",
        description="Parameters, forward FLOPs per matmul group and AdamW training memory of TransformerLM shapes.",
    )
    parser.add_argument("--preset", action="append", choices=sorted(PRESETS),
                        help=f"model shape (repeatable; default: {', '.join(DEFAULT_PRESETS)})")
    parser.add_argument("--context", type=int, help="sequence length (sets context_length)")
    parser.add_argument("--batch", type=int, default=1, help="sequences per step for the memory table (default 1)")
    parser.add_argument("--memory-gb", type=float, default=80.0,
                        help="accelerator memory for the largest-batch estimate, in GiB (default 80)")
    parser.add_argument("--param-bytes", type=int, default=4, help="bytes per parameter and gradient (default 4)")
    parser.add_argument("--activation-bytes", type=int, default=4,
                        help="bytes per saved activation: 4 float32, 2 bf16 autocast (default 4)")
    parser.add_argument("--json", type=Path, help="also write every figure to this JSON file")
    add_dataclass_arguments(parser, ModelConfig(), "model fields (override the preset)")
    return parser


def check_accounting_args(args: argparse.Namespace) -> None:
    """The sizes must be positive: a zero batch or a negative memory gives meaningless tables."""
    for flag, value in (("--batch", args.batch), ("--memory-gb", args.memory_gb), ("--param-bytes", args.param_bytes),
                        ("--activation-bytes", args.activation_bytes), ("--context", args.context)):
        if value is not None and not value > 0:
            raise ValueError(f"{flag} must be positive, got {value}")
    if args.json is not None:
        if args.json.is_dir():
            raise ValueError(f"--json {args.json} is a folder; give a file path")
        parent = next((p for p in args.json.parents if p.exists()), None)
        if parent is not None and not parent.is_dir():
            raise ValueError(f"--json {args.json}: {parent} is a file, not a folder; give a path inside a folder")


def configs_from_args(args: argparse.Namespace) -> dict[str, ModelConfig]:
    overrides = overrides_from_namespace(args)
    if args.context is not None:
        overrides["context_length"] = str(args.context)
    return {name: apply_overrides(preset(name), overrides) for name in (args.preset or DEFAULT_PRESETS)}


# ---------------------------------------------------------------------------------- formatting
def table(title: str, header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    line = lambda cells: "  ".join(str(c).ljust(w) if i == 0 else str(c).rjust(w)  # noqa: E731
                                   for i, (c, w) in enumerate(zip(cells, widths)))
    rule = "-" * len(line(header))
    return "\n".join([title, rule, line(header), rule, *(line(r) for r in rows), rule])


def share_rows(groups: dict[str, int], fmt) -> list[list[str]]:
    total = sum(groups.values())
    rows = [[name, fmt(value), f"{100 * value / total:.1f}%"] for name, value in groups.items() if value]
    return rows + [["total", fmt(total), "100.0%"]]


# -------------------------------------------------------------------------------------- report
def report(name: str, cfg: ModelConfig, args: argparse.Namespace) -> tuple[str, dict]:
    params = parameter_counts(cfg)
    flops = forward_flops(cfg)
    memory = training_memory(cfg, args.batch, None, args.param_bytes, args.activation_bytes)
    memory_bytes = int(args.memory_gb * GIB)
    fits = max_batch_size(cfg, memory_bytes, None, args.param_bytes, args.activation_bytes)
    shape = (f"{name}: vocab {cfg.vocab_size}, context {cfg.context_length}, d_model {cfg.d_model}, "
             f"{cfg.num_layers} layers, {cfg.num_heads} heads, d_ff {cfg.d_ff}, ffn {cfg.ffn}, norm {cfg.norm}, "
             f"tied {cfg.tie_embeddings}")
    mem_groups = {"parameters": memory.parameters, "gradients": memory.gradients,
                  "AdamW moments (m, v; float32)": memory.optimizer_state,
                  **{f"activations: {k}": v for k, v in memory.activations.items()}}
    gib = lambda b: f"{b / GIB:.3f} GiB"  # noqa: E731
    text = "\n\n".join([
        "=" * len(shape) + "\n" + shape + "\n" + "=" * len(shape),
        table("Parameters", ["group", "parameters", "share"], share_rows(params, lambda n: f"{n:,}")),
        table(f"Forward FLOPs, one sequence of {cfg.context_length} tokens (training step = 3x forward)",
              ["matmul group", "FLOPs", "share"], share_rows(flops, lambda n: f"{n:.3e}")),
        table(f"Training memory, batch {args.batch} x {cfg.context_length} tokens, "
              f"{args.param_bytes}-byte params, {args.activation_bytes}-byte activations",
              ["component", "memory", "share"], share_rows(mem_groups, gib)),
        f"Largest batch that fits in {args.memory_gb:g} GiB: {fits} sequence(s) of {cfg.context_length} tokens"
        + ("" if fits else " (parameters, gradients and AdamW state alone do not fit)"),
    ])
    figures = {"config": cfg.to_dict(), "parameters": params, "total_parameters": count_parameters(cfg),
               "forward_flops": flops, "total_forward_flops": sum(flops.values()),
               "memory_bytes": mem_groups, "total_memory_bytes": memory.total,
               "batch": args.batch, "memory_gb": args.memory_gb, "max_batch_size": fits}
    return text, figures


def summary(configs: dict[str, ModelConfig]) -> str:
    rows = []
    for name, cfg in configs.items():
        flops = forward_flops(cfg)
        total = sum(flops.values())
        attn = flops["attention scores Q K^T"] + flops["attention values P V"]
        rows.append([name, f"{count_parameters(cfg):,}", f"{total:.3e}", f"{100 * attn / total:.1f}%",
                     f"{100 * flops['lm_head'] / total:.1f}%"])
    return table("Summary (forward FLOPs per sequence)",
                 ["model", "parameters", "forward FLOPs", "attn T^2 share", "lm_head share"], rows)


@cli_main
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    check_accounting_args(args)
    configs = configs_from_args(args)
    results = {}
    for name, cfg in configs.items():
        text, results[name] = report(name, cfg, args)
        print(text, end="\n\n")
    if len(configs) > 1:
        print(summary(configs))
    if args.json:
        write_json_atomic(args.json, results)
    return 0
