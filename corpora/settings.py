"""``DataSettings``: the one spelling of the data settings, read by every text source, the
leaderboard (whose ``LeaderboardConfig`` extends it, so its flags are these field names) and the
experiments."""

from __future__ import annotations

from dataclasses import dataclass

#: The smallest vocabulary: the 256 byte tokens and ``<|endoftext|>``.
MIN_VOCAB_SIZE = 257
#: Validation data comes from its own fixed stream, seed + this offset: the generated validation
#: stories here, and the training loop's validation batches (``train.config`` uses this one).
VAL_SEED_OFFSET = 1_000_003


@dataclass(frozen=True)
class DataSettings:
    """How much text each source gives and how the tokenizer trained on it is sized.

    The tokenizer's two settings travel with the text because the tokenizer is trained on the
    training source: the data stage caches both by the text's content and these numbers.
    """

    vocab_size: int = 2048  # BPE vocabulary, special token included (the model's is padded to x64)
    tokenizer_train_bytes: int = 2_000_000  # bytes of training text the BPE trainer reads; 0 = all
    train_bytes: int = 0  # encode only the first bytes of the training text; 0 = all
    val_bytes: int = 0  # the validation set is the first bytes of the validation text; 0 = all
    story_train_bytes: int = 8_000_000  # size of the generated training corpus (no data given)
    story_val_bytes: int = 250_000  # size of the generated validation corpus
    story_seed: int = 0  # generated training text uses this seed, validation seed + VAL_SEED_OFFSET

    def __post_init__(self) -> None:
        if self.vocab_size < MIN_VOCAB_SIZE:
            raise ValueError(f"vocab_size must be at least {MIN_VOCAB_SIZE} (256 bytes + <|endoftext|>), "
                             f"got {self.vocab_size}")
        check_sizes(self, non_negative=("tokenizer_train_bytes", "train_bytes", "val_bytes"),
                    positive=("story_train_bytes", "story_val_bytes"))

    def max_bytes(self, split: str) -> int:
        """The byte limit of a split's text (0 = all of it)."""
        return {"train": self.train_bytes, "valid": self.val_bytes}[split]

    def story_bytes(self, split: str) -> int:
        """The size of a split's generated stories."""
        return {"train": self.story_train_bytes, "valid": self.story_val_bytes}[split]


def check_sizes(config, non_negative: tuple[str, ...] = (), positive: tuple[str, ...] = ()) -> None:
    """Raise ``ValueError`` naming the first field of ``config`` that is negative (or, for
    ``positive``, not above zero)."""
    for name in non_negative:
        if getattr(config, name) < 0:
            raise ValueError(f"{name} must be >= 0, got {getattr(config, name)}")
    for name in positive:
        if getattr(config, name) <= 0:
            raise ValueError(f"{name} must be positive, got {getattr(config, name)}")
