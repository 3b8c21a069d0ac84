"""The text sources of ``tritonlm.corpora``: each yields documents and knows its name and size;
names resolve through one registry, and an unknown name says what the choices are."""

from __future__ import annotations

import pytest

from tritonlm.corpora.settings import DataSettings
from tritonlm.corpora.sources import (SOURCE_NAMES, DownloadedSplit, GeneratedStories, SharedCorpus, UserFile,
                                      get_source, source_pair)
from tritonlm.tokenizer import END_OF_TEXT

SMALL = DataSettings(story_train_bytes=6_000, story_val_bytes=3_000, story_seed=4)


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TRITONLM_CACHE", str(tmp_path / "cache"))


def test_generated_stories_yield_documents_and_know_name_size_and_floor():
    train, val = source_pair(None, None, SMALL)
    assert isinstance(train, GeneratedStories) and (train.seed, val.seed) == (4, 4 + 1_000_003)
    assert train.name == "generated stories (seed 4, 6,000 bytes)"
    assert train.size_bytes >= 6_000 and val.size_bytes >= 3_000
    documents = list(train.documents())
    assert len(documents) > 2 and all(d.strip() and END_OF_TEXT not in d for d in documents)
    assert train.entropy_floor(1_000) > 0
    assert get_source("stories", SMALL, "valid") == val


def test_a_user_file_yields_its_documents_and_has_no_floor(tmp_path):
    text = tmp_path / "mine.txt"
    text.write_text(f"first one\n{END_OF_TEXT}\nsecond\nline\n{END_OF_TEXT}\n")
    source = get_source(str(text), DataSettings(), "valid")
    assert isinstance(source, UserFile) and source.name == str(text)
    assert list(source.documents()) == ["first one\n", "second\nline\n"]
    assert source.size_bytes == text.stat().st_size and source.entropy_floor(10) is None


def test_a_byte_limit_cuts_a_user_file_at_a_line_end(tmp_path):
    text = tmp_path / "long.txt"
    text.write_text("".join(f"line {i}\n" for i in range(1000)))
    source = get_source(str(text), DataSettings(train_bytes=100))
    assert source.name == f"{text} (first 100 bytes)"
    assert source.size_bytes <= 100 and source.path().read_text().endswith("\n")


def test_named_sources_cover_every_corpus_and_dataset_split():
    assert SOURCE_NAMES == ("stories", "gutenberg", "imdb", "tinystories", "owt")
    assert get_source("owt", DataSettings(val_bytes=5), "valid") == DownloadedSplit("owt", "valid", 5)
    assert get_source("tinystories:valid", DataSettings()).name == "tinystories:valid"


def test_unknown_names_and_missing_validation_sets_say_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setenv("TRITONLM_SHARED", str(tmp_path / "no-shared"))
    with pytest.raises(FileNotFoundError, match="stories, gutenberg, imdb, tinystories, owt"):
        get_source("nothing-by-this-name", DataSettings())
    with pytest.raises(FileNotFoundError, match="neither a file nor an available shared corpus"):
        SharedCorpus("gutenberg_train")
    with pytest.raises(ValueError, match="unknown split"):
        get_source(None, DataSettings(), "test")
    text = tmp_path / "train.txt"
    text.write_text("some text\n")
    with pytest.raises(ValueError, match="needs a validation set"):
        source_pair(str(text), None, DataSettings())


def test_data_settings_are_validated():
    with pytest.raises(ValueError, match="vocab_size"):
        DataSettings(vocab_size=100)
    with pytest.raises(ValueError, match="story_val_bytes must be positive"):
        DataSettings(story_val_bytes=0)
    assert DataSettings(train_bytes=7).max_bytes("train") == 7
