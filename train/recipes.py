"""The recipes: one registry of named, typed training setups, read alike by ``python -m
train.train --preset NAME``, ``python -m train.leaderboard --preset NAME`` and the experiments.

A ``Recipe`` is data: its name, what it is for, its ``TrainConfig`` (whose model shape comes from
``model.presets``) and, for a recipe the leaderboard offers, its ``LeaderboardConfig``. A new
recipe is one entry of ``RECIPES``. On the command line a recipe is still called a preset
(``--preset``), so its errors say so.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass

from tritonlm.corpora.settings import DataSettings, check_sizes
from tritonlm.model import presets as shapes

from .config import TrainConfig


@dataclass(frozen=True)
class LeaderboardConfig(DataSettings):
    """The leaderboard's own options (everything else is a ``TrainConfig`` field): the data
    settings of ``corpora.DataSettings`` (its fields come first, as flags of the same names), then
    the final evaluation and the samples."""

    eval_batch_size: int = 32  # sequences per forward pass of the final evaluation
    num_samples: int = 4  # generated samples in the report
    sample_tokens: int = 160  # maximum new tokens per sample
    temperature: float = 0.8
    top_p: float = 0.95

    def __post_init__(self) -> None:
        super().__post_init__()
        check_sizes(self, non_negative=("num_samples",), positive=("eval_batch_size", "sample_tokens"))
        if not (self.temperature > 0 and 0 < self.top_p <= 1):
            raise ValueError("need temperature > 0 and 0 < top_p <= 1")


@dataclass(frozen=True)
class Recipe:
    """A named training setup: ``train_config()`` gives a fresh copy of its ``TrainConfig`` to
    override; ``leaderboard`` is None for a recipe the leaderboard does not offer."""

    name: str
    description: str
    train: TrainConfig
    leaderboard: LeaderboardConfig | None = None

    def __post_init__(self) -> None:
        if not self.name or self.name != self.name.lower() or "_" in self.name or " " in self.name:
            raise ValueError(f"a recipe's name is lower-case words joined by '-', got {self.name!r}")
        if not self.description:
            raise ValueError(f"recipe {self.name!r} needs a description")

    def train_config(self) -> TrainConfig:
        """A copy of the recipe's training config, free to change."""
        return copy.deepcopy(self.train)


TINY = Recipe("tiny", "seconds-long smoke run on the CPU (tests, demos): a 2-layer, 64-wide model", TrainConfig(
    model=shapes.tiny(context_length=32, kernels="torch"),
    batch_size=8, max_iters=50, max_lr=3e-3, min_lr=3e-4, warmup_fraction=0.1,
    eval_interval=25, eval_iters=4, log_interval=5, checkpoint_interval=25,
    out_dir="runs/tiny", progress=False,
))

GUTENBERG_CPU = Recipe(
    "gutenberg-cpu", "about ten minutes on a 2-core CPU: a 4-layer, 256-wide model on Gutenberg token files",
    TrainConfig(
        model=shapes.small_cpu(vocab_size=4096, kernels="auto"),
        train_data="data/gutenberg_train.tok", val_data="data/gutenberg_valid.tok",
        out_dir="runs/gutenberg_cpu", batch_size=16, max_iters=None, budget_seconds=600,
        max_lr=2e-3, min_lr=2e-4, warmup_fraction=0.03, weight_decay=0.1,
        eval_interval=100, eval_iters=20, log_interval=10, checkpoint_interval=200,
    ))

TINYSTORIES = Recipe(
    "tinystories", "the docs/architecture.md TinyStories baseline: 4 layers, d_model 512, context 256, vocab "
    "10k, 327.7M tokens (batch 128 x 256 x 10,000 steps)",
    TrainConfig(
        model=shapes.tinystories(kernels="auto"),
        train_data="data/tinystories_train.tok", val_data="data/tinystories_valid.tok",
        out_dir="runs/tinystories", batch_size=128, max_iters=10_000, max_lr=3e-3, min_lr=3e-4,
        warmup_fraction=0.02, eval_interval=500, eval_iters=50, checkpoint_interval=2000,
    ))

