"""Tokenizer encode/decode: tiktoken equality, round trips, streaming, special tokens, files."""

from __future__ import annotations

import json
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tritonlm.tokenizer import Tokenizer, encode_file, open_tokens, train_bpe
from tritonlm.tokenizer.pretokenize import GPT2_PATTERN
from tritonlm.tokenizer.vocab_files import load_vocab

tiktoken = pytest.importorskip("tiktoken")
EOT = "<|endoftext|>"
FIXTURE_TEXTS = ["address.txt", "german.txt", "tinystories_sample.txt", "corpus.en"]
HYPOTHESIS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def gpt2_plain(gpt2_files):
    return Tokenizer.from_files(*gpt2_files)


# Text that stresses pre-tokenisation: unicode, whitespace runs, digits, emoji, contractions, specials.
PIECES = [" ", "  ", "\n", "\n\n", " \n ", "\t", "\r\n", "\u00a0", "\u3000", "123", "4", " 56", "😀", "👩‍👩‍👧",
          "'s", "'ll", "'VE", "hello", " world", "Ünïcödé", "日本語", "ﬁ", "\u0301", ".", "!!", EOT, "<|", "endoftext"]
awkward_text = st.lists(st.one_of(st.sampled_from(PIECES), st.text(max_size=8)), max_size=30).map("".join)


@pytest.mark.parametrize("name", FIXTURE_TEXTS)
def test_ids_equal_tiktoken_on_fixture_texts(gpt2, gpt2_plain, tiktoken_gpt2, fixture_file, name):
    text = fixture_file(name).read_text(encoding="utf-8")
    assert gpt2.encode(text) == tiktoken_gpt2.encode(text, allowed_special="all")
    assert gpt2_plain.encode(text) == tiktoken_gpt2.encode_ordinary(text)
    assert gpt2.decode(gpt2.encode(text)) == text


@HYPOTHESIS
@given(text=awkward_text)
def test_ids_equal_tiktoken_on_random_strings(gpt2, gpt2_plain, tiktoken_gpt2, text):
    assert gpt2.encode(text) == tiktoken_gpt2.encode(text, allowed_special="all")
    assert gpt2_plain.encode(text) == tiktoken_gpt2.encode_ordinary(text)


@HYPOTHESIS
@given(text=st.one_of(st.text(), awkward_text))
def test_round_trip(gpt2, gpt2_plain, text):
    assert gpt2.decode(gpt2.encode(text)) == text
    assert gpt2_plain.decode(gpt2_plain.encode(text)) == text


@HYPOTHESIS
@given(text=awkward_text, data=st.data(), flush=st.sampled_from([1, 3, 20]))
def test_encode_iterable_equals_encode_for_any_chunking(gpt2, gpt2_plain, text, data, flush):
    cuts = sorted(data.draw(st.lists(st.integers(0, len(text)), max_size=12)))
    chunks = [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)])]
    # a tiny flush size makes every chunk look for a boundary, cutting pre-tokens and specials
    assert list(gpt2.encode_iterable(chunks, flush_chars=flush)) == gpt2.encode(text)
    assert list(gpt2_plain.encode_iterable(chunks, flush_chars=flush)) == gpt2_plain.encode(text)


def test_encode_iterable_streams_long_text_with_split_special_tokens(gpt2, fixture_file):
    text = (fixture_file("corpus.en").read_text(encoding="utf-8") + EOT) * 3
    rng = random.Random(0)
    chunks, i = [], 0
    while i < len(text):
        step = rng.choice([1, 2, 5, 13, 1000, 70000])
        chunks.append(text[i : i + step])
        i += step
    stream = gpt2.encode_iterable(iter(chunks))
    assert next(stream) == gpt2.encode(text)[0]  # lazy: yields before the input is exhausted
    assert [gpt2.encode(text)[0], *stream] == gpt2.encode(text)


def test_special_tokens_match_longest_first_and_are_added_when_absent(gpt2_files):
    double = EOT + EOT
    tok = Tokenizer.from_files(*gpt2_files, special_tokens=[EOT, double])
    ids = tok.encode(f"a{double}b{EOT}")
    assert tok.vocab[ids[1]] == double.encode() and ids[1] == 50257  # appended with the next id
    assert ids[3] == 50256
    assert tok.decode(ids) == f"a{double}b{EOT}"
    without = Tokenizer.from_files(*gpt2_files)
    assert 50256 not in without.encode(EOT)  # no special tokens: ordinary text


def test_decode_replaces_invalid_utf8(gpt2):
    snowman = gpt2.encode("☃")
    assert len(snowman) > 1
    assert gpt2.decode(snowman[:1]) == "\ufffd"
    assert gpt2.decode([*snowman[:1], *gpt2.encode("ok")]) == "\ufffdok"
    with pytest.raises(ValueError, match="not in this vocabulary"):
        gpt2.decode([10**9])


@pytest.fixture(scope="module")
def trained_dir(tmp_path_factory):
    from tritonlm.corpora.shared import SharedDataMissing, fixture_path

    try:
        corpus = fixture_path("corpus.en")
    except SharedDataMissing as e:
        pytest.skip(str(e))
    vocab, merges = train_bpe(corpus, 600, [EOT])
    out = tmp_path_factory.mktemp("tok")
    Tokenizer(vocab, merges, [EOT]).save(out)
    return out, corpus


