"""``python -m train.perplexity RUN DATA``: a trained model's loss on every token of a token file.

The file is cut into consecutive windows of the model's context (the last one shorter), so each
token but the first is predicted exactly once; prints the mean loss (nats/token), the perplexity
and the bits per token. The token file must come from the run's tokenizer (its header is checked
against the run's recorded tokenizer when both are known).
"""

from __future__ import annotations

import argparse
import json
import math
import sys

import torch

from tritonlm.tokenizer.tokenfile import open_tokens
from tritonlm.util.cli import cli_main

from .config import TrainConfig
from .leaderboard.evaluate import evaluate_full
from .run_folder import find_tokenizer_dir, load_model, load_tokenizer


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m train.perplexity", description=__doc__.split("\n\n")[0])
    parser.add_argument("run", help="a run folder (holding checkpoint.pt) or a checkpoint file")
    parser.add_argument("data", help="token file (python -m tokenizer.encode) to score")
    parser.add_argument("--batch-size", type=int, default=32, help="windows per forward pass")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", help="cpu or cuda[:N]")
    parser.add_argument("--dtype", default="auto", choices=("auto", "bf16", "fp32"),
                        help="auto: bf16 autocast on CUDA, fp32 on the CPU")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    return parser


def check_same_tokenizer(run: str, data_tokenizer: dict | None) -> None:
    """Refuse a token file made by another tokenizer than the run's (when both are known)."""
    folder = find_tokenizer_dir(run)
    if folder is None or not data_tokenizer or not data_tokenizer.get("sha256"):
        return
    if load_tokenizer(folder).fingerprint != data_tokenizer["sha256"]:
        raise ValueError(f"the token file was made by another tokenizer than the run's ({folder}); encode the text "
                         f"with `python -m tokenizer.encode TEXT --tokenizer {folder} --out FILE`")


@cli_main
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be at least 1, got {args.batch_size}")
    model = load_model(args.run, args.device, "auto")
    tokens, info = open_tokens(args.data)
    if info.vocab_size > model.config.vocab_size:
        raise ValueError(f"{args.data} holds ids up to {info.vocab_size - 1}, beyond the model's vocabulary of "
                         f"{model.config.vocab_size}: it was not made for this model")
    check_same_tokenizer(args.run, info.tokenizer)
    if len(tokens) < 2:
        raise ValueError(f"{args.data} has {len(tokens)} token(s): nothing to predict")
    device = next(model.parameters()).device
    cfg = TrainConfig(model=model.config, dtype=args.dtype, device=device.type)
    result = evaluate_full(model, tokens, cfg, args.batch_size, device)
    loss = result["val_loss"]
    summary = {"loss": loss, "perplexity": math.exp(loss), "bits_per_token": loss / math.log(2),
               "tokens": result["val_tokens"], "data": str(args.data), "run": str(args.run)}
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(f"{args.data}: loss {loss:.4f} nats/token, perplexity {summary['perplexity']:.3f}, "
              f"{summary['bits_per_token']:.4f} bits/token over {summary['tokens']:,} predicted tokens")
    return 0


if __name__ == "__main__":
    sys.exit(main())