# The plain CPU recipe, the speedrun's baseline: AdamW, cosine, float32, eager, 16 sequences of 128
# tokens per step on the `small_cpu` model (~3.2M parameters without embeddings). It was the
# leaderboard's CPU recipe until the sweep (`python -m train.leaderboard.sweep`) chose `cpu`.
CPU_PLAIN = Recipe(
    "cpu-plain", "the plain CPU recipe (AdamW, cosine, fp32, eager, batch 16): the speedrun's baseline",
    TrainConfig(model=shapes.small_cpu(kernels="torch"), batch_size=16, max_iters=None, budget_seconds=420.0,
                schedule="cosine", max_lr=2e-3, min_lr=2e-4, warmup_fraction=0.03,
                weight_decay=0.1, eval_interval=50, eval_iters=8, log_interval=10,
                checkpoint_interval=500, device="cpu", dtype="fp32", compile=False, progress=True),
    LeaderboardConfig(train_bytes=20_000_000, val_bytes=500_000),
)

# The whole `python -m train.leaderboard` in about 8 minutes on 2 CPU cores (7 of them training):
# the `small_cpu` model at context 128 with the levers the sweep (`python -m train.leaderboard.sweep`,
# docs/results/speedrun-sweep) kept. torch.compile costs ~25 s of the budget on a fresh machine and
# pays it back within the first minute; bf16 autocast runs on the CPU's bf16 matrix units. The
# tokenizer (vocab 2048 on 2 MB) and the encoding take ~20 s, the final evaluation and the samples
# ~30 s. On a shared text it reads the first 20 MB and evaluates 500 kB of validation text entirely.
CPU = Recipe(
    "cpu", "the leaderboard's CPU recipe: the whole job in about 8 minutes on 2 CPU cores",
    dataclasses.replace(CPU_PLAIN.train, batch_size=32, optimizer="muon", max_lr=3e-3, min_lr=3e-4, muon_lr=3e-3,
                        dtype="bf16", compile=True, model=shapes.small_cpu(kernels="torch")),
    CPU_PLAIN.leaderboard,
)

# 1.5 hours on one H100 (docs/leaderboard.md has the sizing). 12 layers x 768 (GPT-2 small shape;
# 85M non-embedding parameters, 109M with a tied 32k embedding) at context 1024, 128 sequences
# (131k tokens) per optimizer step. The accounting gives ~7.2e8 training FLOPs per token; at a
# realistic 40% MFU (~400 TFLOP/s bf16) that is ~550k tokens/s, ~3B tokens in 90 minutes: ~27 tokens
# per parameter, close to the compute-optimal ~20 (Chinchilla) for this budget. Improvements on by
# default, each a flag: weight tying, QK-norm, z-loss 1e-4, logit soft-capping at 30,
# warmup-stable-decay, and the CPU sweep's optimizer (Muon at the AdamW rate for the blocks' matrices). The leaderboard trains a 32k tokenizer on 200 MB and generates 400 MB of
# stories; with `python -m train.train --preset h100` give --train_data and --val_data.
H100 = Recipe(
    "h100", "the leaderboard recipe: 1.5 hours on one H100 (bf16, torch.compile, the Triton kernels)",
    TrainConfig(model=shapes.gpt2_small(vocab_size=32_000, d_ff=None, tie_embeddings=True, qk_norm=True,
                                        logit_softcap=30.0, kernels="triton"),
                batch_size=64, grad_accum_steps=2, max_iters=None, budget_seconds=5400.0,
                optimizer="muon", muon_lr=3e-3,
                schedule="wsd", max_lr=3e-3, min_lr=3e-5, warmup_fraction=0.02, decay_fraction=0.2,
                weight_decay=0.1, z_loss=1e-4, eval_interval=500, eval_iters=40, log_interval=20,
                checkpoint_interval=2000, device="cuda", dtype="bf16", compile=True, progress=True),
    LeaderboardConfig(vocab_size=32_000, tokenizer_train_bytes=200_000_000,
                      story_train_bytes=400_000_000, story_val_bytes=4_000_000,
                      eval_batch_size=64, num_samples=6, sample_tokens=256),
)

