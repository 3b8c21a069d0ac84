"""How far an interrupted leaderboard run got: ``progress.json`` and ``val_loss_vs_tokens.png``.

A leaderboard run stopped by a signal keeps its checkpoint and resumes with ``--resume``; a long
one (the handout-shape presets take hours on a CPU) may be stopped many times before it finishes.
Each stop writes what a reader asks of it: steps and tokens done against the goal, the last
periodic validation loss (on ``eval_iters`` batches, not the whole set: that is measured once,
at the end), the corpus's entropy floor when it is known, the rate so far and the time left at
that rate, with the curve drawn against the goal. A finished run's report replaces it.
"""

from __future__ import annotations

import math
import os

from tritonlm.train.config import TrainConfig
from tritonlm.train.presentation import format_duration, plot_val_loss_vs_tokens
from tritonlm.train.run_folder import RunFolder
from tritonlm.util.atomic import write_json_atomic


def tokens_per_step(train: TrainConfig, world_size: int = 1) -> int:
    return train.batch_size * train.grad_accum_steps * train.model.context_length * world_size


def segments(metrics: list[dict]) -> list[dict]:
    """Where each stretch of the run began (the first start, then every resume): its step and the
    commit, machine, command and date that ran it, since a long run spans several of them."""
    keys = ("git_sha", "device", "command", "date")
    return [{"step": r["step"], **{k: r.get("metadata", {}).get(k) for k in keys}}
            for r in metrics if r.get("kind") in ("run", "resume")]


def build_progress(preset: str, train: TrainConfig, summary: dict, floor: float | None, metrics: list[dict]) -> dict:
    """progress.json of a run stopped after ``summary['steps']`` of ``train.max_iters`` steps."""
    from tritonlm.util.runinfo import run_metadata

    steps, seconds = summary.get("steps") or 0, summary.get("train_seconds") or 0.0
    goal = train.max_iters * tokens_per_step(train, summary.get("world_size") or 1) if train.max_iters else None
    evaluations = [r for r in metrics if r.get("kind") == "val" and r.get("val_loss") is not None]
    last_val = evaluations[-1]["val_loss"] if evaluations else None
    known = floor is not None and last_val is not None and math.isfinite(last_val)
    left = train.max_iters - steps if train.max_iters else None
    return {
        "preset": preset,
        "status": summary.get("status"),
        "message": summary.get("message"),
        "steps": steps,
        "max_iters": train.max_iters,
        "fraction_done": steps / train.max_iters if train.max_iters else None,
        "tokens_seen": summary.get("tokens"),
        "tokens_goal": goal,
        "last_periodic_val_loss": last_val,
        "last_val_step": evaluations[-1]["step"] if evaluations else None,  # evaluations are every eval_interval steps
        # the periodic evaluation's sample of the validation set, in tokens
        "periodic_val_tokens": train.eval_iters * train.batch_size * train.model.context_length,
        "val_entropy_floor": floor,
        "last_val_above_floor": last_val - floor if known else None,
        "final_train_loss": summary.get("final_train_loss"),
        "training_seconds": seconds,
        "tokens_per_second": summary.get("tokens_per_s"),
        "seconds_left_at_this_rate": left * seconds / steps if steps and left is not None else None,
        "segments": segments(metrics),
        "config": train.to_dict(),
        "device": summary.get("device"),
        "metadata": run_metadata(),
    }


def write_progress(run_dir: str | os.PathLike, progress: dict, metrics: list[dict]) -> None:
    """progress.json and the curve against the goal (val_loss_vs_tokens.png) in the run folder."""
    folder = RunFolder(run_dir)
    write_json_atomic(folder.progress, progress)
    floor = progress["val_entropy_floor"]
    plot_val_loss_vs_tokens(metrics, folder.progress_plot, progress_title(progress), progress["tokens_goal"],
                            {"entropy floor (best possible model)": floor} if floor is not None else None)


def how_far(progress: dict) -> str:
    """"step 541 of 4,883 (11%)"."""
    done = f"step {progress['steps']:,}"
    if progress["max_iters"]:
        done += f" of {progress['max_iters']:,} ({progress['fraction_done']:.0%})"
    return done


def progress_title(progress: dict) -> str:
    return f"{progress['preset']} preset, stopped at {how_far(progress)}"


def describe_progress(progress: dict) -> str:
    """One line for the console: how far, the last loss, and the time left at this rate."""
    parts = [f"stopped at {how_far(progress)}"]
    if progress["last_periodic_val_loss"] is not None:
        parts.append(f"val loss {progress['last_periodic_val_loss']:.4f} at step {progress['last_val_step']:,} "
                     f"(on {progress['periodic_val_tokens']:,} tokens)")
    if progress["seconds_left_at_this_rate"] is not None:
        parts.append(f"about {format_duration(progress['seconds_left_at_this_rate'])} of training left at this rate")
    return "; ".join(parts)
