"""CPU throughput of the cpu recipe's model: torch.compile, bf16 autocast, batch and threads, side by side.

One step is what the training loop does: forward + backward of the loss, global-norm clipping and
the optimizer (AdamW, or the recipe's Muon + AdamW), on the ``cpu`` recipe's model (4 x 256,
context 128, vocab 2,048). Every setting is timed in the same process, in alternating rounds (so
load on a shared machine falls on all alike); the figure of each is its median step, as tokens/s,
and its ratio to the plain setting (eager, float32, batch 16, AdamW). The first step of each
setting (compilation) is reported apart: that is what a run pays once out of its budget.

    flock /tmp/tritonlm-heavy.lock python -m bench.bench_cpu_recipe [--rounds 5] [--steps 6]

Writes ``bench/results/cpu_recipe_<device>.json`` and ``.png``.
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import sys
import time
from dataclasses import dataclass

import torch

from bench.common import RESULTS_DIR, device_slug
from tritonlm.train.build import build_model_and_optimizer
from tritonlm.train.functional import clip_grad_norm
from tritonlm.train.recipes import recipe_config
from tritonlm.train.step import LossModule
from tritonlm.util.atomic import write_json_atomic
from tritonlm.util.plotting import pyplot, save_figure
from tritonlm.util.runinfo import run_metadata


@dataclass(frozen=True)
class Setting:
    compiled: bool
    bf16: bool
    batch: int
    threads: int
    optimizer: str = "adamw"

    @property
    def name(self) -> str:
        return (f"{'compiled' if self.compiled else 'eager'} {'bf16' if self.bf16 else 'fp32'} "
                f"b{self.batch} t{self.threads} {self.optimizer}")


def settings(threads: list[int]) -> list[Setting]:
    grid = [Setting(c, b, batch, t) for c, b, batch, t in itertools.product((False, True), (False, True), (16, 32),
                                                                             threads)]
    return grid + [Setting(True, True, 32, max(threads), "muon")]  # the cpu recipe itself


def make_step(setting: Setting):
    """One training step of the cpu recipe's model under ``setting``, on fixed random tokens."""
    cfg = recipe_config("cpu-plain")
    cfg.optimizer, cfg.muon_lr = setting.optimizer, cfg.max_lr
    torch.manual_seed(0)
    model, optimizer = build_model_and_optimizer(cfg, torch.device("cpu"))
    loss_fn = LossModule(model, 0.0)
    if setting.compiled:
        loss_fn = torch.compile(loss_fn)
    ids = torch.randint(0, cfg.model.vocab_size, (setting.batch, cfg.model.context_length + 1),
                        generator=torch.Generator().manual_seed(1))

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=setting.bf16):
            loss = loss_fn(ids[:, :-1], ids[:, 1:])
        loss.backward()
        clip_grad_norm([p for p in model.parameters() if p.grad is not None], 1.0)
        optimizer.step()

    return step, setting.batch * cfg.model.context_length


def timed(step, threads: int) -> float:
    torch.set_num_threads(threads)
    start = time.perf_counter()
    step()
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds over every setting")
    parser.add_argument("--steps", type=int, default=6, help="steps per setting per round")
    parser.add_argument("--threads", default="1,2", help="thread counts to compare")
    args = parser.parse_args(argv)
    threads = [int(t) for t in args.threads.split(",")]
    grid = settings(threads)
    steps, first = {}, {}
    for setting in grid:  # build and warm up (the first step compiles)
        steps[setting], tokens = make_step(setting)
        first[setting] = timed(steps[setting], setting.threads)
        timed(steps[setting], setting.threads)
        print(f"{setting.name}: first step {first[setting]:.1f} s", flush=True)
    times = {s: [] for s in grid}
    for round_ in range(args.rounds):
        for setting in grid:
            times[setting] += [timed(steps[setting], setting.threads) for _ in range(args.steps)]
        print(f"round {round_ + 1}/{args.rounds} done", flush=True)
    base = Setting(False, False, 16, max(threads))
    rows = []
    for setting in grid:
        median = statistics.median(times[setting])
        tokens_per_s = setting.batch * 128 / median
        rows.append({"setting": setting.name, "compiled": setting.compiled, "bf16": setting.bf16,
                     "batch": setting.batch, "threads": setting.threads, "optimizer": setting.optimizer,
                     "median_step_s": median, "tokens_per_s": tokens_per_s, "first_step_s": first[setting]})
    base_speed = next(r["tokens_per_s"] for r in rows if r["setting"] == base.name)
    for row in rows:
        row["ratio_to_plain"] = row["tokens_per_s"] / base_speed
    report = {"benchmark": "cpu_recipe_throughput", "model": "cpu recipe (small_cpu: 4 x 256, context 128)",
              "rounds": args.rounds, "steps_per_round": args.steps, "baseline": base.name, "rows": rows,
              "metadata": run_metadata()}
    out = RESULTS_DIR / f"cpu_recipe_{device_slug()}.json"
    write_json_atomic(out, report)
    plot(rows, out.with_suffix(".png"))
    width = max(len(r["setting"]) for r in rows)
    for r in sorted(rows, key=lambda r: -r["tokens_per_s"]):
        print(f"{r['setting'].ljust(width)}  {r['tokens_per_s']:8,.0f} tokens/s  x{r['ratio_to_plain']:.2f}  "
              f"first step {r['first_step_s']:.1f} s")
    print(f"wrote {out}")
    return report


def plot(rows: list[dict], path) -> None:
    fig, ax = pyplot().subplots(figsize=(8, 0.32 * len(rows) + 1.2))
    ordered = sorted(rows, key=lambda r: r["tokens_per_s"])
    ax.barh([r["setting"] for r in ordered], [r["tokens_per_s"] for r in ordered], color="tab:blue")
    for i, r in enumerate(ordered):
        ax.text(r["tokens_per_s"], i, f" x{r['ratio_to_plain']:.2f}", va="center", fontsize=8)
    ax.set_xlabel("training tokens/s (median step; forward + backward + clipping + optimizer)")
    ax.set_title("cpu recipe model on this CPU: compile, bf16, batch, threads")
    ax.grid(axis="x", alpha=0.3)
    save_figure(fig, path, dpi=110)


if __name__ == "__main__":
    main(sys.argv[1:])
    sys.exit(0)