# By default each run takes a fixed number of steps, so runs compare at equal tokens even when the
# shared CPU's speed varies from run to run; the experiments swap the steps for a time budget where
# the question is about time (the batch-size sweep).
EXPERIMENT = Recipe(
    "experiment", "the small model every experiment run trains: 4 x 128, context 64, batch 16 "
    "(1,024 tokens per step), 150 steps",
    TrainConfig(model=shapes.experiment(kernels="auto"), batch_size=16, max_iters=150, budget_seconds=None,
                schedule="cosine", max_lr=3e-3, min_lr=3e-4, warmup_fraction=0.05, eval_interval=25,
                eval_iters=8, log_interval=5, checkpoint_interval=50, progress=False, seed=0),
)

# The handout's TinyStories model (vocab 10k, context 256, 4 layers x 512, d_ff 1,344, 16 heads)
# towards its low-resource goal of 40M tokens: 4,883 steps of 32 x 256 tokens, a cosine schedule
# laid over those steps (not over time, so a run shared with other work, or resumed across days,
# trains the same), with the cpu recipe's bf16 autocast and torch.compile. Its data: a 10k BPE
# trained on 20 MB of the generated stories, 170 MB of them to train on (one pass, ~41M tokens)
# and 4 MB (~1M tokens) to validate on, whose entropy floor is known. Hours on 2 CPU cores;
# ``--resume`` continues it.
HANDOUT_TINYSTORIES = Recipe(
    "handout-tinystories", "the handout's TinyStories model (10k vocab, 256 context, 4 x 512) towards its "
    "40M-token goal on the generated stories: hours on a CPU, resumable",
    TrainConfig(model=shapes.tinystories(kernels="torch"), batch_size=32, max_iters=4_883, budget_seconds=None,
                schedule="cosine", max_lr=2e-3, min_lr=2e-4, warmup_fraction=0.02, weight_decay=0.1,
                eval_interval=250, eval_iters=8, log_interval=20, checkpoint_interval=250,
                dtype="bf16", compile=True, progress=True),
    LeaderboardConfig(vocab_size=10_000, tokenizer_train_bytes=20_000_000, story_train_bytes=170_000_000,
                      story_val_bytes=4_000_000, eval_batch_size=32, num_samples=4, sample_tokens=256),
)

# The handout's OpenWebText analogue: the same model and length at vocab 32k, for web text
# (``--train-data imdb``: the reviews are the web text here), the first 4 MB of the test split
# as validation.
HANDOUT_OWT = Recipe(
    "handout-owt", "the handout's OpenWebText model (the TinyStories shape at vocab 32k) towards 40M tokens of "
    "web text (--train-data imdb): hours on a CPU, resumable",
    dataclasses.replace(HANDOUT_TINYSTORIES.train, model=shapes.tinystories(vocab_size=32_000, kernels="torch")),
    LeaderboardConfig(vocab_size=32_000, tokenizer_train_bytes=20_000_000, train_bytes=0, val_bytes=4_000_000,
                      eval_batch_size=32, num_samples=4, sample_tokens=256),
)

RECIPES: dict[str, Recipe] = {r.name: r for r in (TINY, GUTENBERG_CPU, TINYSTORIES, CPU, CPU_PLAIN, H100, EXPERIMENT,
                                                  HANDOUT_TINYSTORIES, HANDOUT_OWT)}
#: What ``python -m train.leaderboard --preset`` takes: ``auto`` (h100 on CUDA, else cpu) and
#: every recipe with leaderboard options.
LEADERBOARD_CHOICES = ("auto", *(name for name, r in RECIPES.items() if r.leaderboard is not None))


def get_recipe(name: str) -> Recipe:
    """The recipe called ``name`` (``gutenberg_cpu`` and ``gutenberg-cpu`` both work)."""
    key = name.replace("_", "-")
    if key not in RECIPES:
        raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(RECIPES)}")
    return RECIPES[key]


def recipe_config(name: str) -> TrainConfig:
    """A fresh ``TrainConfig`` of the recipe called ``name``."""
    return get_recipe(name).train_config()


def leaderboard_recipe(name: str) -> Recipe:
    """The leaderboard's recipe for ``--preset name``: ``auto`` is ``h100`` on CUDA, else ``cpu``."""
    if name not in LEADERBOARD_CHOICES:
        raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(LEADERBOARD_CHOICES)}")
    if name == "auto":
        import torch

        name = "h100" if torch.cuda.is_available() else "cpu"
    return RECIPES[name]
