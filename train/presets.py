"""Training presets, as functions returning a fresh ``TrainConfig`` (override any field after).

``python -m train.train --preset NAME --key=value ...`` starts from one of these.
"""

from __future__ import annotations

from typing import Callable

from model.config import ModelConfig

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
    """The DESIGN.md TinyStories baseline: 4 layers, d_model 512, context 256, vocab 10k,
    327.7M tokens (batch 128 x 256 x 10,000 steps)."""
    return TrainConfig(
        model=ModelConfig(vocab_size=10_000, context_length=256, d_model=512, num_layers=4, num_heads=16, d_ff=1344),
        train_data="data/tinystories_train.tok", val_data="data/tinystories_valid.tok",
        out_dir="runs/tinystories", batch_size=128, max_iters=10_000, max_lr=3e-3, min_lr=3e-4,
        warmup_fraction=0.02, eval_interval=500, eval_iters=50, checkpoint_interval=2000,
    )


def owt_h100() -> TrainConfig:
    """A 1.5-hour single-H100 OpenWebText run (GPT-2 vocabulary, 12 x 768 model, WSD schedule)."""
    return TrainConfig(
        model=ModelConfig(vocab_size=50_257, context_length=1024, d_model=768, num_layers=12, num_heads=12,
                          tie_embeddings=True, qk_norm=True),
        train_data="data/owt_train.tok", val_data="data/owt_valid.tok", out_dir="runs/owt_h100",
        batch_size=32, grad_accum_steps=4, max_iters=None, budget_seconds=5400, schedule="wsd",
        max_lr=3e-3, min_lr=3e-5, warmup_fraction=0.02, decay_fraction=0.2, z_loss=1e-4,
        eval_interval=500, eval_iters=40, checkpoint_interval=1000,
    )


PRESETS: dict[str, Callable[[], TrainConfig]] = {
    "tiny": tiny, "gutenberg-cpu": gutenberg_cpu, "tinystories": tinystories, "owt-h100": owt_h100,
}


def get_preset(name: str) -> TrainConfig:
    key = name.replace("_", "-")
    if key not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    return PRESETS[key]()
