"""The training loop end to end on tiny models: run folder, exact resume, signals, NaN stop,
wall-clock budget, gradient accumulation, guard rails."""

from __future__ import annotations

import importlib.util
import json
import math
import os
import signal

import numpy as np
import pytest
import torch

from tritonlm.model import ModelConfig, TransformerLM
from tritonlm.tokenizer.tokenfile import write_tokens
from tritonlm.train import read_checkpoint
from tritonlm.train.config import TrainConfig
from tritonlm.train.loop import NonFiniteLossError, run_training
from tritonlm.train.metrics_log import read_metrics
from tritonlm.train.run_start import RunFolderError

VOCAB = 64

pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.fixture(scope="module")
def token_files(tmp_path_factory):
    """A learnable stream: a sparse random Markov chain over 64 ids (train and validation)."""
    folder = tmp_path_factory.mktemp("tokens")
    rng = np.random.default_rng(0)
    successors = rng.integers(0, VOCAB, size=(VOCAB, 3))
    ids = [0]
    for _ in range(20_000):
        ids.append(int(successors[ids[-1], rng.integers(0, 3)]))
    ids = np.array(ids)
    return (write_tokens(folder / "train.tok", ids[:16_000], VOCAB),
            write_tokens(folder / "val.tok", ids[16_000:], VOCAB))


def small_config(tmp_path, token_files, **overrides) -> TrainConfig:
    base = TrainConfig(
        model=ModelConfig(vocab_size=VOCAB, context_length=16, d_model=32, num_layers=2, num_heads=2, kernels="torch"),
        train_data=str(token_files[0]), val_data=str(token_files[1]), out_dir=str(tmp_path / "run"),
        batch_size=4, max_iters=12, max_lr=1e-2, min_lr=1e-3, warmup_fraction=0.1, eval_interval=4, eval_iters=2,
        log_interval=1, checkpoint_interval=4, device="cpu", progress=False,
    )
    for key, value in overrides.items():
        setattr(base, key, value)
    base.__post_init__()
    return base


def train_losses(run_dir) -> list[float]:
    return [r["train_loss"] for r in read_metrics(run_dir / "metrics.jsonl") if r["kind"] == "train"]


def test_run_writes_its_folder_and_learns(tmp_path, token_files):
    cfg = small_config(tmp_path, token_files, max_iters=40, eval_interval=10, log_interval=5)
    summary = run_training(cfg)
    run = tmp_path / "run"
    assert {p.name for p in run.iterdir()} >= {"config.json", "metrics.jsonl", "checkpoint.pt", "summary.json",
                                               "loss_vs_steps.png", "loss_vs_time.png"}
    records = read_metrics(run / "metrics.jsonl")
    train = [r for r in records if r["kind"] == "train"]
    val = [r["val_loss"] for r in records if r["kind"] == "val"]
    assert [r["step"] for r in train] == [5, 10, 15, 20, 25, 30, 35, 40]
    assert records[0]["kind"] == "run" and records[0]["config"]["max_iters"] == 40 and records[0]["metadata"]["git_sha"]
    assert set(train[0]) >= {"step", "tokens", "elapsed_s", "wall_s", "lr", "train_loss", "grad_norm", "tokens_per_s"}
    assert train[-1]["tokens"] == 40 * 4 * 16 and all(r["tokens_per_s"] > 0 for r in train)
    assert val[0] == pytest.approx(math.log(VOCAB), abs=0.5) and val[-1] < val[0] - 0.5  # it learns
    assert summary["status"] == "completed" and summary["steps"] == 40 and summary["final_val_loss"] == val[-1]
    saved = json.loads((run / "summary.json").read_text())
    assert saved["metadata"]["git_sha"] and json.loads((run / "config.json").read_text())["config"]["batch_size"] == 4
    assert read_checkpoint(run / "checkpoint.pt")["extra"]["train_config"]["max_iters"] == 40


def test_the_speedrun_levers_together_learn(tmp_path, token_files):
    """Muon, ReLU² with zero-initialised output projections, bf16 autocast and torch.compile on the
    CPU: the project's CPU recipe in miniature trains, learns and records what it used."""
    model = ModelConfig(vocab_size=VOCAB, context_length=16, d_model=32, num_layers=2, num_heads=2, ffn="relu2",
                        zero_init_output=True, kernels="torch")
    cfg = small_config(tmp_path, token_files, model=model, max_iters=30, eval_interval=10, optimizer="muon",
                       muon_lr=2e-2, dtype="bf16", compile=True)
    summary = run_training(cfg)
    val = [r["val_loss"] for r in read_metrics(tmp_path / "run" / "metrics.jsonl") if r["kind"] == "val"]
    assert summary["status"] == "completed" and val[-1] < val[0] - 0.5
    saved = read_checkpoint(tmp_path / "run" / "checkpoint.pt")
    assert saved["extra"]["train_config"]["optimizer"] == "muon" and saved["extra"]["train_config"]["compile"] is True
    assert not any(k.startswith("_orig_mod") for k in saved["model"])  # the plain model's weights, not the wrapper's


