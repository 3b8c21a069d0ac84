"""Named model shapes, as functions returning a fresh ``ModelConfig`` (override with keywords).

The GPT-2 shapes are those of the CS336 assignment, built from this architecture (RoPE,
SwiGLU with d_ff = 4 d_model, untied embeddings, RMSNorm): gpt2_xl() has 2,127,057,600 parameters.
"""

from __future__ import annotations

from typing import Callable

from .config import ModelConfig


def tinystories(**overrides) -> ModelConfig:
    """The docs/architecture.md TinyStories baseline (about 22.7M parameters with untied embeddings)."""
    base = dict(vocab_size=10_000, context_length=256, d_model=512, d_ff=1344, num_layers=4,
                num_heads=16, rope_theta=10_000.0)
    return ModelConfig(**{**base, **overrides})


def _gpt2(d_model: int, num_layers: int, num_heads: int, overrides: dict) -> ModelConfig:
    base = dict(vocab_size=50_257, context_length=1024, d_model=d_model, d_ff=4 * d_model,
                num_layers=num_layers, num_heads=num_heads, rope_theta=10_000.0)
    return ModelConfig(**{**base, **overrides})


def gpt2_small(**overrides) -> ModelConfig:
    return _gpt2(768, 12, 12, overrides)


def gpt2_medium(**overrides) -> ModelConfig:
    return _gpt2(1024, 24, 16, overrides)


def gpt2_large(**overrides) -> ModelConfig:
    return _gpt2(1280, 36, 20, overrides)


def gpt2_xl(**overrides) -> ModelConfig:
    return _gpt2(1600, 48, 25, overrides)


def tiny(**overrides) -> ModelConfig:
    """A model small enough for unit tests and smoke runs (vocab 256 = raw bytes)."""
    base = dict(vocab_size=256, context_length=64, d_model=64, d_ff=None, num_layers=2, num_heads=4,
                rope_theta=10_000.0)
    return ModelConfig(**{**base, **overrides})


def micro(**overrides) -> ModelConfig:
    """The smallest meaningful model: odd vocabulary, 1 layer, 2 heads of dimension 8."""
    base = dict(vocab_size=97, context_length=16, d_model=16, d_ff=48, num_layers=1, num_heads=2,
                rope_theta=10_000.0)
    return ModelConfig(**{**base, **overrides})


def small_cpu(**overrides) -> ModelConfig:
    """The CPU recipes' model: 4 layers x 256 (8 heads) at context 128, vocab 2048 (about 3.2M
    parameters without embeddings): minutes of training on 2 cores see millions of tokens."""
    base = dict(vocab_size=2048, context_length=128, d_model=256, d_ff=None, num_layers=4, num_heads=8,
                rope_theta=10_000.0)
    return ModelConfig(**{**base, **overrides})


def experiment(**overrides) -> ModelConfig:
    """The experiments' model: 4 layers x 128 (4 heads) at context 64, vocab 2048: small enough that
    a sweep of a dozen runs takes minutes on a CPU."""
    base = dict(vocab_size=2048, context_length=64, d_model=128, d_ff=None, num_layers=4, num_heads=4,
                rope_theta=10_000.0)
    return ModelConfig(**{**base, **overrides})


PRESETS: dict[str, Callable[..., ModelConfig]] = {
    "tinystories": tinystories,
    "gpt2-small": gpt2_small,
    "gpt2-medium": gpt2_medium,
    "gpt2-large": gpt2_large,
    "gpt2-xl": gpt2_xl,
    "tiny": tiny,
    "micro": micro,
    "small-cpu": small_cpu,
    "experiment": experiment,
}


def preset(name: str, **overrides) -> ModelConfig:
    """Look a preset up by name ("gpt2-xl" and "gpt2_xl" both work)."""
    key = name.replace("_", "-")
    if key not in PRESETS:
        raise ValueError(f"unknown model preset {name!r}; choose one of {', '.join(PRESETS)}")
    return PRESETS[key](**overrides)
