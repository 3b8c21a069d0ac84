"""Choosing between the PyTorch reference and the Triton kernels.

``auto`` means Triton on CUDA tensors and the reference elsewhere. ``triton`` is an explicit
request: it runs on CUDA, or on the CPU under Triton's interpreter (``TRITON_INTERPRET=1``, how
the tests check the kernels), and otherwise fails with a message that says why.
"""

from __future__ import annotations

import os

import torch

BACKENDS = ("torch", "triton", "auto")


class BackendUnavailable(RuntimeError, ValueError):
    """``kernels='triton'`` asked for where Triton cannot run (a RuntimeError of this machine, and
    a ValueError of the configuration: commands report it as a user error)."""


def _triton_import_problem() -> str | None:
    """Why ``import triton`` fails here (not installed, or installed but broken), or None."""
    try:
        import triton  # noqa: F401
        import triton.language  # noqa: F401
    except ImportError as e:
        if isinstance(e, ModuleNotFoundError) and e.name == "triton":
            return "the triton package is not installed (Triton supports Linux only: pip install triton there)"
        return f"triton is installed but cannot be imported ({e}); reinstall it (pip install --force-reinstall triton)"
    return None


# Found once, at import, and the one answer the whole package uses (the op modules take Triton or
# its stand-in by it): a check inside the model's forward is a call torch.compile refuses to trace.
_TRITON_PROBLEM = _triton_import_problem()


def triton_installed() -> bool:
    """Whether ``import triton`` works here (installed, and not broken)."""
    return _TRITON_PROBLEM is None


def triton_import_problem() -> str | None:
    """Why Triton cannot be imported here (with the fix), or None when it can."""
    return _TRITON_PROBLEM


def interpreter_enabled() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0") == "1"


def triton_unavailable_reason(device: torch.device | str) -> str | None:
    """Why the Triton kernels cannot run on ``device``, or None when they can."""
    device = torch.device(device)
    if not triton_installed():
        return triton_import_problem()
    if device.type == "cuda":
        return None
    if device.type == "cpu" and interpreter_enabled():
        return None
    return (
        f"tensors are on {device.type}, and Triton kernels need a CUDA GPU "
        "(or TRITON_INTERPRET=1 set before triton is imported, to interpret them slowly on the CPU)"
    )


def validate_backend(backend: str) -> str:
    if backend not in BACKENDS:
        raise ValueError(f"unknown kernel backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    return backend


def resolve_backend(backend: str, device: torch.device | str) -> str:
    """Map ``torch | triton | auto`` to the backend that will actually run on ``device``."""
    validate_backend(backend)
    device = torch.device(device)
    if backend == "torch":
        return "torch"
    reason = triton_unavailable_reason(device)
    if backend == "auto":
        return "triton" if device.type == "cuda" and reason is None else "torch"
    if reason is not None:
        raise BackendUnavailable(f"kernels='triton' cannot run here: {reason}. Use 'torch' or 'auto'.")
    return "triton"