def test_saved_files_reload_identically(trained_dir):
    out, corpus = trained_dir
    text = corpus.read_text(encoding="utf-8")
    vocab, merges = train_bpe(corpus, 600, [EOT])
    original = Tokenizer(vocab, merges, [EOT])
    loaded = Tokenizer.from_dir(out)
    assert loaded.vocab == original.vocab and loaded.merges == original.merges
    assert loaded.special_tokens == [EOT]
    assert loaded.encode(text + EOT) == original.encode(text + EOT)


def test_saved_files_load_in_hf_tokenizers_and_tiktoken(trained_dir):
    tokenizers = pytest.importorskip("tokenizers")
    out, corpus = trained_dir
    ours = Tokenizer.from_dir(out)
    text = corpus.read_text(encoding="utf-8")[:20000] + " naïve 日本 😀  \n\n x"
    hf = tokenizers.Tokenizer(tokenizers.models.BPE.from_file(str(out / "vocab.json"), str(out / "merges.txt")))
    hf.pre_tokenizer = tokenizers.pre_tokenizers.ByteLevel(add_prefix_space=False)
    hf.decoder = tokenizers.decoders.ByteLevel()
    assert hf.encode(text).ids == ours.encode(text)
    ranks = {t: i for i, t in load_vocab(out / "vocab.json").items() if t != EOT.encode()}
    tt = tiktoken.Encoding("ours", pat_str=GPT2_PATTERN, mergeable_ranks=ranks, special_tokens={EOT: 0})
    assert tt.encode(text + EOT + text, allowed_special="all") == ours.encode(text + EOT + text)
    assert json.loads((out / "special_tokens.json").read_text()) == [EOT]


@pytest.mark.parametrize("workers", [1, 2])
def test_encode_file_equals_encode(tmp_path, gpt2, fixture_file, workers):
    text = "".join(fixture_file(n).read_text(encoding="utf-8") + EOT for n in FIXTURE_TEXTS)
    src = tmp_path / "corpus.txt"
    src.write_text(text, encoding="utf-8")
    stats = encode_file(src, gpt2, tmp_path / "ids.bin", num_workers=workers, chunk_bytes=3000)
    ids, info = open_tokens(tmp_path / "ids.bin")
    assert ids.tolist() == gpt2.encode(text)
    assert info.dtype.itemsize == 2 and info.vocab_size == 50257 and stats.num_tokens == len(ids)


def test_encode_file_uses_uint32_for_big_vocabs_and_rejects_bad_input(tmp_path):
    vocab = {i: bytes([i]) for i in range(256)}
    vocab[70000] = b"<|big|>"
    tok = Tokenizer(vocab, [], ["<|big|>"])
    src = tmp_path / "t.txt"
    src.write_text("ab<|big|>c", encoding="utf-8")
    encode_file(src, tok, tmp_path / "ids.bin", num_workers=1)
    ids, info = open_tokens(tmp_path / "ids.bin")
    assert info.dtype.itemsize == 4 and ids.tolist() == [97, 98, 70000, 99]
    src.write_bytes(b"fine text \x80 broken")
    with pytest.raises(ValueError, match="byte offset 10"):
        encode_file(src, tok, tmp_path / "bad.bin", num_workers=2)
    assert not (tmp_path / "bad.bin").exists()
    assert [p.name for p in tmp_path.iterdir() if "tmp" in p.name] == []


def test_encode_cli(tmp_path, trained_dir):
    import subprocess
    import sys

    out, corpus = trained_dir
    result = subprocess.run([sys.executable, "-m", "tokenizer.encode", str(corpus), "--tokenizer", str(out),
                             "--out", str(tmp_path / "c.bin"), "--quiet"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "bytes/token" in result.stdout and "MB/s" in result.stdout
    ids, _ = open_tokens(tmp_path / "c.bin")
    assert ids.tolist() == Tokenizer.from_dir(out).encode(corpus.read_text(encoding="utf-8"))
    missing = subprocess.run([sys.executable, "-m", "tokenizer.encode", str(corpus), "--tokenizer",
                              str(tmp_path / "nope"), "--out", str(tmp_path / "d.bin")], capture_output=True, text=True)
    assert missing.returncode == 2 and "does not exist" in missing.stderr
    assert not (tmp_path / "d.bin").exists()


def test_a_full_disk_during_a_token_file_write_keeps_the_previous_file(tmp_path):
    import errno

    from tritonlm.tokenizer.tokenfile import TokenFileError, TokenFileWriter, write_tokens

    path = write_tokens(tmp_path / "ids.tok", [1, 2, 3], 10)
    before = path.read_bytes()

    class FullDisk:
        def __init__(self, file):
            self.file = file

        def write(self, data):
            raise OSError(errno.ENOSPC, "No space left on device")

        def __getattr__(self, name):
            return getattr(self.file, name)

    with pytest.raises(TokenFileError, match=r"could not write the token file .*ids.tok .*No space left.*intact"):
        with TokenFileWriter(path, 10) as writer:
            writer._file = FullDisk(writer._file)
            writer.write([4, 5, 6])
    assert path.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["ids.tok"]
