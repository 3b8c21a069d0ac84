"""The Triton launchers as PyTorch operators (namespace ``tritonlm``), so torch.compile sees them.

A plain Python launcher is a graph break under ``torch.compile``; a registered operator is one
node of the graph, with a fake implementation that tells the compiler the shapes, dtypes and
strides of its outputs without running it. Two registrations, chosen once at import:

* ``torch.library.triton_op`` on a GPU: the operator's body is traceable (its kernel launches go
  through ``torch.library.wrap_triton``), so inductor sees the Triton kernels themselves and can
  schedule them with the rest of the graph.
* ``torch.library.custom_op`` under Triton's CPU interpreter (``TRITON_INTERPRET=1``), whose
  kernels cannot be traced, or when ``TRITONLM_OPAQUE_KERNELS=1`` is set (a fallback should a
  compiler version fail to trace a kernel): the operator is opaque to the compiler but still one
  node, without graph breaks.

Every operator registers the same explicit fake implementation in both modes, so the fake
tensors the CPU tests check (``torch.library.opcheck``) are the ones a GPU compile uses.
"""

from __future__ import annotations

import os
from typing import Callable, Iterable

import torch

from ._backend import interpreter_enabled, triton_installed
from ._interpreter_compat import install as install_interpreter_fixes

NAMESPACE = "tritonlm"
OPAQUE_ENV = "TRITONLM_OPAQUE_KERNELS"


def traceable_kernels() -> bool:
    """Whether the operators expose their kernels to the compiler (triton_op) or are opaque
    (always opaque without Triton: the operators then exist, but only the reference runs)."""
    return triton_installed() and not interpreter_enabled() and os.environ.get(OPAQUE_ENV, "0") != "1"


def kernel_op(name: str, *, fake: Callable, mutates_args: Iterable[str] = ()) -> Callable:
    """Register the decorated launcher as ``torch.ops.tritonlm.<name>`` with the fake
    implementation ``fake``; returns the operator (callable like the launcher)."""

    def register(launcher: Callable):
        qualified = f"{NAMESPACE}::{name}"
        factory = torch.library.triton_op if traceable_kernels() else torch.library.custom_op
        op = factory(qualified, launcher, mutates_args=tuple(mutates_args))
        op.register_fake(fake)
        return op

    return register


def launch(kernel, grid):
    """``kernel[grid]``, wrapped so that a compiler tracing a triton_op records the launch. Every
    kernel is launched here, so this is also where the interpreter's fixes are applied, before
    the first interpreted launch (importing the package changes nothing of Triton's)."""
    if traceable_kernels():
        return torch.library.wrap_triton(kernel)[grid]
    if interpreter_enabled():
        install_interpreter_fixes()
    return kernel[grid]
