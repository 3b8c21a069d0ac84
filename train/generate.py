"""Text generation: KV-cached decoding with temperature and top-p (nucleus) sampling.

Python::

    from tritonlm.train.generate import generate
    new_ids = generate(model, prompt_ids, max_new_tokens=200, temperature=0.8, top_p=0.95,
                       eos_id=eot, generator=torch.Generator().manual_seed(0))

Command line::

    python -m train.generate RUN_DIR_OR_CHECKPOINT --prompt "Once upon a time" \\
        --temperature 0.8 --top-p 0.95 [--top-k 50] --max-new-tokens 200 --seed 0 \\
        [--num-samples 4] [--stream] [--tokenizer DIR | bytes]

Several samples of one prompt are decoded together as one batch (``generate_samples``);
``--stream`` prints each token as it is drawn.

Each new token costs one forward pass over one position (the keys and values of the earlier
positions come from the cache). The context is cropped to ``context_length``: once the sequence
fills it, every step conditions on exactly the last ``context_length`` tokens, as a full
recomputation on the cropped sequence would (the window is re-encoded, since RoPE positions
shift with it).
"""

from __future__ import annotations

import argparse
import codecs
import sys
from typing import Callable, Sequence

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


def top_k_filter(probs: torch.Tensor, top_k: int) -> torch.Tensor:
    """Keep the ``top_k`` most likely tokens (0 = all), renormalised; (..., vocab) -> (..., vocab).
    Ties at the k-th probability are broken by ``torch.topk``."""
    if top_k < 0:
        raise ValueError(f"top_k must be >= 0 (0 = off), got {top_k}")
    if top_k == 0 or top_k >= probs.shape[-1]:
        return probs
    values, order = probs.topk(top_k, dim=-1)
    kept = torch.zeros_like(probs).scatter(-1, order, values)
    return kept / kept.sum(dim=-1, keepdim=True)


def next_token_distribution(logits: torch.Tensor, temperature: float, top_p: float,
                            softmax_backend: str = "torch", top_k: int = 0) -> torch.Tensor:
    """Sampling probabilities (..., vocab) from logits: softmax(logits / temperature), then the
    ``top_k`` most likely, then the nucleus of what is left."""
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0 to sample (use 0 for greedy decoding), got {temperature}")
    probs = kernels.softmax(logits.float() / temperature, dim=-1, backend=softmax_backend)
    return top_p_filter(top_k_filter(probs, top_k), top_p)


def check_sampling(temperature: float, top_p: float, top_k: int = 0) -> None:
    """Sampling settings, checked before any work (also for greedy decoding, which ignores them)."""
    if not temperature >= 0:
        raise ValueError(f"temperature must be >= 0 (0 = greedy decoding), got {temperature}")
    if not 0 < top_p <= 1:
        raise ValueError(f"top_p must be in (0, 1] (1 = off), got {top_p}")
    if not (isinstance(top_k, int) and top_k >= 0):
        raise ValueError(f"top_k must be an integer >= 0 (0 = off), got {top_k!r}")


def sample_next(logits: torch.Tensor, temperature: float = 1.0, top_p: float = 1.0,
                generator: torch.Generator | None = None, softmax_backend: str = "torch",
                top_k: int = 0) -> torch.Tensor:
    """Next token ids (...,) from logits (..., vocab): greedy when ``temperature == 0``, else
    temperature + top-k + top-p sampling. Draws on the generator's device (the CPU without one),
    so a CPU generator gives the same text whatever device the model runs on."""
    check_sampling(temperature, top_p, top_k)
    if temperature == 0:
        return logits.argmax(dim=-1)
    draw_device = generator.device if generator is not None else torch.device("cpu")
    probs = next_token_distribution(logits, temperature, top_p, softmax_backend, top_k).to(draw_device)
    flat = probs.reshape(-1, probs.shape[-1])  # (rows, vocab)
    ids = torch.multinomial(flat, 1, generator=generator).reshape(probs.shape[:-1])
    return ids.to(logits.device)


