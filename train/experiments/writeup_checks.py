"""The small computations behind the written answers of docs/writeup.md.

``python -m train.experiments unicode``: what ``chr(0)`` is, how ``repr`` and ``print`` show it,
UTF-8 vs UTF-16/32 sizes, why decoding UTF-8 byte by byte is wrong, and byte pairs that are not
valid UTF-8.

``python -m train.experiments lr-toy``: the assignment's toy SGD (learning rate decaying as
1/sqrt(t+1), loss = mean(w^2) of a 10x10 weight) for 10 steps at learning rates 1e1, 1e2, 1e3.

``python -m train.experiments adamw-accounting``: AdamW training memory of GPT-2 XL as
``a * batch + b`` and the largest batch in 80 GB, AdamW FLOPs per step, and the time to train
GPT-2 XL for 400k steps of 1,024 sequences on one A100 at 50% MFU (figures from
``model.accounting``).
"""

from __future__ import annotations

import math

import torch

SAMPLES = ["hello", "héllo wörld", "こんにちは", "🙂 emoji", "Gutenberg: plain English prose."]


def decode_utf8_bytes_to_str_wrong(bytestring: bytes) -> str:
    """The assignment's incorrect decoder: decodes each byte on its own."""
    return "".join([bytes([b]).decode("utf-8") for b in bytestring])


def unicode_checks() -> list[str]:
    lines = ["unicode1:", f"  chr(0) -> repr {chr(0)!r}, ord {ord(chr(0))}, name U+0000 NULL",
             f"  repr(chr(0)) = {repr(chr(0))!r}; print(chr(0)) writes the byte {str(chr(0)).encode()!r} (invisible)",
             f"  'this is a test' + chr(0) + 'string' -> repr {('this is a test' + chr(0) + 'string')!r}"]
    lines.append("unicode2 (a): encoded sizes in bytes (utf-8 / utf-16 / utf-32):")
    for text in SAMPLES:
        sizes = [len(text.encode(enc)) for enc in ("utf-8", "utf-16-le", "utf-32-le")]
        lines.append(f"  {text!r:40} {sizes[0]:3d} / {sizes[1]:3d} / {sizes[2]:3d}")
    lines.append("unicode2 (b): byte-by-byte decoding")
    for text in ("hello", "héllo", "こんにちは"):
        data = text.encode("utf-8")
        try:
            result = repr(decode_utf8_bytes_to_str_wrong(data))
        except UnicodeDecodeError as e:
            first_bad = next(i for i, b in enumerate(data) if b >= 0x80)
            result = f"UnicodeDecodeError ({e.reason}) on byte {first_bad} = {data[first_bad]:#04x}, a lone part of a multi-byte character"
        lines.append(f"  {text!r:12} bytes {data!r} -> {result}")
    lines.append("unicode2 (c): two-byte sequences that decode to no character")
    for pair in (b"\xc3\x28", b"\x80\x80", b"\xff\xfe", b"\xe3\x81"):
        try:
            pair.decode("utf-8")
            verdict = "decodes"
        except UnicodeDecodeError as e:
            verdict = f"UnicodeDecodeError: {e.reason}"
        lines.append(f"  {pair!r:16} -> {verdict}")
    return lines


def lr_toy(lr: float, steps: int = 10, seed: int = 0) -> list[float]:
    """Losses of the toy SGD problem (the update uses lr / sqrt(t + 1), t = 0, 1, ...)."""
    torch.manual_seed(seed)
    weights = torch.nn.Parameter(5 * torch.randn((10, 10)))
    losses = []
    for t in range(steps):
        loss = (weights**2).mean()
        losses.append(loss.item())
        weights.grad = None
        loss.backward()
        with torch.no_grad():
            weights -= lr / math.sqrt(t + 1) * weights.grad
    return losses


def lr_toy_lines(rates=(1.0, 1e1, 1e2, 1e3)) -> list[str]:
    lines = ["learning_rate_tuning: loss per step (toy SGD, lr / sqrt(t+1), 10 steps)"]
    for lr in rates:
        losses = lr_toy(lr)
        lines.append(f"  lr={lr:<6g} " + " ".join(f"{v:.3g}" for v in losses))
    return lines


# AdamW per parameter and step: m = b1 m + (1-b1) g (3 FLOPs), v = b2 v + (1-b2) g^2 (4),
# p -= lr_t m / (sqrt(v) + eps) (5: sqrt, add, divide, multiply, subtract), p -= lr wd p (2).
ADAMW_FLOPS_PER_PARAMETER = 14
A100_FP32_FLOPS = 19.5e12


def adamw_accounting_lines(memory_gb: float = 80.0, steps: int = 400_000, batch: int = 1024, mfu: float = 0.5) -> list[str]:
    from tritonlm.model.accounting import (count_parameters, handout_activation_elements, max_batch_size,
                                           training_flops, training_memory)
    from tritonlm.model.presets import gpt2_xl

    cfg = gpt2_xl()
    one = training_memory(cfg, batch_size=1)
    n = count_parameters(cfg)
    memory = memory_gb * 1e9
    largest = max_batch_size(cfg, int(memory))
    step_flops = training_flops(cfg, batch_size=batch) + ADAMW_FLOPS_PER_PARAMETER * n
    seconds = steps * step_flops / (mfu * A100_FP32_FLOPS)
    handout = 4 * sum(handout_activation_elements(cfg).values())  # float32 bytes per sequence
    return [
        f"GPT-2 XL (this architecture): {n:,} parameters",
        f"  parameters {one.parameters / 1e9:.2f} GB + gradients {one.gradients / 1e9:.2f} GB + AdamW m, v "
        f"{one.optimizer_state / 1e9:.2f} GB = {one.fixed / 1e9:.2f} GB (16 bytes per parameter, float32)",
        f"  activations {one.activation_total / 1e9:.2f} GB per sequence of {cfg.context_length} tokens (float32)",
        f"  memory = {one.activation_total / 1e9:.2f} GB * batch + {one.fixed / 1e9:.2f} GB; largest batch in "
        f"{memory_gb:g} GB: {largest}",
        f"  with the handout's list of activations: {handout / 1e9:.2f} GB per sequence; memory = "
        f"{handout / 1e9:.2f} GB * batch + {one.fixed / 1e9:.2f} GB; largest batch in {memory_gb:g} GB: "
        f"{int((memory - one.fixed) // handout)}",
        f"AdamW step: {ADAMW_FLOPS_PER_PARAMETER} FLOPs per parameter = {ADAMW_FLOPS_PER_PARAMETER * n:.3g} FLOPs "
        f"(negligible next to the {training_flops(cfg, batch_size=batch):.3g} of forward + backward on {batch} sequences)",
        f"Training {steps:,} steps x {batch} sequences: {steps * step_flops:.3g} FLOPs; on one A100 at "
        f"{mfu:.0%} MFU of {A100_FP32_FLOPS / 1e12:g} TFLOP/s (float32): {seconds / 86400:,.0f} days "
        f"({seconds / 86400 / 365.25:.1f} years)",
    ]


CHECKS = {"unicode": unicode_checks, "lr-toy": lr_toy_lines, "adamw-accounting": adamw_accounting_lines}


def main(kind: str) -> int:
    lines = CHECKS[kind]()
    print("\n".join(lines))
    return 0
