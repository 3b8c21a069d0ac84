"""The small computations behind the written answers of docs/writeup.md.

``python -m train.experiments unicode``: what ``chr(0)`` is, how ``repr`` and ``print`` show it,
UTF-8 vs UTF-16/32 sizes, why decoding UTF-8 byte by byte is wrong, and byte pairs that are not
valid UTF-8.

``python -m train.experiments lr-toy``: the assignment's toy SGD (learning rate decaying as
1/sqrt(t+1), loss = mean(w^2) of a 10x10 weight) for 10 steps at learning rates 1e1, 1e2, 1e3.
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


def main(kind: str) -> int:
    lines = unicode_checks() if kind == "unicode" else lr_toy_lines()
    print("\n".join(lines))
    return 0
