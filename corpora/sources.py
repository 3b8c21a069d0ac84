"""Every text source behind one interface: ``TextSource`` (a name, a text file made on first use,
its documents, its size and, where known, its entropy floor), and ``get_source`` to find one by
name or path.

A source is named by what a user types (``--train-data``, ``--data``): nothing or ``stories``
(the generated stories), a shared corpus (``gutenberg``, ``imdb``, or a file name such as
``gutenberg_train``), a dataset downloaded on first use (``tinystories``, ``owt``, or one split:
``owt:valid``), or a file. A token file passes through whole: it is already the product of a
tokenizer, so it has no documents to read here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from tritonlm.tokenizer import END_OF_TEXT
from tritonlm.tokenizer.tokenfile import MAGIC

from .downloads import DATASETS, dataset_text
from .settings import VAL_SEED_OFFSET, DataSettings
from .shared import SharedDataMissing, check_corpus, head_of_file, shared_corpus, text_cache
from .stories import GENERATOR_VERSION, corpus_floor, logprob_path, write_corpus

SPLITS = ("train", "valid")


class TextSource:
    """A text: ``path()`` makes (generates, decompresses, downloads, cuts) its file on first use
    and returns it; ``name`` is what the report calls it."""

    name: str

    def path(self) -> Path:
        raise NotImplementedError(f"{type(self).__name__} must say where its text is")

    @property
    def size_bytes(self) -> int:
        """Bytes of the text this source gives (its file made if needed)."""
        return self.path().stat().st_size

    def documents(self) -> Iterator[str]:
        """The documents of the text, in order: the text between lines ``<|endoftext|>`` (the
        separator of the shared corpora and of the generated stories), read as a stream."""
        if is_token_file(self.path()):
            raise ValueError(f"{self.name} is a token file: it has no text documents")
        lines: list[str] = []
        with open(self.path(), encoding="utf-8") as f:
            for line in f:
                if line.rstrip("\r\n") == END_OF_TEXT:
                    yield from _non_blank("".join(lines))
                    lines = []
                else:
                    lines.append(line)
        yield from _non_blank("".join(lines))

    def entropy_floor(self, num_tokens: int) -> float | None:
        """The validation loss of the best possible model, in nats per token of a token file of
        ``num_tokens`` tokens made from this text: known for a text whose log-probability is
        recorded beside it (generated stories), else None."""
        return corpus_floor(self.path(), num_tokens)


@dataclass(frozen=True)
class GeneratedStories(TextSource):
    """Stories of ``corpora.stories``, ``size`` bytes for ``seed``, cached with their exact
    log-probability (so their entropy floor is known)."""

    seed: int
    size: int

    @property
    def name(self) -> str:
        return f"generated stories (seed {self.seed}, {self.size:,} bytes)"

    def path(self) -> Path:
        path = text_cache() / "stories" / f"stories-v{GENERATOR_VERSION}-seed{self.seed}-{self.size}.txt"
        if not (path.exists() and logprob_path(path).exists()):  # the text and its log-probability
            write_corpus(path, self.size, self.seed)
        return path


@dataclass(frozen=True)
class SharedCorpus(TextSource):
    """A shared corpus (``gutenberg_train``, ``gutenberg_train+imdb_train``), decompressed into the
    cache, its first ``max_bytes`` (0 = all). Built only for a corpus that is there."""

    corpus: str
    max_bytes: int = 0

    def __post_init__(self) -> None:
        try:
            check_corpus(self.corpus, self.max_bytes or None)
        except SharedDataMissing as e:
            raise FileNotFoundError(f"{self.corpus!r} is neither a file nor an available shared corpus ({e}); "
                                    "pass a path to a text or token file") from e

    @property
    def name(self) -> str:
        return described(self.corpus, self.max_bytes)

    def path(self) -> Path:
        return shared_corpus(self.corpus, self.max_bytes or None)


@dataclass(frozen=True)
class DownloadedSplit(TextSource):
    """One split of a dataset of ``corpora.downloads``, downloaded into the cache on first use."""

    dataset: str
    split: str
    max_bytes: int = 0

    @property
    def name(self) -> str:
        return described(f"{self.dataset}:{self.split}", self.max_bytes)

    def path(self) -> Path:
        return head_of_file(dataset_text(self.dataset, self.split), self.max_bytes)


@dataclass(frozen=True)
class UserFile(TextSource):
    """A file of the user's: a text file (its first ``max_bytes``, 0 = all) or a token file
    (whole). ``label`` is the path as the user typed it."""

    file: Path
    label: str
    max_bytes: int = 0

    @property
    def name(self) -> str:
        return described(self.label, self.max_bytes)

    def path(self) -> Path:
        return self.file if is_token_file(self.file) else head_of_file(self.file, self.max_bytes)


def _non_blank(document: str) -> Iterator[str]:
    if document.strip():
        yield document


def described(label: str, max_bytes: int) -> str:
    return label + (f" (first {max_bytes:,} bytes)" if max_bytes else "")


def is_token_file(path: Path) -> bool:
    """Whether ``path`` is a token file (``python -m tokenizer.encode``), by its magic bytes."""
    with open(path, "rb") as f:
        return f.read(len(MAGIC)) == MAGIC


# -- the sources by name ------------------------------------------------------------------------
def _stories(split: str, settings: DataSettings) -> TextSource:
    offset = VAL_SEED_OFFSET if split == "valid" else 0
    return GeneratedStories(settings.story_seed + offset, settings.story_bytes(split))


def _shared(train: str, valid: str) -> Callable[[str, DataSettings], TextSource]:
    corpora = {"train": train, "valid": valid}
    return lambda split, settings: SharedCorpus(corpora[split], settings.max_bytes(split))


def _downloaded(dataset: str) -> Callable[[str, DataSettings], TextSource]:
    return lambda split, settings: DownloadedSplit(dataset, split, settings.max_bytes(split))


#: The named sources: name -> (split, settings) -> the source of that split.
NAMED_SOURCES: dict[str, Callable[[str, DataSettings], TextSource]] = {
    "stories": _stories,
    "gutenberg": _shared("gutenberg_train", "gutenberg_valid"),
    "imdb": _shared("imdb_train", "imdb_test"),
    # downloaded from the Hugging Face hub into the cache (corpora.downloads), for users online
    **{dataset: _downloaded(dataset) for dataset in DATASETS},
}
SOURCE_NAMES = tuple(NAMED_SOURCES)


def get_source(spec: str | None, settings: DataSettings, split: str = "train") -> TextSource:
    """The source ``spec`` names, for ``split`` (``train`` or ``valid``): a named source's split,
    one dataset split (``owt:valid``), a file, or a shared corpus by its file name. Raises
    ``FileNotFoundError`` naming the choices when ``spec`` is none of them."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    spec = "stories" if spec is None else spec
    if spec in NAMED_SOURCES:
        return NAMED_SOURCES[spec](split, settings)
    dataset, _, dataset_split = spec.partition(":")
    if dataset_split and dataset in DATASETS:
        return DownloadedSplit(dataset, dataset_split, settings.max_bytes(split))
    path = Path(spec).expanduser()
    if path.is_file():
        return UserFile(path, spec, settings.max_bytes(split))
    if path.exists():
        raise ValueError(f"{spec} is not a file; pass a text file, a token file or a shared corpus name")
    try:
        return SharedCorpus(spec, settings.max_bytes(split))
    except FileNotFoundError as e:
        raise FileNotFoundError(f"{e}; or name a source: {', '.join(SOURCE_NAMES)}") from e


def source_pair(train_spec: str | None, val_spec: str | None, settings: DataSettings) -> tuple[TextSource, TextSource]:
    """The training and validation sources of the data arguments: without ``val_spec``, the
    validation split of the named training source (a file has none: that is an error)."""
    train = get_source(train_spec, settings, "train")  # a missing training file is the first thing to say
    if val_spec is not None:
        return train, get_source(val_spec, settings, "valid")
    if train_spec is None or train_spec in NAMED_SOURCES:
        return train, get_source(train_spec, settings, "valid")
    raise ValueError(f"--train-data {train_spec} needs a validation set: pass --val-data PATH "
                     f"(or use a shared corpus name: {', '.join(n for n in SOURCE_NAMES if n != 'stories')})")
