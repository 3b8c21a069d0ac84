"""Data-parallel training: 2 CPU processes (gloo) against one process with the same global batch."""

from __future__ import annotations

import json
import os
import socket

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp

from tritonlm.model import ModelConfig
from tritonlm.tokenizer.tokenfile import write_tokens
from tritonlm.train import read_checkpoint
from tritonlm.train.config import TrainConfig
from tritonlm.train.distributed import env_dist_info, init_distributed, rank_device, shutdown_distributed
from tritonlm.train.loop import Trainer, run_training
from tritonlm.train.metrics_log import read_metrics

VOCAB = 48


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _config(tmp_path, batch_size: int, name: str, **overrides) -> TrainConfig:
    rng = np.random.default_rng(0)
    path = tmp_path / "train.tok"
    if not path.exists():
        write_tokens(path, rng.integers(0, VOCAB, size=5_000) // 3 * 3, VOCAB)  # learnable: only multiples of 3
    return TrainConfig(
        model=ModelConfig(vocab_size=VOCAB, context_length=12, d_model=32, num_layers=2, num_heads=2, kernels="torch"),
        train_data=str(path), val_data=str(path), out_dir=str(tmp_path / name), batch_size=batch_size,
        grad_accum_steps=2, max_iters=8, max_lr=1e-2, min_lr=1e-3, eval_interval=4, eval_iters=2, log_interval=1,
        checkpoint_interval=4, device="cpu", progress=False, **overrides,
    )


def _worker(rank: int, world_size: int, port: int, tmp_path, name: str = "ddp", overrides: dict | None = None) -> None:
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world_size),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    info = env_dist_info()
    device = rank_device("cpu", info)
    init_distributed(info, device)
    try:
        records = []
        cfg = _config(tmp_path, 2, name)
        for key, value in (overrides or {}).items():
            setattr(cfg, key, value)
        trainer = Trainer(cfg, info, device, [records.append])
        try:
            summary = trainer.run()
        finally:
            trainer.close()
        torch.save({"records": records, "weights": trainer.model.state_dict(), "steps": summary["steps"]},
                   tmp_path / f"{name}_rank{rank}.pt")
    finally:
        shutdown_distributed()


@pytest.mark.parametrize("optimizer", ["adamw", "muon"])
def test_two_gloo_ranks_match_one_process_with_the_same_global_batch(tmp_path, capsys, optimizer):
    torch.set_num_threads(1)
    settings = {"optimizer": optimizer, "muon_ns_dtype": "fp32"}  # fp32: rank and single agree to float rounding
    single = run_training(_config(tmp_path, 4, "single", **settings))
    mp.spawn(_worker, args=(2, _free_port(), tmp_path, "ddp", settings), nprocs=2, join=True)
    ranks = [torch.load(tmp_path / f"ddp_rank{r}.pt", weights_only=True) for r in range(2)]

    # both ranks end with identical weights
    for key, value in ranks[0]["weights"].items():
        assert torch.equal(value, ranks[1]["weights"][key]), key
    # and they match the single process that saw the same global batches
    single_weights = read_checkpoint(tmp_path / "single" / "checkpoint.pt")["model"]
    for key, value in single_weights.items():
        torch.testing.assert_close(ranks[0]["weights"][key], value, rtol=1e-4, atol=1e-5)
    losses = [[r["train_loss"] for r in recs if r["kind"] == "train"] for recs in (ranks[0]["records"], ranks[1]["records"])]
    expected = [r["train_loss"] for r in read_metrics(tmp_path / "single" / "metrics.jsonl") if r["kind"] == "train"]
    assert losses[0] == losses[1] and len(expected) == 8
    np.testing.assert_allclose(losses[0], expected, rtol=1e-5)

    # rank 0 alone wrote the run folder, with the global token count
    ddp_metrics = read_metrics(tmp_path / "ddp" / "metrics.jsonl")
    assert [r["step"] for r in ddp_metrics if r["kind"] == "train"] == list(range(1, 9))
    assert ddp_metrics[-1]["tokens"] == single["tokens"] == 8 * 2 * 4 * 12
    assert read_checkpoint(tmp_path / "ddp" / "checkpoint.pt")["iteration"] == 8
    assert not list((tmp_path / "ddp").glob(".*tmp*")) and not (tmp_path / "ddp" / ".lock.pid").exists()

    # the 2-rank run resumes on one process: it goes on (global batch halved) and says so
    resumed = _config(tmp_path, 4, "ddp", **settings)
    resumed.resume, resumed.max_iters = True, 10
    summary = run_training(resumed)
    assert summary["status"] == "completed" and summary["steps"] == 10
    assert "saved by 2 data-parallel rank(s), on 1" in capsys.readouterr().err


def test_budget_stop_is_agreed_by_both_ranks(tmp_path):
    """Each rank has its own clock: the stop decision is combined, so neither rank waits forever
    in a collective the other has left (the spawn would hang), and both run the same steps."""
    overrides = {"max_iters": None, "budget_seconds": 2.0, "eval_interval": 0, "checkpoint_interval": 0}
    mp.spawn(_worker, args=(2, _free_port(), tmp_path, "budget", overrides), nprocs=2, join=True)
    ranks = [torch.load(tmp_path / f"budget_rank{r}.pt", weights_only=True) for r in range(2)]
    assert ranks[0]["steps"] == ranks[1]["steps"] > 1
    summary = json.loads((tmp_path / "budget" / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["train_seconds"] <= 2.25


@pytest.mark.parametrize("env, message", [({"WORLD_SIZE": "2", "RANK": "5"}, "outside WORLD_SIZE")])
def test_bad_rank_layout_is_reported(monkeypatch, env, message):
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(RuntimeError, match=message):
        env_dist_info()
