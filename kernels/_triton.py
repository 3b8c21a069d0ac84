"""Triton, or a stand-in on machines where it cannot be installed (macOS, Windows).

Triton ships for Linux only, but most of the project (the tokenizer, the model on the CPU, the
training stack, every PyTorch reference beside its kernel) needs no Triton at all. The op
modules import ``triton`` and ``tl`` from here: with Triton installed these are Triton itself;
without it, ``missing_triton()`` lets the modules define their kernels (the decorators record the
function and nothing more) so the package imports everywhere. A missing Triton is then reported
where it matters: ``resolve_backend`` refuses ``kernels='triton'`` with the reason, ``auto``
picks the reference, and a kernel launched anyway raises ``BackendUnavailable`` naming the fix.
"""

from __future__ import annotations

import types
from typing import Any, Callable

from ._backend import BackendUnavailable, triton_import_problem, triton_installed

def _launch_refusal() -> str:
    """What a kernel launched without a working Triton says: the problem and the fix."""
    return f"{triton_import_problem()}; use kernels='torch' or 'auto' to run the PyTorch reference"


class UnlaunchableKernel:
    """What ``@triton.jit`` gives without Triton: the function, kept for reading, that refuses to
    launch (``kernel[grid](...)``) or run."""

    def __init__(self, fn: Callable) -> None:
        self.fn = fn
        self.__name__ = getattr(fn, "__name__", "kernel")
        self.__doc__ = getattr(fn, "__doc__", None)

    def _refuse(self, *args: Any, **kwargs: Any):
        raise BackendUnavailable(f"cannot launch Triton kernel {self.__name__}: {_launch_refusal()}")

    __call__ = _refuse

    def __getitem__(self, grid: Any) -> Callable:
        return self._refuse


class Config:
    """``triton.Config``'s constructor, so autotuning tables can still be built (and read)."""

    def __init__(self, kwargs: dict, num_warps: int = 4, num_stages: int = 3, **options: Any) -> None:
        self.kwargs = dict(kwargs)
        self.num_warps = num_warps
        self.num_stages = num_stages
        self.options = options

    def __repr__(self) -> str:
        return f"Config({self.kwargs}, num_warps={self.num_warps}, num_stages={self.num_stages})"


def _jit(fn: Callable | None = None, **options: Any):
    if fn is None:
        return lambda inner: UnlaunchableKernel(inner)
    return UnlaunchableKernel(fn)


def _keep(*args: Any, **kwargs: Any) -> Callable:
    """``triton.autotune(...)`` / ``triton.heuristics(...)``: the decorated kernel unchanged."""
    return lambda kernel: kernel


def _cdiv(a: int, b: int) -> int:
    return -(-a // b)


def _next_power_of_2(n: int) -> int:
    return 1 if n <= 1 else 1 << (int(n) - 1).bit_length()


class _Constexpr:
    """``tl.constexpr`` as an annotation: a name the kernel signatures can mention."""


def missing_triton() -> types.SimpleNamespace:
    """The stand-in for the ``triton`` module (``.language`` the stand-in for ``tl``)."""
    language = types.SimpleNamespace(constexpr=_Constexpr)
    return types.SimpleNamespace(
        jit=_jit, autotune=_keep, heuristics=_keep, Config=Config, cdiv=_cdiv,
        next_power_of_2=_next_power_of_2, language=language, __version__=None,
    )


TRITON_AVAILABLE = triton_installed()  # the answer kernel selection uses, so the two cannot disagree
if TRITON_AVAILABLE:
    import triton
    import triton.language as tl
else:  # macOS, Windows, a Linux install without it, or a broken one
    triton = missing_triton()
    tl = triton.language

__all__ = ["TRITON_AVAILABLE", "UnlaunchableKernel", "tl", "triton"]