@pytest.mark.parametrize("signum, optimizer", [(signal.SIGTERM, "adamw"), (signal.SIGINT, "muon")],
                         ids=["sigterm-adamw", "sigint-muon"])
def test_signal_checkpoints_and_resume_reproduces_the_uninterrupted_run(tmp_path, token_files, signum, optimizer,
                                                                        capsys):
    settings = dict(grad_accum_steps=2, optimizer=optimizer, muon_lr=3e-2)
    reference = run_training(small_config(tmp_path / "a", token_files, **settings))

    def interrupt_at_step_6(record):
        if record["kind"] == "train" and record["step"] == 6:
            os.kill(os.getpid(), signum)

    cfg = small_config(tmp_path / "b", token_files, **settings)
    first = run_training(cfg, hooks=[interrupt_at_step_6])
    assert first["status"] == "interrupted" and first["steps"] == 6
    assert read_checkpoint(tmp_path / "b" / "run" / "checkpoint.pt")["iteration"] == 6
    cfg.resume = True
    second = run_training(cfg)
    assert "changed settings" not in capsys.readouterr().err
    assert second["status"] == "completed" and second["steps"] == reference["steps"] == 12
    a, b = tmp_path / "a" / "run", tmp_path / "b" / "run"
    assert train_losses(b) == train_losses(a)  # exactly, step for step
    val = [[r["val_loss"] for r in read_metrics(d / "metrics.jsonl") if r["kind"] == "val"] for d in (a, b)]
    assert val[0] == val[1] and len(val[0]) == 4  # steps 0, 4, 8, 12
    assert [r["kind"] for r in read_metrics(b / "metrics.jsonl") if r["kind"] in ("run", "resume")] == ["run", "resume"]
    wa, wb = (read_checkpoint(d / "checkpoint.pt")["model"] for d in (a, b))
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def scale_training_loss(monkeypatch, factor_at_call) -> None:
    """Multiply the training loss (not the evaluation's) by ``factor_at_call(n)`` on its n-th call."""
    calls = {"n": 0}
    original = TransformerLM.loss

    def scaled(self, ids, targets, **kw):
        loss = original(self, ids, targets, **kw)
        if torch.is_grad_enabled():
            calls["n"] += 1
            return loss * factor_at_call(calls["n"])
        return loss

    monkeypatch.setattr(TransformerLM, "loss", scaled)


def test_non_finite_loss_stops_with_a_message_and_keeps_the_last_good_checkpoint(tmp_path, token_files, monkeypatch):
    scale_training_loss(monkeypatch, lambda n: float("nan") if n >= 6 else 1.0)
    with pytest.raises(NonFiniteLossError, match=r"non-finite at step 6.*last good checkpoint is .*checkpoint.pt"):
        run_training(small_config(tmp_path, token_files))
    run = tmp_path / "run"
    saved = read_checkpoint(run / "checkpoint.pt")
    assert saved["iteration"] == 4 and all(torch.isfinite(t).all() for t in saved["model"].values())
    assert json.loads((run / "summary.json").read_text())["status"] == "diverged"


def test_budget_mode_stops_at_the_budget_with_the_schedule_at_its_minimum(tmp_path, token_files):
    budget = 3.0
    cfg = small_config(tmp_path, token_files, max_iters=None, budget_seconds=budget, eval_interval=50,
                       checkpoint_interval=0, log_interval=1)
    summary = run_training(cfg)
    assert summary["status"] == "completed" and "budget" in summary["message"]
    # stops before the step predicted to overrun (0.25 s of slack for a step slower than predicted)
    assert budget - 1.5 <= summary["train_seconds"] <= budget + 0.25
    lrs = [r["lr"] for r in read_metrics(tmp_path / "run" / "metrics.jsonl") if r["kind"] == "train"]
    assert max(lrs) == pytest.approx(cfg.max_lr, rel=0.05)
    assert lrs[-1] <= cfg.min_lr + 0.02 * (cfg.max_lr - cfg.min_lr)


