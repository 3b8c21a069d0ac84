"""The README's commands, as written, so an example can never go stale.

"Using the parts" is run line by line in a fresh folder holding a small corpus (``corpus.txt``,
``valid.txt``: generated stories), from the tokenizer to the Hugging Face export. Lines that take
minutes (the leaderboard, the experiment series, the GPU evidence) or that are templates (``...``)
are checked for their flags instead: each flag and subcommand they name must be one the command
accepts. A README line the test does not know fails it, so a new example gets a decision.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from tritonlm.corpora.stories import write_corpus

REPO = Path(__file__).resolve().parent.parent
README = (REPO / "README.md").read_text()

# Lines run as written (prefixes of the README's lines), in the README's order.
RUN_AS_WRITTEN = (
    "python -m tokenizer.train corpus.txt",
    "python -m tokenizer.encode corpus.txt",
    "python -m tokenizer.encode valid.txt",
    "python -m train.train --preset tiny --train_data=corpus.bin",
    "python -m train.train --resume",
    "python -m train.generate runs/a",
    "python -m train.export runs/a",
    "python -m model.accounting",
)
# Lines checked for their flags only, and why they are not run here.
FLAGS_ONLY = {
    "python -m train.train --preset tiny --kernels triton": "a template (...); Triton kernels need a GPU",
    "torchrun --nproc_per_node=2 -m train.train": "a template (...); tests/test_ddp.py runs torchrun",
    "python -m train.leaderboard": "minutes long; tests/test_leaderboard.py runs it on a short budget",
    "python -m train.experiments ": "templates; tests/test_experiments.py runs each series small",
    "python -m train.experiments.regenerate": "about two hours",
    "python -m tritonlm.kernels.compile_check": "minutes of compiling; tests/test_kernels_compile.py",
    "python -m bench.compile_table": "minutes of compiling",
    "python -m bench.gpu_evidence": "needs a GPU (the --smoke rehearsal: tests/test_gpu_evidence.py)",
}


def code_blocks(section: str) -> list[list[str]]:
    """The bash blocks of the README section whose heading is ``section`` (all, when None), as
    command lines without comments."""
    text = README if section is None else README.split(f"## {section}\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```bash\n(.*?)```", text, flags=re.S)
    return [[re.split(r"\s+#\s", line, maxsplit=1)[0].strip() for line in block.splitlines()
             if line.strip() and not line.lstrip().startswith("#")] for block in blocks]


USING_THE_PARTS = [line for block in code_blocks("Using the parts") for line in block]


def classify(line: str) -> str:
    if any(line.startswith(prefix) for prefix in RUN_AS_WRITTEN):
        return "run"
    if any(line.startswith(prefix) for prefix in FLAGS_ONLY):
        return "flags"
    return "unknown"


def environment() -> dict:
    """The repository root on the path, as for a user in it (the short ``train.…`` names)."""
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return env


def as_argv(line: str) -> list[str]:
    argv = shlex.split(line)
    if argv[0] == "python":
        argv[0] = sys.executable
    return argv


def test_every_readme_example_is_run_or_checked():
    assert len(USING_THE_PARTS) >= 15
    assert [line for line in USING_THE_PARTS if classify(line) == "unknown"] == []
    ran = [line for line in USING_THE_PARTS if classify(line) == "run"]
    assert len(ran) == len(RUN_AS_WRITTEN), "each run-as-written prefix names exactly one README line"


def test_the_readme_starts_with_the_install_and_test_commands_ci_runs():
    first = code_blocks(None)[0]
    assert len(first) == 2 and first[0].endswith("&& python -m train.leaderboard"), first
    assert first[0].startswith("pip install torch==2.13.0 -e \".[dev]\"")
    ci = (REPO / ".ci" / "run").read_text()
    assert first[1] in ci and "pip_install torch==2.13.0 -e \".[dev]\"" in ci


@pytest.mark.slow
def test_using_the_parts_runs_as_written(tmp_path):
    pytest.importorskip("safetensors")  # the export line writes safetensors (the dev extra has it)
    write_corpus(tmp_path / "corpus.txt", 300_000, seed=1)
    write_corpus(tmp_path / "valid.txt", 30_000, seed=2)
    outputs = {}
    for line in (line for line in USING_THE_PARTS if classify(line) == "run"):
        proc = subprocess.run(as_argv(line), cwd=tmp_path, env=environment(), capture_output=True,
                              text=True, timeout=600)
        assert proc.returncode == 0, f"{line}\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
        outputs[line.split()[2]] = outputs.get(line.split()[2], "") + proc.stdout + proc.stderr
    assert (tmp_path / "tok" / "merges.txt").is_file() and (tmp_path / "valid.bin").is_file()
    assert "the vocabulary of corpus.bin" in outputs["train.train"]  # taken from the data, and said
    assert "resuming runs/a with its saved configuration" in outputs["train.train"]
    assert "done: 100 steps" in outputs["train.train"]
    assert "Once upon a time" in outputs["train.generate"]
    assert {"model.safetensors", "config.json", "tokenizer.json"} <= {p.name for p in (tmp_path / "hf/a").iterdir()}
    assert "Largest batch" in outputs["model.accounting"]


def help_text(argv: list[str]) -> str:
    proc = subprocess.run([*argv, "--help"], cwd=REPO, env=environment(), capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, f"{argv} --help\n{proc.stderr[-2000:]}"
    return proc.stdout


def command_and_words(line: str) -> tuple[list[str], list[str]]:
    """The command (``python -m MODULE``, torchrun's own flags dropped) and the words after it."""
    argv = as_argv(line)
    at = argv.index("-m")
    return [sys.executable, "-m", argv[at + 1]], argv[at + 2:]


@pytest.mark.parametrize("line", [line for line in USING_THE_PARTS if classify(line) == "flags"])
def test_long_examples_name_only_flags_their_command_takes(line):
    command, words = command_and_words(line)
    text = help_text(command)
    flags = [word.split("=", 1)[0] for word in words if word.startswith("--")]
    subcommands = [name for word in words if not word.startswith("-") and "|" in word for name in word.split("|")]
    missing = [flag for flag in flags if not re.search(re.escape(flag) + r"[\s,=\]]", text)]
    choices = " ".join(re.findall(r"\{([^}]*)\}", text)).replace(",", " ").split()
    missing += [name for name in subcommands if name not in choices]
    assert text.startswith("usage:")
    assert missing == [], f"{line!r}: not in `{' '.join(command[1:])} --help`: {missing}"
