"""Regenerating the results: every step is a valid command, finished steps are skipped, a failing
step stops the list (to resume later), and a dirty tree is refused."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tritonlm.train.experiments import regenerate
from tritonlm.train.experiments.cli import build_parser
from tritonlm.train.experiments.regenerate import STEPS, run_steps
from tritonlm.train.leaderboard.cli import resolve_job
from tritonlm.util.cli import RunFailed, UserError


def test_every_step_is_a_valid_command_writing_into_its_own_folder(tmp_path):
    assert len({s.name for s in STEPS}) == len(STEPS)
    for step in STEPS:
        args = step.command(tmp_path)[3:]  # after: python -m MODULE
        if step.module == "train.leaderboard":
            job = resolve_job(args)
            assert Path(job.train.out_dir) == step.folder(tmp_path)
        else:
            parsed, _ = build_parser().parse_known_args(args)
            assert Path(parsed.out) / (parsed.name or parsed.kind) == step.folder(tmp_path)


def _fake_runner(steps, root: Path, fail: str | None = None):
    """Stands in for subprocess.run: records the step, writes its done file unless told to fail."""
    calls = []

    def run(command):
        step = next(s for s in steps if s.command(root) == command)
        calls.append(step.name)
        if step.name == fail:
            return subprocess.CompletedProcess(command, 1)
        step.folder(root).mkdir(parents=True, exist_ok=True)
        (step.folder(root) / step.done_file).write_text("{}")
        return subprocess.CompletedProcess(command, 0)

    return run, calls


def test_finished_steps_are_skipped_and_a_failure_stops_the_list(tmp_path):
    steps = STEPS[:4]
    steps[1].folder(tmp_path).mkdir(parents=True)
    (steps[1].folder(tmp_path) / steps[1].done_file).write_text("{}")
    runner, calls = _fake_runner(steps, tmp_path, fail=steps[2].name)
    with pytest.raises(RunFailed, match=f"step {steps[2].name} failed"):
        run_steps(steps, tmp_path, runner)
    assert calls == [steps[0].name, steps[2].name]
    runner, calls = _fake_runner(steps, tmp_path)
    assert run_steps(steps, tmp_path, runner) == [steps[2].name, steps[3].name]  # resumed where it stopped
    assert calls == [steps[2].name, steps[3].name]


def test_a_tree_with_uncommitted_changes_is_refused(monkeypatch):
    monkeypatch.setattr(regenerate, "git_sha", lambda: "0123abcd+dirty")
    with pytest.raises(UserError, match="not a clean commit"):
        regenerate.require_clean_tree()
    monkeypatch.setattr(regenerate, "git_sha", lambda: "0123abcd")
    assert regenerate.require_clean_tree() == "0123abcd"


def test_the_results_page_shows_the_command_each_table_records(tmp_path):
    """A tokenizer experiment's table appears under the command its JSON file records (not a
    command written into the generator, which drifted from what made the file)."""
    import json

    from tritonlm.train.experiments.results import render

    folder = tmp_path / "results" / "encode-datasets"
    folder.mkdir(parents=True)
    (folder / "encode_datasets.md").write_text("## Encoding\n\n| corpus | tokens |\n|---|---|\n| a | 12 |\n")
    command = "python -m train.experiments encode-datasets --out runs/somewhere-else"
    (folder / "encode_datasets.json").write_text(json.dumps({"metadata": {"command": command}, "rows": [{"tokens": 12}]}))
    page = render(tmp_path / "results", tmp_path / "results.md")
    assert f"`{command}`" in page and "runs/experiments" not in page
    assert "[12](results/encode-datasets/encode_datasets.json#/rows/0/tokens)" in page
