"""Runs that remember: a token file records its vocabulary and the tokenizer that made it; a
training run takes its vocabulary from the data, records the tokenizer in its folder (so
``generate`` finds it), and ``--resume`` with only the run folder continues exactly."""

from __future__ import annotations

import json
import os
import signal
import struct

import numpy as np
import pytest

from tritonlm.tokenizer import Tokenizer, train_bpe
from tritonlm.tokenizer.corpus_encoder import encode_file
from tritonlm.tokenizer.tokenfile import HEADER_SIZE, TokenFileError, open_tokens, read_token_header, write_tokens
from tritonlm.train import train as train_cli
from tritonlm.train.loop import run_training
from tritonlm.train.metrics_log import read_metrics
from tritonlm.train.run_folder import RunFolder, load_tokenizer

pytestmark = pytest.mark.usefixtures("single_thread")

TINY = ["--model.context_length=16", "--model.d_model=32", "--model.num_layers=1", "--model.num_heads=2",
        "--batch_size=4", "--eval_iters=2", "--eval_interval=4", "--log_interval=1", "--checkpoint_interval=4",
        "--progress=false", "--device=cpu"]


@pytest.fixture()
def corpus(bpe_corpus):
    return bpe_corpus


def test_metadata_round_trips_and_ids_start_after_it(tmp_path):
    ids = np.random.default_rng(0).integers(0, 1000, size=777)
    path = write_tokens(tmp_path / "t.bin", ids, 1000, {"tokenizer": {"sha256": "ab" * 32, "note": "é" * 70}})
    read, info = open_tokens(path)
    assert np.array_equal(read, ids) and info.vocab_size == 1000 and info.num_tokens == 777
    assert info.tokenizer == {"sha256": "ab" * 32, "note": "é" * 70}
    assert info.data_offset % HEADER_SIZE == 0 and info.data_offset > HEADER_SIZE


def test_a_file_without_metadata_reads_as_before(tmp_path):
    """The first version of the format: a 64-byte header with zero padding, then the ids."""
    ids = np.arange(50, dtype="<u2")
    path = tmp_path / "old.bin"
    path.write_bytes(struct.pack("<8sIQQ", b"TLMTOKS1", 2, 64, 50).ljust(64, b"\0") + ids.tobytes())
    read, info = open_tokens(path)
    assert np.array_equal(read, ids) and info.metadata == {} and info.tokenizer is None and info.data_offset == 64


def test_corrupt_metadata_is_a_clear_error(tmp_path):
    path = write_tokens(tmp_path / "t.bin", [1, 2, 3], 10, {"tokenizer": {"sha256": "x"}})
    raw = bytearray(path.read_bytes())
    raw[HEADER_SIZE] = ord("]")  # the JSON now starts with a bracket that closes nothing
    path.write_bytes(bytes(raw))
    with pytest.raises(TokenFileError, match="corrupt metadata block.*re-encode"):
        read_token_header(path)


def test_encoding_records_the_tokenizer(corpus):
    tokenizer = Tokenizer.from_dir(corpus / "tok")
    record = read_token_header(corpus / "train.bin").tokenizer
    assert record == {"sha256": tokenizer.fingerprint, "vocab_size": tokenizer.vocab_size,
                      "path": str((corpus / "tok").resolve())}
    other = Tokenizer(tokenizer.vocab, tokenizer.merges[:-1], ["<|endoftext|>"])
    assert other.fingerprint != tokenizer.fingerprint  # one merge fewer: another tokenizer


def test_a_run_takes_the_vocabulary_from_the_data_and_records_its_tokenizer(tmp_path, corpus, capsys):
    run = tmp_path / "run"
    code = train_cli.main([f"--train_data={corpus / 'train.bin'}", f"--val_data={corpus / 'valid.bin'}",
                           f"--out_dir={run}", "--max_iters=4", *TINY])
    assert code == 0
    assert "model.vocab_size = 320: the vocabulary of" in capsys.readouterr().err  # 300 padded to x64
    assert json.loads((run / "config.json").read_text())["config"]["model"]["vocab_size"] == 320
    recorded = load_tokenizer(None, run)  # what generate does without --tokenizer
    assert recorded.fingerprint == Tokenizer.from_dir(corpus / "tok").fingerprint
    assert recorded.source_dir == (run / "tokenizer").resolve()


def test_an_explicit_vocabulary_wins_and_a_wrong_tokenizer_is_refused(tmp_path, corpus, capsys):
    code = train_cli.main([f"--train_data={corpus / 'train.bin'}", f"--out_dir={tmp_path / 'a'}", "--max_iters=2",
                           "--model.vocab_size=512", *TINY])
    assert code == 0 and "model.vocab_size =" not in capsys.readouterr().err
    assert json.loads((tmp_path / "a" / "config.json").read_text())["config"]["model"]["vocab_size"] == 512
    vocab, merges = train_bpe(str(corpus / "valid.txt"), 280, ["<|endoftext|>"])
    Tokenizer(vocab, merges, ["<|endoftext|>"]).save(tmp_path / "other")
    code = train_cli.main([f"--train_data={corpus / 'train.bin'}", f"--out_dir={tmp_path / 'b'}", "--max_iters=2",
                           f"--tokenizer={tmp_path / 'other'}", *TINY])
    assert code == 2 and "did not make" in capsys.readouterr().err and not (tmp_path / "b").exists()


