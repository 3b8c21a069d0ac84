"""Text generation: KV-cached decoding with temperature and top-p (nucleus) sampling.

Python::

    from tritonlm.train.generate import generate
    new_ids = generate(model, prompt_ids, max_new_tokens=200, temperature=0.8, top_p=0.95,
                       eos_id=eot, generator=torch.Generator().manual_seed(0))

Command line::

    python -m train.generate RUN_DIR_OR_CHECKPOINT --prompt "Once upon a time" \\
        --temperature 0.8 --top-p 0.95 --max-new-tokens 200 --seed 0 [--tokenizer DIR | bytes]

Each new token costs one forward pass over one position (the keys and values of the earlier
positions come from the cache). The context is cropped to ``context_length``: once the sequence
fills it, every step conditions on exactly the last ``context_length`` tokens, as a full
recomputation on the cropped sequence would (the window is re-encoded, since RoPE positions
shift with it).
"""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

import torch

from tritonlm import kernels
from tritonlm.model import TransformerLM
from tritonlm.tokenizer import END_OF_TEXT, ByteTokenizer

from tritonlm.util.cli import cli_main

from .run_folder import load_model, load_tokenizer


# -------------------------------------------------------------------------------------- sampling
def top_p_filter(probs: torch.Tensor, top_p: float) -> torch.Tensor:
    """Keep the nucleus: the most likely tokens whose total probability first reaches ``top_p``
    (the most likely token always stays), renormalised; (..., vocab) -> (..., vocab)."""
    if not 0 < top_p <= 1:
        raise ValueError(f"top_p must be in (0, 1], got {top_p}")
    if top_p == 1:
        return probs
    sorted_probs, order = probs.sort(dim=-1, descending=True)
    mass_before = sorted_probs.cumsum(dim=-1) - sorted_probs  # probability of the more likely tokens
    sorted_probs = torch.where(mass_before < top_p, sorted_probs, torch.zeros_like(sorted_probs))
    kept = torch.zeros_like(probs).scatter(-1, order, sorted_probs)
    return kept / kept.sum(dim=-1, keepdim=True)


def next_token_distribution(logits: torch.Tensor, temperature: float, top_p: float,
                            softmax_backend: str = "torch") -> torch.Tensor:
    """Sampling probabilities (..., vocab) from logits: softmax(logits / temperature), nucleus."""
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0 to sample (use 0 for greedy decoding), got {temperature}")
    probs = kernels.softmax(logits.float() / temperature, dim=-1, backend=softmax_backend)
    return top_p_filter(probs, top_p)


def check_sampling(temperature: float, top_p: float) -> None:
    """Sampling settings, checked before any work (also for greedy decoding, which ignores top_p)."""
    if not temperature >= 0:
        raise ValueError(f"temperature must be >= 0 (0 = greedy decoding), got {temperature}")
    if not 0 < top_p <= 1:
        raise ValueError(f"top_p must be in (0, 1] (1 = off), got {top_p}")


def sample_next(logits: torch.Tensor, temperature: float = 1.0, top_p: float = 1.0,
                generator: torch.Generator | None = None, softmax_backend: str = "torch") -> torch.Tensor:
    """Next token ids (...,) from logits (..., vocab): greedy when ``temperature == 0``, else
    temperature + top-p sampling. Draws on the generator's device (the CPU without one), so a
    CPU generator gives the same text whatever device the model runs on."""
    check_sampling(temperature, top_p)
    if temperature == 0:
        return logits.argmax(dim=-1)
    draw_device = generator.device if generator is not None else torch.device("cpu")
    probs = next_token_distribution(logits, temperature, top_p, softmax_backend).to(draw_device)
    flat = probs.reshape(-1, probs.shape[-1])  # (rows, vocab)
    ids = torch.multinomial(flat, 1, generator=generator).reshape(probs.shape[:-1])
    return ids.to(logits.device)


