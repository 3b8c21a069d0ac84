"""Helpers for checking a kernel against its peers (output and input gradients in one call) and
for proving which Triton kernels ran."""

from __future__ import annotations

import contextlib
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


class LaunchLog:
    """Triton kernel launches seen by ``record_launches``: names in order, and their grids
    (resolved to tuples when the launcher passed a function of the meta-parameters)."""

    def __init__(self) -> None:
        self.names: list[str] = []
        self.grids: list[object] = []

    def count(self, name: str) -> int:
        return sum(1 for n in self.names if n == name)

    def clear(self) -> None:
        self.names.clear()
        self.grids.clear()


@contextlib.contextmanager
def record_launches():
    """Record every Triton kernel launch in the block, compiled (``JITFunction.run``) or
    interpreted (``InterpretedFunction.run``); autotuned kernels are recorded once per launch
    of the chosen config. Used by the tests to prove which kernels actually ran."""
    from triton.runtime.jit import JITFunction

    classes = [JITFunction]
    try:
        from triton.runtime.interpreter import InterpretedFunction

        classes.append(InterpretedFunction)
    except ImportError:  # pragma: no cover - every supported triton has the interpreter
        pass
    log = LaunchLog()
    originals = {cls: cls.run for cls in classes}

    def recording(original):
        def run(self, *args, grid, warmup, **kwargs):
            if not warmup:
                log.names.append(self.__name__)
                meta = {**dict(zip(self.arg_names, args)), **kwargs}
                log.grids.append(tuple(grid(meta)) if callable(grid) else tuple(grid))
            return original(self, *args, grid=grid, warmup=warmup, **kwargs)

        return run

    for cls, original in originals.items():
        cls.run = recording(original)
    try:
        yield log
    finally:
        for cls, original in originals.items():
            cls.run = original