def test_gradient_accumulation_equals_the_large_batch(tmp_path, token_files):
    big = run_training(small_config(tmp_path / "big", token_files, batch_size=8, max_iters=6))
    acc = run_training(small_config(tmp_path / "acc", token_files, batch_size=2, grad_accum_steps=4, max_iters=6))
    assert big["tokens"] == acc["tokens"]
    np.testing.assert_allclose(train_losses(tmp_path / "acc" / "run"), train_losses(tmp_path / "big" / "run"),
                               rtol=1e-5)


def test_resume_with_changed_settings_says_so(tmp_path, token_files, capsys):
    run_training(small_config(tmp_path, token_files, max_iters=2))
    resumed = run_training(small_config(tmp_path, token_files, max_iters=4, max_lr=2e-2, resume=True))
    assert resumed["steps"] == 4
    assert "changed settings (max_iters: 2 -> 4, max_lr: 0.01 -> 0.02)" in capsys.readouterr().err


def test_guard_rails(tmp_path, token_files):
    cfg = small_config(tmp_path, token_files, max_iters=2)
    with pytest.raises(RunFolderError, match="no checkpoint"):
        run_training(small_config(tmp_path, token_files, resume=True))
    run_training(cfg)
    with pytest.raises(RunFolderError, match="already holds a run.*--resume.*--overwrite"):
        run_training(cfg)
    small = small_config(tmp_path / "v", token_files)
    small.model = ModelConfig(vocab_size=32, context_length=16, d_model=32, num_layers=1, num_heads=2)
    with pytest.raises(ValueError, match="vocabulary of 64 but model.vocab_size is 32"):
        run_training(small)
    with pytest.raises(ValueError, match="train_data is not set"):
        run_training(small_config(tmp_path / "n", token_files, train_data=""))
    if importlib.util.find_spec("tensorboard") is None:
        with pytest.raises(RuntimeError, match="pip install tensorboard"):
            run_training(small_config(tmp_path / "tb", token_files, logger="tensorboard"))
    else:
        run_training(small_config(tmp_path / "tb", token_files, logger="tensorboard", max_iters=2))
        assert any((tmp_path / "tb" / "run" / "tensorboard").iterdir())


def test_command_line_run_exits_cleanly_on_ctrl_c_with_a_checkpoint(tmp_path, token_files):
    import subprocess
    import sys
    import time

    run = tmp_path / "cli"
    cmd = [sys.executable, "-m", "train.train", "--preset=tiny", f"--train_data={token_files[0]}",
           f"--val_data={token_files[1]}", f"--out_dir={run}", f"--model.vocab_size={VOCAB}", "--max_iters=100000",
           "--log_interval=1", "--checkpoint_interval=0", "--eval_interval=0"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.time() + 60
    while time.time() < deadline and len(train_losses(run) if (run / "metrics.jsonl").exists() else []) < 3:
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "interrupted at step" in out and "--resume" in out and "Traceback" not in err
    saved = read_checkpoint(run / "checkpoint.pt")
    assert saved["iteration"] >= 3 and json.loads((run / "summary.json").read_text())["status"] == "interrupted"


def test_metrics_reader_drops_a_cut_short_last_line_and_rejects_corruption(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 1, "kind": "train"}\n{"step": 2, "kind": "train"}\n{"step": 3, "ki')
    assert [r["step"] for r in read_metrics(path)] == [1, 2]
    path.write_text('{"step": 1}\nnot json\n{"step": 3}\n')
    with pytest.raises(ValueError, match="line 2 is not valid JSON"):
        read_metrics(path)


def test_a_diverging_run_keeps_the_last_healthy_checkpoint(tmp_path, token_files, monkeypatch):
    """The loss blows up (finite, gradients exploding) at step 14, and turns NaN at step 19: the
    checkpoint of step 16, made while diverging, is skipped; the error names the step-12 one."""
    # from step 14 still finite: without the health check these weights would be saved
    scale_training_loss(monkeypatch, lambda n: float("nan") if n >= 19 else 1e4 if n >= 14 else 1.0)
    cfg = small_config(tmp_path, token_files, max_iters=24)
    with pytest.raises(NonFiniteLossError, match=r"non-finite at step 19.*checkpoint.pt \(step 12\)"):
        run_training(cfg)
    run = tmp_path / "run"
    assert read_checkpoint(run / "checkpoint.pt")["iteration"] == 12
    warnings = [r for r in read_metrics(run / "metrics.jsonl") if r["kind"] == "warning"]
    assert [w["step"] for w in warnings] == [16] and "checkpoint at step 16 skipped" in warnings[0]["message"]