# ------------------------------------------------------------------------------------- decoding
@torch.no_grad()
def generate(model: TransformerLM, prompt_ids: Sequence[int] | torch.Tensor, max_new_tokens: int,
             temperature: float = 1.0, top_p: float = 1.0, eos_id: int | None = None,
             generator: torch.Generator | None = None, vocab_limit: int | None = None) -> list[int]:
    """Continue ``prompt_ids`` by up to ``max_new_tokens`` tokens; return the new ids (without
    the prompt, and without ``eos_id``, at which generation stops).

    ``vocab_limit``: ids at or above it are never produced. A model's vocabulary is often padded
    (to a multiple of 64, for faster matmuls) past its tokenizer's; pass the tokenizer's size
    (``tokenizer_vocab_size``) so that no padding id, which the tokenizer cannot decode, is drawn.
    """
    check_sampling(temperature, top_p)
    tokens = [int(t) for t in (prompt_ids.tolist() if torch.is_tensor(prompt_ids) else prompt_ids)]
    if not tokens:
        raise ValueError("the prompt is empty: give at least one token (e.g. the <|endoftext|> id)")
    if max_new_tokens < 0:
        raise ValueError(f"max_new_tokens must be >= 0, got {max_new_tokens}")
    context = model.config.context_length
    device = model.lm_head.weight.device
    softmax_backend = model.kernel_plan.softmax
    vocab = model.config.vocab_size
    if vocab_limit is not None and not 0 < vocab_limit <= vocab:
        raise ValueError(f"vocab_limit must be in [1, {vocab}] (the model's vocabulary), got {vocab_limit}")
    if max(tokens) >= vocab or min(tokens) < 0:
        bad = max(tokens) if max(tokens) >= vocab else min(tokens)
        raise ValueError(f"prompt id {bad} is outside the model's vocabulary [0, {vocab}): is the tokenizer the "
                         "one the model was trained with?")
    cache = model.new_kv_cache(batch_size=1)
    new: list[int] = []
    logits = _encode_window(model, tokens[-context:], cache, device)
    for step in range(max_new_tokens):
        if vocab_limit is not None and vocab_limit < vocab:
            logits = logits.clone()
            logits[vocab_limit:] = float("-inf")  # padding ids: never drawn, never the argmax
        token = int(sample_next(logits, temperature, top_p, generator, softmax_backend))
        if token == eos_id:
            break
        tokens.append(token)
        new.append(token)
        if step + 1 == max_new_tokens:
            break
        if cache.length < context:
            logits = model(torch.tensor([[token]], device=device), kv_cache=cache)[0, -1]
        else:  # the window is full: slide it (positions restart at 0, as in a cropped recomputation)
            logits = _encode_window(model, tokens[-context:], cache, device)
    return new


def _encode_window(model: TransformerLM, window: list[int], cache, device) -> torch.Tensor:
    """Fill an emptied ``cache`` with ``window`` and return the logits of its last position."""
    cache.reset()
    return model(torch.tensor([window], device=device), kv_cache=cache)[0, -1]  # (vocab,)


# ------------------------------------------------------------------------------------ tokenizer
def tokenizer_vocab_size(tokenizer) -> int:
    """How many ids ``tokenizer`` can decode (256 for raw bytes)."""
    return 256 if isinstance(tokenizer, ByteTokenizer) else tokenizer.vocab_size



def eos_id_of(tokenizer) -> int | None:
    """The id of <|endoftext|> when the tokenizer has it as a single token."""
    if isinstance(tokenizer, ByteTokenizer):
        return None
    ids = tokenizer.encode(END_OF_TEXT)
    return ids[0] if len(ids) == 1 else None


# ------------------------------------------------------------------------------------------ CLI
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m train.generate", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("run", help="a run folder (holding checkpoint.pt) or a checkpoint file")
    parser.add_argument("--prompt", default="", help="text to continue (empty: start a new document)")
    parser.add_argument("--max-new-tokens", type=int, default=256, help="stop after this many tokens")
    parser.add_argument("--temperature", type=float, default=0.8, help="0 = greedy decoding")
    parser.add_argument("--top-p", type=float, default=0.95, help="nucleus mass, in (0, 1]; 1 = off")
    parser.add_argument("--seed", type=int, default=0, help="seed of the sampling generator")
    parser.add_argument("--num-samples", type=int, default=1, help="continuations to draw")
    parser.add_argument("--tokenizer", default=None, help="tokenizer folder, or 'bytes'; default: found beside the run")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", help="cpu or cuda[:N]")
    parser.add_argument("--kernels", default="auto", help="kernel backends for this machine (ModelConfig.kernels)")
    return parser


@cli_main
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    check_sampling(args.temperature, args.top_p)
    if args.max_new_tokens < 0 or args.num_samples < 1:
        raise ValueError(f"need --max-new-tokens >= 0 and --num-samples >= 1, got {args.max_new_tokens} "
                         f"and {args.num_samples}")
    model = load_model(args.run, args.device, args.kernels)
    tokenizer = load_tokenizer(args.tokenizer, args.run)
    eos = eos_id_of(tokenizer)
    prompt = tokenizer.encode(args.prompt) if args.prompt else ([eos] if eos is not None else [])
    if not prompt:
        raise ValueError("this tokenizer has no <|endoftext|> token to start from: give --prompt")
    limit = min(tokenizer_vocab_size(tokenizer), model.config.vocab_size)
    generator = torch.Generator().manual_seed(args.seed)
    for i in range(args.num_samples):
        new = generate(model, prompt, args.max_new_tokens, args.temperature, args.top_p, eos, generator,
                       vocab_limit=limit)
        stopped = ", stopped at " + END_OF_TEXT if len(new) < args.max_new_tokens else ""
        print(f"--- sample {i + 1} ({len(new)} new tokens{stopped})", args.prompt + tokenizer.decode(new), sep="\n",
              flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
