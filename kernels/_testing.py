"""Helpers for checking a kernel against its peers: output and input gradients in one call."""

from __future__ import annotations

from typing import Callable, Sequence

import torch


def output_and_grads(
    fn: Callable[..., torch.Tensor],
    inputs: Sequence[torch.Tensor],
    grad_output: torch.Tensor | None = None,
    dtype: torch.dtype | None = None,
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Run ``fn`` on fresh leaf copies of the float ``inputs`` (cast to ``dtype`` if given) and
    backpropagate ``grad_output`` (ones for a scalar); returns the detached output and the
    gradient of every float input. Integer inputs (targets) are passed through unchanged."""
    leaves = [
        t.detach().to(dtype or t.dtype).requires_grad_() if t.is_floating_point() else t for t in inputs
    ]
    out = fn(*leaves)
    grad = torch.ones_like(out) if grad_output is None else grad_output.to(out.dtype)
    out.backward(grad)
    return out.detach(), [t.grad for t in leaves if t.is_floating_point()]


def assert_all_close(actual: Sequence[torch.Tensor], expected: Sequence[torch.Tensor], atol: float,
                     rtol: float, names: Sequence[str]) -> None:
    """Compare pairwise in float32, naming the tensor that differs."""
    for a, e, name in zip(actual, expected, names, strict=True):
        torch.testing.assert_close(a.float(), e.float(), atol=atol, rtol=rtol, msg=lambda m, n=name: f"{n}: {m}")
