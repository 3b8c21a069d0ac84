"""What a leaderboard job is: the fully resolved ``Job`` that ``pipeline.run_leaderboard``
executes, with its recipe's options (``LeaderboardConfig`` of ``train.recipes``: data sizes,
tokenizer, evaluation and sampling) after the flags."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tritonlm.train.config import TrainConfig
from tritonlm.train.recipes import LeaderboardConfig


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
