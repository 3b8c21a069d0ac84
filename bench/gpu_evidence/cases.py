"""What the evidence command measures: each op at its benchmark shapes, with its providers (Triton
and the peers of ``peers.py``) and the work per direction (bytes for the memory-bound ops, FLOPs
for attention and the fused LM head).

GPU shapes are LM shapes (rows 8k-16k, hidden 1k-4k, vocab 32k and 50k, attention sequences 1k to
8k at 16k tokens per batch); smoke shapes are tiny but still take every code path of the
interpreted kernels (rows longer than one block, several key tiles, several vocab tiles).

Every case is checked by the correctness gate in bfloat16 (the timed dtype) before Triton is
timed on it, so no shape reaches a Triton kernel for the first time in the evidence process; the
cases with ``gate_float32`` are checked in float32 too. Providers are listed cheapest to set up
first, ``torch.compile`` last: a time box that runs out mid-case loses the compile, not the rest.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch

from tritonlm import kernels
from . import peers
from .plan import OPS

DIRECTIONS = ("fwd", "bwd", "fwd+bwd")
# The eager and compiled attention formulas materialise (batch, heads, seq, seq) float32 scores.
MAX_SCORES_GIB = 8.0
SOFTCAP, Z_LOSS = 30.0, 1e-4  # the leaderboard recipe's loss options, on for the fused LM head


@dataclass
class Case:
    """One op at one shape."""

    op: str
    name: str
    shapes: list[tuple[int, ...]]  # float inputs, made with ``inputs``
    providers: dict[str, Callable | str]  # name -> function of the inputs, or why it is skipped
    reference: Callable  # the built-in (or formula) the correctness gate compares against, in fp32
    bytes: dict[str, float] | None = None  # minimum memory traffic per direction (bf16)
    flops: dict[str, float] | None = None  # useful FLOPs per direction
    vocab: int = 0  # > 0: a targets tensor of class ids in [0, vocab) follows the float inputs
    gate_float32: bool = True  # checked in float32 as well as bfloat16 by the correctness gate
    scales: list[float] = field(default_factory=list)  # per float input (default 1)

    def inputs(self, dtype: torch.dtype, device: str, seed: int = 0, requires_grad: bool = True) -> list:
        gen = torch.Generator().manual_seed(seed)
        scales = self.scales or [1.0] * len(self.shapes)
        made = []
        for shape, scale in zip(self.shapes, scales):
            t = (scale * torch.randn(*shape, generator=gen)).to(device=device, dtype=dtype)
            made.append(t.requires_grad_(requires_grad))
        if self.vocab:
            rows = self.shapes[0][0]
            made.append(torch.randint(0, self.vocab, (rows,), generator=gen).to(device))
        return made


def _row_bytes(rows: int, cols: int, elt: int = 2) -> dict[str, float]:
    # forward reads x, writes y; backward reads dy and y (or x), writes dx
    return {"fwd": 2 * rows * cols * elt, "bwd": 3 * rows * cols * elt, "fwd+bwd": 5 * rows * cols * elt}


def _standard(triton_fn: Callable, formula: Callable, builtin: Callable | None, smoke: bool,
              liger: Callable | str) -> dict[str, Callable | str]:
    providers = {"triton": triton_fn, "eager-formula": formula}
    if builtin is not None:
        providers["builtin"] = builtin
    providers["liger"] = liger
    providers["compiled-formula"] = peers.compiled(formula, smoke)
    return providers


def rmsnorm_cases(smoke: bool) -> list[Case]:
    shapes = [(16, 300)] if smoke else [(16384, 1024), (16384, 4096)]
    cases = []
    for rows, cols in shapes:
        builtin = lambda x, w, cols=cols: torch.nn.functional.rms_norm(x, (cols,), w, peers.EPS)  # noqa: E731
        cases.append(Case("rmsnorm", f"{rows}x{cols}", [(rows, cols), (cols,)], _standard(
            lambda x, w: kernels.rmsnorm(x, w, peers.EPS, backend="triton"), peers.rmsnorm_formula, builtin, smoke,
            peers.liger("rmsnorm")), builtin, bytes=_row_bytes(rows, cols)))
    return cases


def softmax_cases(smoke: bool) -> list[Case]:
    shapes = [(8, 300)] if smoke else [(16384, 1024), (8192, 32768)]
    return [Case("softmax", f"{rows}x{cols}", [(rows, cols)], _standard(
        lambda x: kernels.softmax(x, backend="triton"), peers.softmax_formula,
        lambda x: torch.softmax(x, -1), smoke, peers.liger("softmax")),
        lambda x: torch.softmax(x, -1), bytes=_row_bytes(rows, cols), scales=[3.0]) for rows, cols in shapes]


def attention_cases(smoke: bool) -> list[Case]:
    """Causal, head dims 64 and 128, sequences 1k-8k, 16k tokens and a 2,048-wide model per batch."""
    if smoke:
        configs = [(1, 1, 40, 16), (1, 1, 24, 32)]
    else:
        configs = [(16384 // seq, 2048 // d, seq, d) for d in (64, 128) for seq in (1024, 2048, 4096, 8192)]
    cases = []
    for batch, heads, seq, d in configs:
        providers = {"triton": lambda q, k, v: kernels.attention(q, k, v, causal=True, backend="triton"),
                     "eager-formula": peers.attention_formula}
        if torch.cuda.is_available():
            providers["sdpa-flash"] = peers.sdpa("FLASH_ATTENTION")
            providers["sdpa-cudnn"] = peers.sdpa("CUDNN_ATTENTION")
        else:
            providers["sdpa-math"] = peers.sdpa("MATH")
        providers["compiled-formula"] = peers.compiled(peers.attention_formula, smoke)
        scores_gib = batch * heads * seq * seq * 4 / 2**30
        if scores_gib > MAX_SCORES_GIB:
            for name in ("eager-formula", "compiled-formula"):
                providers[name] = f"skipped: would hold {scores_gib:.0f} GiB of float32 scores"
        fwd = 2 * batch * heads * seq * seq * d  # QK^T and PV, causal half: 4 * b * h * s^2 * d / 2
        cases.append(Case("attention", f"b{batch} h{heads} s{seq} d{d}", [(batch, heads, seq, d)] * 3, providers,
                          peers.sdpa("MATH") if not torch.cuda.is_available() else peers.sdpa("EFFICIENT_ATTENTION"),
                          flops={"fwd": fwd, "bwd": 2.5 * fwd, "fwd+bwd": 3.5 * fwd},
                          gate_float32=smoke or seq in (1024, 4096)))
    return cases


def cross_entropy_cases(smoke: bool) -> list[Case]:
    shapes = [(4, 5000)] if smoke else [(8192, 32000), (8192, 50304)]
    cases = []
    for tokens, vocab in shapes:
        providers = _standard(lambda x, t: kernels.cross_entropy(x, t, backend="triton", overwrite_logits=True),
                              peers.cross_entropy_formula, torch.nn.functional.cross_entropy, smoke,
                              peers.liger("cross_entropy"))
        # forward reads the logits, backward writes their gradient (minimum traffic)
        elt = 2
        cases.append(Case("cross_entropy", f"{tokens}x{vocab}", [(tokens, vocab)], providers,
                          torch.nn.functional.cross_entropy, vocab=vocab, scales=[2.0],
                          bytes={"fwd": tokens * vocab * elt, "bwd": tokens * vocab * elt,
                                 "fwd+bwd": 2 * tokens * vocab * elt}))
    return cases


def linear_cross_entropy_cases(smoke: bool) -> list[Case]:
    shapes = [(4, 16, 5000)] if smoke else [(8192, 768, 32000), (8192, 768, 50304)]
    cases = []
    for tokens, hidden, vocab in shapes:
        options = {"softcap": SOFTCAP, "z_loss": Z_LOSS}

        def formula(h, w, t):
            return peers.linear_cross_entropy_formula(h, w, t, SOFTCAP, Z_LOSS)

        providers = _standard(
            lambda h, w, t: kernels.linear_cross_entropy(h, w, t, backend="triton", **options),
            formula, None, smoke, peers.liger("linear_cross_entropy", **options))
        matmul = 2 * tokens * hidden * vocab
        cases.append(Case("linear_cross_entropy", f"{tokens}x{hidden}->{vocab} softcap+z", [(tokens, hidden),
                          (vocab, hidden)], providers, formula, vocab=vocab, scales=[1.0, hidden**-0.5],
                          flops={"fwd": matmul, "bwd": 2 * matmul, "fwd+bwd": 3 * matmul}))
    return cases


BUILDERS = {"rmsnorm": rmsnorm_cases, "softmax": softmax_cases, "attention": attention_cases,
            "cross_entropy": cross_entropy_cases, "linear_cross_entropy": linear_cross_entropy_cases}


def cases_for(op: str, smoke: bool) -> list[Case]:
    """The cases of one op (what a gate child checks)."""
    return BUILDERS[op](smoke)


def all_cases(smoke: bool) -> list[Case]:
    return [case for op in OPS for case in cases_for(op, smoke)]


def gate_checks(cases: list[Case]) -> list[tuple[Case, torch.dtype]]:
    """(case, dtype) pairs the gate checks: every case in bfloat16, ``gate_float32`` ones in float32 first."""
    checks = []
    for case in cases:
        checks += [(case, dtype) for dtype in (torch.float32, torch.bfloat16)
                   if dtype == torch.bfloat16 or case.gate_float32]
    return checks


def interleaved(cases: list[Case]) -> list[Case]:
    """The first case of every op, then the second of every op, and so on: a time box that runs
    out part-way still leaves a measurement of every op."""
    by_op: dict[str, list[Case]] = {}
    for case in cases:
        by_op.setdefault(case.op, []).append(case)
    rounds = max((len(group) for group in by_op.values()), default=0)
    return [group[i] for i in range(rounds) for group in by_op.values() if i < len(group)]