# ------------------------------------------------------------------------------------- decoding
@torch.no_grad()
def generate(model: TransformerLM, prompt_ids: Sequence[int] | torch.Tensor, max_new_tokens: int,
             temperature: float = 1.0, top_p: float = 1.0, eos_id: int | None = None,
             generator: torch.Generator | None = None, vocab_limit: int | None = None, *, top_k: int = 0,
             on_token: Callable[[int], None] | None = None) -> list[int]:
    """Continue ``prompt_ids`` by up to ``max_new_tokens`` tokens; return the new ids (without
    the prompt, and without ``eos_id``, at which generation stops). ``on_token`` is called with
    each new id as soon as it is drawn (streaming).

    ``vocab_limit``: ids at or above it are never produced. A model's vocabulary is often padded
    (to a multiple of 64, for faster matmuls) past its tokenizer's; pass the tokenizer's size
    (``tokenizer_vocab_size``) so that no padding id, which the tokenizer cannot decode, is drawn.
    """
    stream = (lambda row, token: on_token(token)) if on_token is not None else None
    return generate_samples(model, prompt_ids, 1, max_new_tokens, temperature, top_p, eos_id, generator,
                            vocab_limit, top_k=top_k, on_token=stream)[0]


@torch.no_grad()
def generate_samples(model: TransformerLM, prompt_ids: Sequence[int] | torch.Tensor, num_samples: int,
                     max_new_tokens: int, temperature: float = 1.0, top_p: float = 1.0, eos_id: int | None = None,
                     generator: torch.Generator | None = None, vocab_limit: int | None = None, *, top_k: int = 0,
                     on_token: Callable[[int, int], None] | None = None) -> list[list[int]]:
    """``num_samples`` continuations of one prompt, decoded together as one batch (one forward
    pass per new position for all of them); each stops at ``eos_id`` on its own. ``on_token`` is
    called with (sample index, new id). See ``generate`` for the other arguments."""
    check_sampling(temperature, top_p, top_k)
    tokens = [int(t) for t in (prompt_ids.tolist() if torch.is_tensor(prompt_ids) else prompt_ids)]
    _check_request(model, tokens, num_samples, max_new_tokens, vocab_limit)
    context, vocab = model.config.context_length, model.config.vocab_size
    device = model.lm_head.weight.device
    cache = model.new_kv_cache(batch_size=num_samples)
    rows = [list(tokens) for _ in range(num_samples)]  # every row has the same length
    new: list[list[int]] = [[] for _ in range(num_samples)]
    done = [False] * num_samples
    logits = _encode_window(model, [r[-context:] for r in rows], cache, device)  # (samples, vocab)
    for step in range(max_new_tokens):
        if vocab_limit is not None and vocab_limit < vocab:
            logits = logits.clone()
            logits[:, vocab_limit:] = float("-inf")  # padding ids: never drawn, never the argmax
        drawn = sample_next(logits, temperature, top_p, generator, model.kernel_plan.softmax, top_k).tolist()
        for i, token in enumerate(drawn):
            rows[i].append(token)  # a finished row keeps decoding (the batch stays rectangular), unread
            if done[i] or token == eos_id:
                done[i] = True
                continue
            new[i].append(token)
            if on_token is not None:
                on_token(i, token)
        if all(done) or step + 1 == max_new_tokens:
            break
        if cache.length < context:
            logits = model(torch.tensor([[r[-1]] for r in rows], device=device), kv_cache=cache)[:, -1]
        else:  # the window is full: slide it (positions restart at 0, as in a cropped recomputation)
            logits = _encode_window(model, [r[-context:] for r in rows], cache, device)
    return new


