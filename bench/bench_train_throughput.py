"""CPU training throughput: this project's stack vs the same model from torch built-ins.

Both sides train the same architecture (pre-norm RMSNorm, RoPE, causal MHSA, SwiGLU, untied
LM head) with the same shapes, batch and optimizer settings; one step is forward + backward +
global-norm clipping + AdamW. Ours: ``model.TransformerLM`` (reference kernels) with
``train.AdamW`` and ``train.clip_grad_norm``. Peer: ``nn.Linear``/``nn.Embedding``/``nn.RMSNorm``,
``F.scaled_dot_product_attention``, ``F.cross_entropy``, ``torch.optim.AdamW`` and
``clip_grad_norm_``. The two are timed in alternating rounds in the same process (so machine
load hits both alike); the figure is the median step time of each, as tokens/s, and the ratio.

    flock /tmp/tritonlm-heavy.lock python -m bench.bench_train_throughput [--rounds 7] [--threads 2]

Writes ``bench/results/train_throughput_<device>_threads<N>.json``. On a shared machine the
median is what load leaves; the best-step ratio is reported beside it.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from bench.common import device_slug
from tritonlm.model import ModelConfig, TransformerLM
from tritonlm.train import AdamW, clip_grad_norm
from tritonlm.util.atomic import write_json_atomic
from tritonlm.util.runinfo import run_metadata

RESULTS = Path(__file__).resolve().parent / "results"


def cpu_tinystories_shape() -> ModelConfig:
    """The TinyStories model's structure (4 layers, pre-norm, RoPE, SwiGLU, head dim 32),
    narrowed (d_model 256, context 128, vocab 4096) so a step takes well under a second."""
    return ModelConfig(vocab_size=4096, context_length=128, d_model=256, num_layers=4, num_heads=8, d_ff=704,
                       kernels="torch")


# ------------------------------------------------------------------------ the built-in peer
class RoPE(nn.Module):
    def __init__(self, head_dim: int, max_len: int, theta: float):
        super().__init__()
        inv_freq = theta ** (-torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim)
        angles = torch.arange(max_len, dtype=torch.float32)[:, None] * inv_freq  # (T, d/2)
        self.register_buffer("cos", angles.cos(), persistent=False)
        self.register_buffer("sin", angles.sin(), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, h, T, d): rotate pairs (x[2k], x[2k+1])
        T = x.shape[-2]
        cos, sin = self.cos[:T], self.sin[:T]
        even, odd = x[..., 0::2], x[..., 1::2]
        return torch.stack((even * cos - odd * sin, even * sin + odd * cos), dim=-1).flatten(-2)


class BuiltinBlock(nn.Module):
    def __init__(self, cfg: ModelConfig, rope: RoPE):
        super().__init__()
        d, self.h = cfg.d_model, cfg.num_heads
        self.ln1, self.ln2 = nn.RMSNorm(d, eps=1e-5), nn.RMSNorm(d, eps=1e-5)
        self.qkv = nn.ModuleList(nn.Linear(d, d, bias=False) for _ in range(3))
        self.out = nn.Linear(d, d, bias=False)
        self.w1, self.w3 = nn.Linear(d, cfg.d_ff, bias=False), nn.Linear(d, cfg.d_ff, bias=False)
        self.w2 = nn.Linear(cfg.d_ff, d, bias=False)
        self.rope = rope

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, D = x.shape
        h = self.ln1(x)
        q, k, v = (p(h).view(B, T, self.h, D // self.h).transpose(1, 2) for p in self.qkv)  # (B, h, T, d)
        att = F.scaled_dot_product_attention(self.rope(q), self.rope(k), v, is_causal=True)
        x = x + self.out(att.transpose(1, 2).reshape(B, T, D))
        h = self.ln2(x)
        return x + self.w2(F.silu(self.w1(h)) * self.w3(h))


class BuiltinLM(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        rope = RoPE(cfg.head_dim, cfg.context_length, cfg.rope_theta)
        self.emb = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.blocks = nn.ModuleList(BuiltinBlock(cfg, rope) for _ in range(cfg.num_layers))
        self.ln_f = nn.RMSNorm(cfg.d_model, eps=1e-5)
        self.head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)

    def loss(self, ids: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        x = self.emb(ids)
        for block in self.blocks:
            x = block(x)
        logits = self.head(self.ln_f(x))
        return F.cross_entropy(logits.flatten(0, 1), targets.flatten())


# ----------------------------------------------------------------------------------- timing
def make_step(model: nn.Module, optimizer: torch.optim.Optimizer, clip, ids, targets):
    """One training step; returns (forward+backward seconds, clip+optimizer seconds)."""

    def step() -> tuple[float, float]:
        t0 = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        loss = model.loss(ids, targets)
        loss.backward()
        t1 = time.perf_counter()
        clip(model.parameters(), 1.0)
        optimizer.step()
        return t1 - t0, time.perf_counter() - t1

    return step


def time_steps(step, n: int) -> list[tuple[float, float]]:
    return [step() for _ in range(n)]


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=7, help="alternating timing rounds")
    parser.add_argument("--steps", type=int, default=5, help="timed steps per side per round")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    cfg = cpu_tinystories_shape()
    torch.manual_seed(0)
    ids = torch.randint(0, cfg.vocab_size, (args.batch, cfg.context_length))
    targets = torch.randint(0, cfg.vocab_size, (args.batch, cfg.context_length))
    hyper = dict(lr=1e-3, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1)
    ours_model, peer_model = TransformerLM.from_config(cfg), BuiltinLM(cfg)
    n_ours = sum(p.numel() for p in ours_model.parameters())
    n_peer = sum(p.numel() for p in peer_model.parameters())
    assert n_ours == n_peer, (n_ours, n_peer)  # same architecture, same size
    sides = {
        "tritonlm": make_step(ours_model, AdamW(ours_model.parameters(), **hyper), clip_grad_norm, ids, targets),
        "torch_builtins": make_step(peer_model, torch.optim.AdamW(peer_model.parameters(), **hyper),
                                    torch.nn.utils.clip_grad_norm_, ids, targets),
    }
    for step in sides.values():  # warm-up: allocator, first-call overheads
        time_steps(step, 2)
    times = {name: [] for name in sides}
    for _ in range(args.rounds):
        for name, step in sides.items():
            times[name] += time_steps(step, args.steps)
    tokens = args.batch * cfg.context_length
    result = {}
    for name, phases in times.items():
        totals = [a + b for a, b in phases]
        result[name] = {"median_step_s": statistics.median(totals), "min_step_s": min(totals),
                        "tokens_per_s": tokens / statistics.median(totals), "steps_timed": len(totals),
                        "median_forward_backward_s": statistics.median(a for a, _ in phases),
                        "median_clip_optimizer_s": statistics.median(b for _, b in phases)}
    ratio = result["tritonlm"]["tokens_per_s"] / result["torch_builtins"]["tokens_per_s"]
    # best steps: what each side does when the (shared) machine leaves it alone
    best_ratio = result["torch_builtins"]["min_step_s"] / result["tritonlm"]["min_step_s"]
    report = {
        "benchmark": "train_throughput_cpu", "model": cfg.to_dict(), "parameters": n_ours,
        "batch_size": args.batch, "tokens_per_step": tokens, "threads": args.threads,
        "results": result, "ratio_tritonlm_over_builtins": ratio, "ratio_best_step": best_ratio, "target_ratio": 0.9,
        "metadata": run_metadata(),
    }
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"train_throughput_{device_slug()}_threads{args.threads}.json"
    write_json_atomic(out, report)
    for name, r in result.items():
        print(f"{name:15s} {r['tokens_per_s']:10,.0f} tokens/s  (median step {r['median_step_s'] * 1e3:.1f} ms: "
              f"fwd+bwd {r['median_forward_backward_s'] * 1e3:.1f} ms, clip+AdamW {r['median_clip_optimizer_s'] * 1e3:.1f} ms)")
    print(f"ratio tritonlm / torch built-ins: {ratio:.3f} median, {best_ratio:.3f} best step (target >= 0.9)  -> {out}")
    return report


if __name__ == "__main__":
    main()
