"""The training recipes: one registry of functions returning a fresh ``TrainConfig`` (override
any field after). Model shapes come from ``model.presets``.

``python -m train.train --preset NAME --key=value ...`` starts from one of these, and
``python -m train.leaderboard --preset cpu|h100`` from ``cpu`` or ``h100`` (adding its data).
"""

from __future__ import annotations

from typing import Callable

from tritonlm.model.config import ModelConfig
from tritonlm.model.presets import gpt2_small

from .config import TrainConfig


def tiny() -> TrainConfig:
    """Seconds-long smoke run on the CPU (tests, demos): a 2-layer, 64-wide model."""
    return TrainConfig(
        model=ModelConfig(vocab_size=256, context_length=32, d_model=64, num_layers=2, num_heads=4, kernels="torch"),
        batch_size=8, max_iters=50, max_lr=3e-3, min_lr=3e-4, warmup_fraction=0.1,
        eval_interval=25, eval_iters=4, log_interval=5, checkpoint_interval=25,
        out_dir="runs/tiny", progress=False,
    )


def gutenberg_cpu() -> TrainConfig:
    """About ten minutes on a 2-core CPU: a 4-layer, 256-wide model on Gutenberg token files."""
    return TrainConfig(
        model=ModelConfig(vocab_size=4096, context_length=128, d_model=256, num_layers=4, num_heads=8),
        train_data="data/gutenberg_train.tok", val_data="data/gutenberg_valid.tok",
        out_dir="runs/gutenberg_cpu", batch_size=16, max_iters=None, budget_seconds=600,
        max_lr=2e-3, min_lr=2e-4, warmup_fraction=0.03, weight_decay=0.1,
        eval_interval=100, eval_iters=20, log_interval=10, checkpoint_interval=200,
    )


def tinystories() -> TrainConfig:
    """The docs/architecture.md TinyStories baseline: 4 layers, d_model 512, context 256, vocab 10k,
    327.7M tokens (batch 128 x 256 x 10,000 steps)."""
    return TrainConfig(
        model=ModelConfig(vocab_size=10_000, context_length=256, d_model=512, num_layers=4, num_heads=16, d_ff=1344),
        train_data="data/tinystories_train.tok", val_data="data/tinystories_valid.tok",
        out_dir="runs/tinystories", batch_size=128, max_iters=10_000, max_lr=3e-3, min_lr=3e-4,
        warmup_fraction=0.02, eval_interval=500, eval_iters=50, checkpoint_interval=2000,
    )


def cpu() -> TrainConfig:
    """The leaderboard's CPU recipe: the whole ``python -m train.leaderboard`` in about 7.5
    minutes on 2 CPU cores (7 of them training).

    A 4-layer, 256-wide model (~3.2M parameters without embeddings) at context 128 and 16
    sequences per step runs at 2-6k tokens/s on 2 (shared) cores, so 7 minutes see ~0.8-2.5M
    tokens: about one pass over the 8 MB generated corpus, enough to get far below the corpus's
    unigram entropy. The tokenizer (vocab 2048 on 2 MB) and the encoding take ~20 s, the final
    evaluation of the validation set and the samples ~30 s.
    """
    model = ModelConfig(vocab_size=2048, context_length=128, d_model=256, num_layers=4, num_heads=8,
                        kernels="torch")
    return TrainConfig(model=model, batch_size=16, max_iters=None, budget_seconds=420.0,
                       schedule="cosine", max_lr=2e-3, min_lr=2e-4, warmup_fraction=0.03,
                       weight_decay=0.1, eval_interval=50, eval_iters=8, log_interval=10,
                       checkpoint_interval=500, device="cpu", dtype="fp32", compile=False, progress=True)


def h100() -> TrainConfig:
    """The leaderboard recipe: 1.5 hours on one H100 (see docs/leaderboard.md for the sizing).

    12 layers x 768 (GPT-2 small shape; 85M non-embedding parameters, 109M with a tied 32k
    embedding) at context 1024, 128 sequences (131k tokens) per optimizer step. The accounting
    gives ~7.2e8 training FLOPs per token; at a realistic 40% MFU (~400 TFLOP/s bf16) that is
    ~550k tokens/s, ~3B tokens in 90 minutes: ~27 tokens per parameter, close to the
    compute-optimal ~20 (Chinchilla) for this budget. Improvements on by default, each a flag:
    weight tying, QK-norm, z-loss 1e-4, logit soft-capping at 30, warmup-stable-decay.
    ``python -m train.leaderboard --preset h100`` supplies the token files; with
    ``python -m train.train --preset h100`` give ``--train_data`` and ``--val_data``.
    """
    model = gpt2_small(vocab_size=32_000, d_ff=None, tie_embeddings=True, qk_norm=True, logit_softcap=30.0,
                       kernels="triton")
    return TrainConfig(model=model, batch_size=64, grad_accum_steps=2, max_iters=None, budget_seconds=5400.0,
                       schedule="wsd", max_lr=3e-3, min_lr=3e-5, warmup_fraction=0.02, decay_fraction=0.2,
                       weight_decay=0.1, z_loss=1e-4, eval_interval=500, eval_iters=40, log_interval=20,
                       checkpoint_interval=2000, device="cuda", dtype="bf16", compile=True, progress=True)


PRESETS: dict[str, Callable[[], TrainConfig]] = {
    "tiny": tiny, "gutenberg-cpu": gutenberg_cpu, "tinystories": tinystories, "cpu": cpu, "h100": h100,
}


def get_preset(name: str) -> TrainConfig:
    key = name.replace("_", "-")
    if key not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    return PRESETS[key]()