def _check_request(model: TransformerLM, tokens: list[int], num_samples: int, max_new_tokens: int,
                   vocab_limit: int | None) -> None:
    vocab = model.config.vocab_size
    if not tokens:
        raise ValueError("the prompt is empty: give at least one token (e.g. the <|endoftext|> id)")
    if max_new_tokens < 0 or num_samples < 1:
        raise ValueError(f"need max_new_tokens >= 0 and num_samples >= 1, got {max_new_tokens} and {num_samples}")
    if vocab_limit is not None and not 0 < vocab_limit <= vocab:
        raise ValueError(f"vocab_limit must be in [1, {vocab}] (the model's vocabulary), got {vocab_limit}")
    if max(tokens) >= vocab or min(tokens) < 0:
        bad = max(tokens) if max(tokens) >= vocab else min(tokens)
        raise ValueError(f"prompt id {bad} is outside the model's vocabulary [0, {vocab}): is the tokenizer the "
                         "one the model was trained with?")


def _encode_window(model: TransformerLM, windows: list[list[int]], cache, device) -> torch.Tensor:
    """Fill an emptied ``cache`` with ``windows`` (samples, T) and return each one's last logits."""
    cache.reset()
    return model(torch.tensor(windows, device=device), kv_cache=cache)[:, -1]  # (samples, vocab)


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
    parser.add_argument("--top-k", type=int, default=0, help="sample among the k most likely tokens; 0 = off")
    parser.add_argument("--stream", action="store_true", help="print each token as it is drawn (samples one by one)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the sampling generator")
    parser.add_argument("--num-samples", type=int, default=1, help="continuations to draw")
    parser.add_argument("--tokenizer", default=None, help="tokenizer folder, or 'bytes'; default: found beside the run")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", help="cpu or cuda[:N]")
    parser.add_argument("--kernels", default="auto", help="kernel backends for this machine (ModelConfig.kernels)")
    return parser


@cli_main
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    check_sampling(args.temperature, args.top_p, args.top_k)
    if args.max_new_tokens < 0 or args.num_samples < 1:
        raise ValueError(f"need --max-new-tokens >= 0 and --num-samples >= 1, got {args.max_new_tokens} "
                         f"and {args.num_samples}")
    model = load_model(args.run, args.device, args.kernels)
    tokenizer = load_tokenizer(args.tokenizer, args.run)
    eos = eos_id_of(tokenizer)
    prompt = tokenizer.encode(args.prompt) if args.prompt else ([eos] if eos is not None else [])
    if not prompt:
        raise ValueError("this tokenizer has no <|endoftext|> token to start from: give --prompt")
    settings = dict(temperature=args.temperature, top_p=args.top_p, eos_id=eos,
                    generator=torch.Generator().manual_seed(args.seed),
                    vocab_limit=min(tokenizer_vocab_size(tokenizer), model.config.vocab_size), top_k=args.top_k)

    def header(i: int, new: list[int]) -> str:
        stopped = ", stopped at " + END_OF_TEXT if len(new) < args.max_new_tokens else ""
        return f"--- sample {i + 1} ({len(new)} new tokens{stopped})"

    if args.stream:  # one sample after another, each printed as it grows
        for i in range(args.num_samples):
            print(f"--- sample {i + 1}", args.prompt, sep="\n", end="", flush=True)
            text = StreamingText(tokenizer)
            new = generate(model, prompt, args.max_new_tokens, **settings, on_token=text.add)
            print(text.finish(), f"\n{header(i, new)[4:]}", sep="", flush=True)
        return 0
    samples = generate_samples(model, prompt, args.num_samples, args.max_new_tokens, **settings)
    for i, new in enumerate(samples):
        print(header(i, new), args.prompt + tokenizer.decode(new), sep="\n", flush=True)
    return 0


class StreamingText:
    """Prints the text of token ids as they arrive; a character split across tokens is printed
    once its last byte has come (an incremental UTF-8 decoder holds the partial bytes)."""

    def __init__(self, tokenizer, out=None):
        self.tokenizer, self.out = tokenizer, out or sys.stdout
        self.decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def add(self, token: int) -> None:
        self.out.write(self.decoder.decode(self.tokenizer.decode_bytes([token])))
        self.out.flush()

    def finish(self) -> str:
        """What the decoder still holds (an unfinished character becomes U+FFFD)."""
        return self.decoder.decode(b"", final=True)


if __name__ == "__main__":
    sys.exit(main())
