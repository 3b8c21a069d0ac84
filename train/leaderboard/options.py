"""What a leaderboard job is: its own options (``LeaderboardConfig``: data sizes, tokenizer,
evaluation and sampling), the options each recipe of ``train.presets`` comes with, and the fully
resolved ``Job`` that ``pipeline.run_leaderboard`` executes."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tritonlm.corpora.settings import DataSettings, check_sizes
from tritonlm.train.config import TrainConfig

PRESET_CHOICES = ("auto", "cpu", "h100")


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


def recipe_options(preset: str) -> LeaderboardConfig:
    """The leaderboard options of a recipe: ``cpu`` reads the first 20 MB of a shared training
    text (7 CPU minutes see at most ~2.5M tokens) and evaluates 500 kB of validation text
    entirely (~20 s); ``h100`` trains a 32k tokenizer on 200 MB and generates 400 MB of stories."""
    if preset == "cpu":
        return LeaderboardConfig(train_bytes=20_000_000, val_bytes=500_000)
    if preset == "h100":
        return LeaderboardConfig(vocab_size=32_000, tokenizer_train_bytes=200_000_000,
                                 story_train_bytes=400_000_000, story_val_bytes=4_000_000,
                                 eval_batch_size=64, num_samples=6, sample_tokens=256)
    raise ValueError(f"unknown preset {preset!r}; choose one of {', '.join(PRESET_CHOICES)}")


def resolve_preset_name(name: str) -> str:
    if name not in PRESET_CHOICES:
        raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(PRESET_CHOICES)}")
    if name == "auto":
        import torch

        return "h100" if torch.cuda.is_available() else "cpu"
    return name


@dataclass
class Job:
    """A fully resolved leaderboard job: what ``run_leaderboard`` executes."""

    preset: str
    options: LeaderboardConfig
    train: TrainConfig
    train_data: str | None
    val_data: str | None
    tokenizer: str | None
    out_dir: Path
    flags: dict[str, str]  # every option given on the command line, as typed
