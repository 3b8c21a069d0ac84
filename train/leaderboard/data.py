"""Data for the leaderboard and the experiments: corpus -> BPE tokenizer -> token files, cached.

A data argument is one of: nothing or ``stories`` (the generated corpus of ``train.leaderboard.stories``),
a shared corpus name (``gutenberg``, ``imdb``, or a file name such as ``gutenberg_train``), a
dataset downloaded on first use (``tinystories``, ``owt``; see ``util.downloads``), a text file,
or a token file (``python -m tokenizer.encode``). Text is turned into tokens with a
tokenizer trained on the training text; both the tokenizer and the token files are cached under
``~/.cache/tritonlm/leaderboard`` keyed by the SHA-256 of the text and the tokenizer settings,
so a second run with the same data starts training at once. Every cache entry is written
atomically: an interrupted run never leaves a half-written tokenizer or token file behind.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from tritonlm.util.atomic import atomic_path, write_bytes_atomic
from tritonlm.util.corpora import SharedDataMissing, cache_dir, shared_corpus
from tritonlm.util.downloads import DATASETS, dataset_text
from tritonlm.tokenizer.tokenfile import MAGIC, TokenFileError, read_token_header
from tritonlm.tokenizer import END_OF_TEXT
from tritonlm.train.config import VAL_SEED_OFFSET
from tritonlm.train.leaderboard.stories import GENERATOR_VERSION, corpus_floor, logprob_path, write_corpus

SPECIAL_TOKENS = [END_OF_TEXT]
# short name -> (training split, validation split) of the shared corpora
SHARED_CORPORA = {"gutenberg": ("gutenberg_train", "gutenberg_valid"), "imdb": ("imdb_train", "imdb_test"),
                  # downloaded from the Hugging Face hub into the cache (util.downloads), for users online
                  "tinystories": ("tinystories:train", "tinystories:valid"), "owt": ("owt:train", "owt:valid")}


@dataclass(frozen=True)
class DataSettings:
    """What the data preparation needs to know (a subset of ``LeaderboardConfig``)."""

    vocab_size: int = 2048
    tokenizer_train_bytes: int = 2_000_000  # 0 = the whole training text
    train_bytes: int = 0  # 0 = all
    val_bytes: int = 0  # 0 = all
    story_train_bytes: int = 8_000_000
    story_val_bytes: int = 250_000
    story_seed: int = 0


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


def leaderboard_cache() -> Path:
    path = cache_dir() / "leaderboard"
    path.mkdir(parents=True, exist_ok=True)
    return path


def is_token_file(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(len(MAGIC)) == MAGIC


def file_digest(path: Path) -> str:
    """SHA-256 of a file's content (hex), read in 4 MB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 22):
            digest.update(block)
    return digest.hexdigest()


def head_of_file(path: Path, max_bytes: int) -> Path:
    """``path`` itself, or a cached copy of its first ``max_bytes`` cut back to a line end."""
    if max_bytes <= 0 or path.stat().st_size <= max_bytes:
        return path
    target = leaderboard_cache() / "heads" / f"{file_digest(path)[:16]}-first{max_bytes}.txt"
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "rb") as f:
        block = f.read(max_bytes)
    cut = block.rfind(b"\n")
    write_bytes_atomic(target, block[: cut + 1] if cut > 0 else block)
    return target


# -- resolving data arguments -------------------------------------------------------------------
def resolve_texts(train_spec: str | None, val_spec: str | None, settings: DataSettings) -> tuple[Path, Path, str, str]:
    """(train path, val path, train description, val description) for the data arguments."""
    if train_spec in (None, "stories"):
        train, val = _story_texts(settings)
        train_source = f"generated stories (seed {settings.story_seed}, {settings.story_train_bytes:,} bytes)"
        if val_spec not in (None, "stories"):
            return train, _resolve_one(val_spec, settings.val_bytes), train_source, _describe(val_spec, settings.val_bytes)
        val_source = f"generated stories (seed {settings.story_seed + VAL_SEED_OFFSET}, {settings.story_val_bytes:,} bytes)"
        return train, val, train_source, val_source
    train_name = SHARED_CORPORA[train_spec][0] if train_spec in SHARED_CORPORA else train_spec
    train = _resolve_one(train_name, settings.train_bytes)  # a missing training file is the first thing to say
    if val_spec is None:
        if train_spec in SHARED_CORPORA:
            val_spec = SHARED_CORPORA[train_spec][1]
        else:
            raise ValueError(
                f"--train-data {train_spec} needs a validation set: pass --val-data PATH "
                f"(or use a shared corpus name: {', '.join(SHARED_CORPORA)})"
            )
    val = _resolve_one(val_spec, settings.val_bytes)
    return train, val, _describe(train_name, settings.train_bytes), _describe(val_spec, settings.val_bytes)


