"""Stage 7 of the pipeline: the run's tokenizer copied beside it, and samples from the model."""

from __future__ import annotations

from pathlib import Path

import torch

from tritonlm.model import TransformerLM
from tritonlm.tokenizer import ByteTokenizer
from tritonlm.train.generate import eos_id_of, generate, tokenizer_vocab_size
from tritonlm.train.run_folder import load_tokenizer
from tritonlm.train.run_start import copy_tokenizer

from .data import PreparedData
from .options import Job, LeaderboardConfig

STORY_PROMPTS = ["Once upon a time,", "One day, Lily went to the", '"Look!" said Tom.', ""]
GENERIC_PROMPTS = ["", "The ", "It was a ", "I think that "]


def sample_prompts(job: Job) -> list[str]:
    stories = job.train_data in (None, "stories")
    return (STORY_PROMPTS if stories else GENERIC_PROMPTS)[: job.options.num_samples] if job.options.num_samples else []


def run_tokenizer(data: PreparedData, out_dir: Path):
    """The tokenizer of the run, copied into ``out_dir/tokenizer`` so the folder stands alone;
    raw bytes for byte-level token files; None when token files came without a tokenizer."""
    if data.tokenizer_dir is not None:
        return load_tokenizer(copy_tokenizer(data.tokenizer_dir, out_dir))
    return ByteTokenizer() if data.vocab_size == 256 else None


def draw_samples(model: TransformerLM, tokenizer, prompts: list[str], options: LeaderboardConfig,
                 device: torch.device) -> list[dict]:
    """Continuations of ``prompts`` (an empty prompt starts a new document) by nucleus sampling;
    only ids the tokenizer has are drawn (the model's vocabulary is padded past it)."""
    if tokenizer is None:
        return []
    eos = eos_id_of(tokenizer)
    limit = min(tokenizer_vocab_size(tokenizer), model.config.vocab_size)
    generator = torch.Generator(device=device).manual_seed(0)
    samples = []
    for prompt in prompts:
        ids = tokenizer.encode(prompt) if prompt else [eos if eos is not None else tokenizer.encode("\n")[0]]
        new = generate(model, ids, options.sample_tokens, options.temperature, options.top_p, eos, generator,
                       vocab_limit=limit)
        samples.append({"prompt": prompt, "text": (prompt + tokenizer.decode(new)).strip(), "new_tokens": len(new),
                        "temperature": options.temperature, "top_p": options.top_p})
    return samples
