"""The last two stages: training throughput of the h100 preset model (reference vs Triton
kernels, eager vs compiled) with a profile of the fastest variant, and a short leaderboard run.

Each compiled variant's gradients are also compared with eager ones at the same weights and
batch: a compiler bug that corrupts gradients (torch 2.11 had one, pytorch/pytorch#180642) leaves
the loss and the throughput looking normal, so only this comparison shows it.

Each variant is compiled afresh (Dynamo reset first) and warmed up (compilation, autotuning)
before its timed steps; the warm-up seconds are recorded beside the step time. A variant, or the
profile, that raises is recorded and the next one still runs. The leaderboard runs as a child
process killed at the end of the box."""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import time
from pathlib import Path

import torch

from bench.common import device_peaks
from tritonlm.model.accounting import training_flops
from tritonlm.train import clip_grad_norm
from tritonlm.train.build import build_model_and_optimizer
from tritonlm.train.recipes import recipe_config
from tritonlm.train.step import LossModule

from . import children
from .record import Evidence, error_fields

# (kernels, compiled): the headline (Triton, compiled) first, so a short box still measures it.
VARIANTS = (("triton", True), ("torch", True), ("triton", False), ("torch", False))
# Worst relative error (per parameter, in norm) a compiled step's gradients may show against
# eager ones. bf16 autocast rounds differently when inductor fuses ops: 2.1e-2 at worst (a norm
# weight) for a 2-layer model of the h100 recipe on the CPU; a misrouted gradient reads ~1.
GRADIENT_TOLERANCE = {"bf16": 0.15, "fp32": 1e-4}


def _train_config(smoke: bool, kernels_backend: str, compiled: bool):
    """The h100 preset's training setup; in smoke runs a tiny model of the same recipe on the CPU."""
    cfg = recipe_config("h100")
    model = dataclasses.replace(cfg.model, kernels=kernels_backend)
    if smoke:
        model = dataclasses.replace(model, vocab_size=128, context_length=32, d_model=32, num_layers=1, num_heads=2,
                                    d_ff=64)
    return dataclasses.replace(cfg, model=model, device="cuda" if torch.cuda.is_available() else "cpu",
                               dtype="bf16" if torch.cuda.is_available() else "fp32", compile=compiled,
                               batch_size=2 if smoke else 32, grad_accum_steps=1)


def _step_fn(cfg, device: torch.device, smoke: bool):
    """One training step of ``cfg`` as a closure, the model, and a closure that compares the
    (compiled) loss's gradients with eager ones at the model's current weights."""
    model, optimizer = build_model_and_optimizer(cfg, device)
    eager_loss_fn = LossModule(model, cfg.z_loss)
    loss_fn = eager_loss_fn
    if cfg.compile:
        loss_fn = torch.compile(eager_loss_fn, backend="aot_eager" if smoke else "inductor")
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(0, cfg.model.vocab_size, (cfg.batch_size, cfg.model.context_length + 1), generator=gen)
    ids = ids.to(device)
    use_autocast = cfg.dtype == "bf16"

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_autocast):
            loss = loss_fn(ids[:, :-1], ids[:, 1:])
        loss.backward()
        clip_grad_norm([p for p in model.parameters() if p.grad is not None], cfg.grad_clip)
        optimizer.step()

    def check_gradients() -> dict:
        def autocast():
            return torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_autocast)
        return gradient_agreement(model, loss_fn, eager_loss_fn, ids, autocast, GRADIENT_TOLERANCE[cfg.dtype])

    return step, model, check_gradients


def gradient_agreement(model: torch.nn.Module, loss_fn, reference_fn, ids: torch.Tensor, autocast,
                       tolerance: float) -> dict:
    """The gradients of ``loss_fn`` against those of ``reference_fn`` (the same loss, eager) on one
    batch at the model's current weights: per parameter ``|g - g_ref| / |g_ref|`` (norms), the
    worst of them, and whether it is within ``tolerance`` (a parameter without a gradient fails)."""
    grads = []
    for fn in (loss_fn, reference_fn):
        model.zero_grad(set_to_none=True)
        with autocast():
            loss = fn(ids[:, :-1], ids[:, 1:])
        loss.backward()
        grads.append({n: p.grad.detach().float().clone() for n, p in model.named_parameters() if p.grad is not None})
    model.zero_grad(set_to_none=True)
    got, want = grads
    errors = {n: float((got[n] - g).norm() / g.norm().clamp_min(1e-30)) if n in got else float("inf")
              for n, g in want.items()}
    worst = max(errors, key=errors.get)
    return {"worst_relative_error": errors[worst], "worst_parameter": worst, "parameters": len(errors),
            "tolerance": tolerance, "agrees": errors[worst] <= tolerance}


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def _profile_table(step, path: Path) -> str:
    """torch.profiler over 3 steps: the top kernels by device time (CPU time in smoke runs)."""
    activities = [torch.profiler.ProfilerActivity.CPU]
    sort = "cpu_time_total"
    if torch.cuda.is_available():
        activities.append(torch.profiler.ProfilerActivity.CUDA)
        sort = "cuda_time_total"
    with torch.profiler.profile(activities=activities) as prof:
        for _ in range(3):
            step()
        _sync()
    table = prof.key_averages().table(sort_by=sort, row_limit=15, max_name_column_width=60)
    path.write_text(table)
    return table


def _record_profile(ev: Evidence, step, label: dict) -> bool:
    """Profile three steps and record the table; a profiler failure is recorded, not raised."""
    try:
        table = _profile_table(step, ev.out / "training_profile.txt")
    except Exception as e:  # the throughput of the other variants matters more than the profile
        ev.add("training", "profile", **label, table="", **error_fields(e))
        return False
    ev.add("training", "profile", **label, table=table)
    return True