def test_a_moved_tokenizer_is_a_note_and_the_run_still_trains(tmp_path, corpus, capsys):
    tok = Tokenizer.from_dir(corpus / "tok")
    tok.save(tmp_path / "tok")
    encode_file(corpus / "valid.txt", tmp_path / "tok", tmp_path / "data.bin", num_workers=1)
    (tmp_path / "tok").rename(tmp_path / "moved")
    code = train_cli.main([f"--train_data={tmp_path / 'data.bin'}", f"--out_dir={tmp_path / 'run'}", "--max_iters=2",
                           *TINY])
    assert code == 0 and "which is gone or has changed" in capsys.readouterr().err
    assert not (tmp_path / "run" / "tokenizer").exists()


def test_resume_with_only_the_run_folder_continues_exactly(tmp_path, corpus, capsys):
    argv = [f"--train_data={corpus / 'train.bin'}", f"--val_data={corpus / 'valid.bin'}", "--max_iters=10",
            "--optimizer=muon", *TINY]
    assert train_cli.main([*argv, f"--out_dir={tmp_path / 'a'}"]) == 0  # uninterrupted
    cfg, _ = train_cli.config_from_args([*argv, f"--out_dir={tmp_path / 'b'}"])

    def interrupt_at_step_5(record):
        if record["kind"] == "train" and record["step"] == 5:
            os.kill(os.getpid(), signal.SIGTERM)

    assert run_training(cfg, hooks=[interrupt_at_step_5])["status"] == "interrupted"
    capsys.readouterr()
    assert train_cli.main(["--resume", f"--out_dir={tmp_path / 'b'}"]) == 0  # no other flag
    err = capsys.readouterr().err
    assert "with its saved configuration" in err and "changed settings" not in err
    losses = [[r["train_loss"] for r in read_metrics(tmp_path / d / "metrics.jsonl") if r["kind"] == "train"]
              for d in ("a", "b")]
    assert len(losses[0]) == 10 and losses[0] == losses[1]


def test_resume_refuses_a_model_change_and_takes_other_overrides(tmp_path, corpus, capsys):
    argv = [f"--train_data={corpus / 'train.bin'}", f"--out_dir={tmp_path / 'run'}", *TINY]
    assert train_cli.main([*argv, "--max_iters=3"]) == 0
    with pytest.raises(SystemExit) as stop:  # a flag error: argparse's usage line and exit code 2
        train_cli.main(["--resume", f"--out_dir={tmp_path / 'run'}", "--model.num_layers=2"])
    assert stop.value.code == 2
    assert "--model.num_layers cannot change on --resume" in capsys.readouterr().err
    assert train_cli.main(["--resume", f"--out_dir={tmp_path / 'run'}", "--max_iters=5"]) == 0
    assert "max_iters: 3 -> 5" in capsys.readouterr().err
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["steps"] == 5


def test_resume_of_a_run_with_a_damaged_config_names_the_file(tmp_path, corpus, capsys):
    run = tmp_path / "run"
    assert train_cli.main([f"--train_data={corpus / 'train.bin'}", f"--out_dir={run}", "--max_iters=2", *TINY]) == 0
    assert RunFolder(run).saved_config()["max_iters"] == 2
    assert RunFolder(tmp_path / "never-started").saved_config() is None
    text = (run / "config.json").read_text()
    (run / "config.json").write_text(text[: len(text) // 2])  # cut short, as by a full disk
    capsys.readouterr()
    with pytest.raises(SystemExit) as stop:
        train_cli.main(["--resume", f"--out_dir={run}"])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert "config.json is not a readable run config" in err and "JSONDecodeError" in err
    assert (run / "checkpoint.pt").is_file()  # nothing of the run was touched


def test_a_config_file_stands_in_for_flags_and_every_run_writes_the_one_that_repeats_it(tmp_path, corpus, capsys):
    first = tmp_path / "first"
    assert train_cli.main([f"--train_data={corpus / 'train.bin'}", f"--out_dir={first}", "--max_iters=3",
                           "--optimizer=muon", "--betas=0.8,0.9", *TINY]) == 0
    saved = json.loads((first / "config.json").read_text())["config"]
    again = tmp_path / "again"
    assert train_cli.main(["--config", str(first / "config.toml"), f"--out_dir={again}"]) == 0
    repeated = json.loads((again / "config.json").read_text())["config"]
    assert {k: v for k, v in repeated.items() if k != "out_dir"} == {k: v for k, v in saved.items() if k != "out_dir"}
    # flags given beside the file win over it
    (tmp_path / "mine.toml").write_text(f'train_data = "{corpus / "train.bin"}"\nmax_iters = 2\n'
                                        'progress = false\ndevice = "cpu"\n[model]\nd_model = 48\nnum_heads = 2\n'
                                        'num_layers = 1\ncontext_length = 16\n')
    cfg, _ = train_cli.config_from_args(["--config", str(tmp_path / "mine.toml"), "--max_iters=5"])
    assert (cfg.max_iters, cfg.model.d_model, cfg.model.vocab_size) == (5, 48, 320)


@pytest.mark.parametrize("text, message", [
    ("max_lrr = 1e-3\n", "unknown config key --max_lrr; did you mean --max_lr"),
    ("max_iters = [\n", "is not valid TOML"),
    ("[model]\nd_modle = 3\n", "did you mean --model.d_model"),
])
def test_a_bad_config_file_names_the_problem(tmp_path, text, message, capsys):
    (tmp_path / "bad.toml").write_text(text)
    with pytest.raises(SystemExit):
        train_cli.main(["--config", str(tmp_path / "bad.toml")])
    assert message in capsys.readouterr().err


def test_a_setting_given_twice_is_an_error(capsys):
    assert train_cli.main(["--max_lr=1e-3", "--max-lr", "2e-3"]) == 2
    assert "--max_lr and --max-lr set the same option" in capsys.readouterr().err