def _describe(spec: str, max_bytes: int) -> str:
    return spec + (f" (first {max_bytes:,} bytes)" if max_bytes else "")


def _story_texts(settings: DataSettings) -> tuple[Path, Path]:
    folder = leaderboard_cache() / "stories"
    seed = settings.story_seed
    version = f"v{GENERATOR_VERSION}"
    train = folder / f"stories-{version}-seed{seed}-{settings.story_train_bytes}.txt"
    val = folder / f"stories-{version}-seed{seed + VAL_SEED_OFFSET}-{settings.story_val_bytes}.txt"
    for path, size, path_seed in ((train, settings.story_train_bytes, seed),
                                  (val, settings.story_val_bytes, seed + VAL_SEED_OFFSET)):
        if not (path.exists() and logprob_path(path).exists()):  # the text and its log-probability
            write_corpus(path, size, path_seed)
    return train, val


def _resolve_one(spec: str, max_bytes: int) -> Path:
    """A path (text or token file) or a shared corpus name -> an existing file."""
    if ":" in spec and spec.split(":", 1)[0] in DATASETS:  # a dataset to download, e.g. "owt:valid"
        return head_of_file(dataset_text(*spec.split(":", 1)), max_bytes)
    path = Path(spec).expanduser()
    if path.is_file():
        return path if is_token_file(path) else head_of_file(path, max_bytes)
    if path.exists():
        raise ValueError(f"{spec} is not a file; pass a text file, a token file or a shared corpus name")
    name = SHARED_CORPORA[spec][0] if spec in SHARED_CORPORA else spec
    try:
        return shared_corpus(name, max_bytes or None)
    except SharedDataMissing as e:
        raise FileNotFoundError(
            f"{spec!r} is neither a file nor an available shared corpus ({e}); pass a path to a text or token file"
        ) from e


# -- tokenizer and token files -----------------------------------------------------------------
def tokenizer_key(train_text: Path, settings: DataSettings) -> str:
    return f"{file_digest(train_text)[:16]}-v{settings.vocab_size}-b{settings.tokenizer_train_bytes}"


def prepare_tokenizer(train_text: Path, settings: DataSettings) -> Path:
    """Train (or reuse from the cache) a BPE tokenizer on the training text; returns its folder."""
    from tritonlm.tokenizer import Tokenizer, train_bpe

    folder = leaderboard_cache() / "tokenizers" / tokenizer_key(train_text, settings)
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

    target = leaderboard_cache() / "tokens" / f"{file_digest(text)[:16]}-{tokenizer_dir.name}.tok"
    if target.exists():
        try:
            read_token_header(target)
            return target
        except TokenFileError:
            target.unlink()
    target.parent.mkdir(parents=True, exist_ok=True)
    print(f"encoding {text.name} ({text.stat().st_size / 1e6:.1f} MB) -> {target.name}")
    stats = encode_file(text, tokenizer_dir, target, progress=True)
    print(f"  {stats}")
    return target


def prepare_data(train_spec: str | None, val_spec: str | None, settings: DataSettings,
                 tokenizer_dir: str | Path | None = None) -> PreparedData:
    """Resolve, tokenise and encode the data arguments (each step cached)."""
    train_text, val_text, train_source, val_source = resolve_texts(train_spec, val_spec, settings)
    token_inputs = [is_token_file(p) for p in (train_text, val_text)]
    if all(token_inputs):
        info = [read_token_header(p) for p in (train_text, val_text)]
        if info[0].vocab_size != info[1].vocab_size:
            raise TokenFileError(f"the token files disagree on the vocabulary: {train_text} has "
                                 f"{info[0].vocab_size}, {val_text} has {info[1].vocab_size}")
        folder = Path(tokenizer_dir) if tokenizer_dir else None
        return PreparedData(train_text, val_text, folder, info[0].vocab_size, train_source, val_source, None, None)
    if any(token_inputs):
        raise ValueError("give both --train-data and --val-data as text, or both as token files")
    folder = Path(tokenizer_dir) if tokenizer_dir else prepare_tokenizer(train_text, settings)
    train_tokens, val_tokens = prepare_tokens(train_text, folder), prepare_tokens(val_text, folder)
    vocab_size = max(read_token_header(train_tokens).vocab_size, read_token_header(val_tokens).vocab_size)
    floor = corpus_floor(val_text, read_token_header(val_tokens).num_tokens)
    return PreparedData(train_tokens, val_tokens, folder, vocab_size, train_source, val_source,
                        train_text.stat().st_size, val_text.stat().st_size, floor)


def padded_vocab_size(vocab_size: int, multiple: int = 64) -> int:
    """The model's vocabulary: the tokenizer's rounded up to a multiple of 64 (faster matmuls;
    the extra rows are never a target, so they only learn to be unlikely)."""
    return -(-vocab_size // multiple) * multiple