def _record_gradients(ev: Evidence, check_gradients, label: dict) -> None:
    """Compare the compiled variant's gradients with eager ones; a failure is recorded, not raised."""
    try:
        ev.add("training", "gradients", **label, **check_gradients())
    except Exception as e:  # the throughput of the other variants still matters
        ev.add("training", "gradients", **label, agrees=False, **error_fields(e))


def throughput_stage(ev: Evidence, seconds: float, smoke: bool) -> None:
    clock = ev.stage("training", seconds)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    peak = (device_peaks().get("bf16_tflops") or 0) * 1e12 if device.type == "cuda" else 0
    warmup, timed = (1, 1) if smoke else (3, 20)
    profiled = False
    for kernels_backend, compiled in VARIANTS:
        reserve = (70 if compiled else 15) if not smoke else 2
        label = {"kernels": kernels_backend, "compiled": compiled}
        if clock.expired(reserve=reserve):
            ev.add("training", "throughput", **label, note=f"skipped: under {reserve} s left in the box")
            continue
        cfg = _train_config(smoke, kernels_backend, compiled)
        torch._dynamo.reset()  # this variant's graphs only: no guards or recompiles left by the last one
        try:
            step, model, check_gradients = _step_fn(cfg, device, smoke)
            start = time.perf_counter()
            for _ in range(warmup):
                step()
            _sync()
            warmup_s = time.perf_counter() - start
            start = time.perf_counter()
            for _ in range(timed):
                step()
            _sync()
            step_s = (time.perf_counter() - start) / timed
        except Exception as e:  # recorded: one variant failing must not lose the others
            ev.add("training", "throughput", **label, note=f"{type(e).__name__}: {e}"[:400])
            continue
        tokens = cfg.batch_size * cfg.model.context_length
        flops = training_flops(cfg.model, cfg.model.context_length, cfg.batch_size)
        ev.add("training", "throughput", **label, batch=cfg.batch_size, context=cfg.model.context_length,
               dtype="bf16 autocast" if cfg.dtype == "bf16" else cfg.dtype,
               warmup_seconds=round(warmup_s, 2), step_ms=step_s * 1e3, tokens_per_s=tokens / step_s,
               tflops=flops / step_s / 1e12, mfu=(flops / step_s / peak) if peak else None,
               parameters=model.num_parameters())
        if compiled:
            _record_gradients(ev, check_gradients, label)
        if kernels_backend == "triton" and compiled and not profiled and not clock.expired(reserve=reserve):
            profiled = _record_profile(ev, step, label)
        del step, model
        if device.type == "cuda":
            torch.cuda.empty_cache()
    ev.finish_stage(clock)


def leaderboard_args(smoke: bool, budget_seconds: float, out: Path) -> list[str]:
    """``train.leaderboard`` with the h100 preset on the built-in corpus, sized for a short run
    (each flag once: the job refuses a setting given twice)."""
    flags = {"--eval_interval": "100", "--eval_iters": "10", "--num_samples": "2", "--sample_tokens": "64",
             "--checkpoint_interval": "100000"}
    if smoke:
        flags.update({"--device": "cpu", "--dtype": "fp32", "--compile": "false", "--vocab_size": "300",
                      "--tokenizer_train_bytes": "100000", "--story_train_bytes": "200000",
                      "--story_val_bytes": "300", "--model.d_model": "32", "--model.num_layers": "1",
                      "--model.qk_norm": "false", "--model.num_heads": "2", "--model.context_length": "32",
                      "--batch_size": "4", "--grad_accum_steps": "1", "--eval_iters": "2", "--eval_interval": "5",
                      "--sample_tokens": "8", "--num_samples": "1", "--eval_batch_size": "8"})
    else:  # a 4k vocabulary on 10 MB and a 60 MB corpus: seconds to prepare, ~2 passes in 90 s at ~500k tokens/s
        flags.update({"--vocab_size": "4096", "--tokenizer_train_bytes": "10000000", "--story_train_bytes": "60000000",
                      "--story_val_bytes": "1000000", "--batch_size": "32"})
    args = [sys.executable, "-m", "tritonlm.train.leaderboard", "--preset", "h100", "--budget", f"{budget_seconds:g}s",
            "--out", str(out), "--overwrite", "true"]
    return args + [item for pair in flags.items() for item in pair]


def leaderboard_stage(ev: Evidence, seconds: float, smoke: bool, train_seconds: float) -> None:
    """Run the leaderboard job in a subprocess (its own time limit: the stage's box) and record
    its report; its run folder, log, plots and samples stay under ``OUT/leaderboard``."""
    clock = ev.stage("leaderboard", seconds)
    out = ev.out / "leaderboard"
    args = leaderboard_args(smoke, train_seconds, out)
    env = dict(os.environ)
    env.setdefault("TRITONLM_CACHE", str(ev.out / "cache"))
    log = ev.out / "leaderboard.log"
    child = children.run_one(children.Child("leaderboard", args, log), max(clock.left(), 1.0), env)
    status = "killed at the end of the time box" if child.timed_out else f"exit {child.exit_code}"
    report = _find_report(out)
    ev.add("leaderboard", "run", command=" ".join(args[1:]), status=status, log=str(log.name),
           report=report)
    ev.finish_stage(clock, "done" if status == "exit 0" else status)


def _find_report(out: Path) -> dict | None:
    """The leaderboard's JSON report, wherever in its run folder it was written."""
    for path in sorted(out.rglob("report.json")):
        try:
            return {"path": str(path.relative_to(out.parent)), **json.loads(path.read_text())}
        except (OSError, json.JSONDecodeError):
            continue
    return None
