"""``python -m model.accounting`` given bad inputs, through the real command line."""

from __future__ import annotations

import pytest

from conftest import assert_user_error, run_cli


@pytest.mark.parametrize("args, message", [
    (["--batch", "0"], r"--batch must be positive, got 0"),
    (["--memory-gb", "-5"], r"--memory-gb must be positive, got -5.0"),
    (["--context", "0"], r"--context must be positive"),
    (["--d_model", "100"], r"not divisible by num_heads"),
], ids=["batch", "memory", "context", "model-field"])
def test_bad_sizes(args, message):
    assert_user_error(run_cli("model.accounting", "--preset", "gpt2-small", *args), message)


def test_json_under_a_file_is_refused_and_nothing_is_written(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    proc = run_cli("model.accounting", "--preset", "tiny", "--json", blocker / "out.json")
    assert_user_error(proc, r"file is a file, not a folder")
    assert blocker.read_text() == "x"
