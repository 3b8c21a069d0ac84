"""Data for the leaderboard and the experiments: text source -> BPE tokenizer -> token files, cached.

The text comes from ``tritonlm.corpora``: a data argument names a source there (nothing or
``stories``, a shared corpus, a dataset downloaded on first use, a text file) or is a token file
(``python -m tokenizer.encode``), passed through. Text is turned into tokens with a
tokenizer trained on the training text; both the tokenizer and the token files are cached under
``~/.cache/tritonlm/leaderboard`` keyed by the SHA-256 of the text and the tokenizer settings,
so a second run with the same data starts training at once. Every cache entry is written
atomically: an interrupted run never leaves a half-written tokenizer or token file behind.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from tritonlm.corpora.settings import DataSettings
from tritonlm.corpora.shared import file_sha256, head_of_file, text_cache
from tritonlm.corpora.sources import TextSource, is_token_file, source_pair
from tritonlm.tokenizer import END_OF_TEXT
from tritonlm.tokenizer.tokenfile import TokenFileError, read_token_header
from tritonlm.util.atomic import atomic_path

SPECIAL_TOKENS = [END_OF_TEXT]


@dataclass(frozen=True)
class PreparedData:
    """Token files ready for ``TrainConfig.train_data``/``val_data`` and where they came from."""

    train_tokens: Path
    val_tokens: Path
    tokenizer_dir: Path | None  # None when token files were given without a tokenizer
    vocab_size: int  # of the token files (the model's vocab must be at least this)
    train_source: str
    val_source: str
    train_text_bytes: int | None
    val_text_bytes: int | None
    val_entropy_floor: float | None = None  # nats/token of the best possible model (generated stories)

    def to_dict(self) -> dict:
        return {k: str(v) if isinstance(v, Path) else v for k, v in asdict(self).items()}


# -- tokenizer and token files -----------------------------------------------------------------
def tokenizer_key(train_text: Path, settings: DataSettings) -> str:
    return f"{file_sha256(train_text)[:16]}-v{settings.vocab_size}-b{settings.tokenizer_train_bytes}"


def prepare_tokenizer(train_text: Path, settings: DataSettings) -> Path:
    """Train (or reuse from the cache) a BPE tokenizer on the training text; returns its folder."""
    from tritonlm.tokenizer import Tokenizer, train_bpe

    folder = text_cache() / "tokenizers" / tokenizer_key(train_text, settings)
    if (folder / "vocab.json").exists():
        print(f"tokenizer: reusing {folder}")
        return folder
    sample = head_of_file(train_text, settings.tokenizer_train_bytes)
    print(f"tokenizer: training BPE (vocab {settings.vocab_size}) on {sample.stat().st_size / 1e6:.1f} MB of {train_text.name}")
    vocab, merges = train_bpe(str(sample), settings.vocab_size, SPECIAL_TOKENS, progress=True)
    try:
        with atomic_path(folder) as tmp:
            Tokenizer(vocab, merges, SPECIAL_TOKENS).save(tmp)
    except OSError:
        if not (folder / "vocab.json").exists():
            raise
        # Another job sharing the cache trained the same tokenizer (same text, same settings) and
        # renamed it into place first: a folder cannot be renamed over a full one; use theirs.
    return folder


def prepare_tokens(text: Path, tokenizer_dir: Path) -> Path:
    """Encode ``text`` with the tokenizer in ``tokenizer_dir`` (or reuse the cached token file)."""
    from tritonlm.tokenizer import encode_file

    target = text_cache() / "tokens" / f"{file_sha256(text)[:16]}-{tokenizer_dir.name}.tok"
    if target.exists():
        try:
            read_token_header(target)
            return target
        except TokenFileError:
            target.unlink()
    target.parent.mkdir(parents=True, exist_ok=True)
    print(f"encoding {text.name} ({text.stat().st_size / 1e6:.1f} MB) -> {target.name}")
    stats = encode_file(text, tokenizer_dir, target, progress=True)
    print(f"  encoded {stats}")
    return target


def prepare_data(train_spec: str | None, val_spec: str | None, settings: DataSettings,
                 tokenizer_dir: str | Path | None = None) -> PreparedData:
    """Ask ``corpora`` for the two sources, then tokenise and encode them (each step cached)."""
    train, val = source_pair(train_spec, val_spec, settings)
    train_text, val_text = train.path(), val.path()
    token_inputs = [is_token_file(p) for p in (train_text, val_text)]
    if all(token_inputs):
        return _given_tokens(train, val, tokenizer_dir)
    if any(token_inputs):
        raise ValueError("give both --train-data and --val-data as text, or both as token files")
    folder = Path(tokenizer_dir) if tokenizer_dir else prepare_tokenizer(train_text, settings)
    train_tokens, val_tokens = prepare_tokens(train_text, folder), prepare_tokens(val_text, folder)
    vocab_size = max(read_token_header(train_tokens).vocab_size, read_token_header(val_tokens).vocab_size)
    floor = val.entropy_floor(read_token_header(val_tokens).num_tokens)
    return PreparedData(train_tokens, val_tokens, folder, vocab_size, train.name, val.name,
                        train_text.stat().st_size, val_text.stat().st_size, floor)


def _given_tokens(train: TextSource, val: TextSource, tokenizer_dir: str | Path | None) -> PreparedData:
    """Token files given for both splits: used as they are, once they agree on the vocabulary."""
    train_tokens, val_tokens = train.path(), val.path()
    info = [read_token_header(p) for p in (train_tokens, val_tokens)]
    if info[0].vocab_size != info[1].vocab_size:
        raise TokenFileError(f"the token files disagree on the vocabulary: {train_tokens} has "
                             f"{info[0].vocab_size}, {val_tokens} has {info[1].vocab_size}")
    folder = Path(tokenizer_dir) if tokenizer_dir else None
    return PreparedData(train_tokens, val_tokens, folder, info[0].vocab_size, train.name, val.name, None, None)
