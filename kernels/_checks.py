"""Input checks shared by the Triton launchers: every failure names the problem and the fix."""

from __future__ import annotations

import contextlib

import torch

FLOAT_DTYPES = (torch.float32, torch.bfloat16, torch.float16)


def check_float(name: str, t: torch.Tensor) -> None:
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if t.dtype not in FLOAT_DTYPES:
        raise TypeError(
            f"{name} has dtype {t.dtype}; the Triton kernels support float32, bfloat16 and float16 "
            f"(convert with .to(torch.bfloat16), or use backend='torch')"
        )


def check_same_device(**tensors: torch.Tensor) -> torch.device:
    devices = {name: t.device for name, t in tensors.items()}
    return _check_one_value(devices, "on", ValueError, "inputs must be on one device",
                            "move them with .to(device)")


def check_same_dtype(**tensors: torch.Tensor) -> torch.dtype:
    dtypes = {name: t.dtype for name, t in tensors.items()}
    return _check_one_value(dtypes, "is", TypeError, "inputs must share one dtype", "cast them to one dtype first")


def _check_one_value(values: dict, verb: str, error: type[Exception], problem: str, fix: str):
    """The one value every input has, or ``error`` naming each input's value and the fix."""
    first = next(iter(values.values()))
    if any(v != first for v in values.values()):
        listed = ", ".join(f"{name} {verb} {v}" for name, v in values.items())
        raise error(f"{problem}, got {listed}; {fix}")
    return first


def check_unit_last_stride(name: str, t: torch.Tensor) -> None:
    if t.dim() > 0 and t.shape[-1] > 1 and t.stride(-1) != 1:
        raise ValueError(
            f"{name} must be contiguous in its last dimension (stride {t.stride(-1)}); call .contiguous()"
        )


def check_rows(name: str, t: torch.Tensor) -> None:
    """A 2-D (rows, cols) view whose rows are evenly strided and whose columns are contiguous."""
    if t.dim() != 2:
        raise ValueError(f"{name} must be 2-D (rows, cols) here, got shape {tuple(t.shape)}")
    check_unit_last_stride(name, t)


def compute_dtype(device: torch.device, *tensors: torch.Tensor) -> torch.dtype:
    """The dtype a fused op computes in: the autocast dtype when autocast is on for ``device``
    (as torch's own matmul-based ops do), else the promoted dtype of ``tensors``."""
    if torch.is_autocast_enabled(device.type):
        return torch.get_autocast_dtype(device.type)
    dtype = tensors[0].dtype
    for t in tensors[1:]:
        dtype = torch.promote_types(dtype, t.dtype)
    return dtype


# Asked once, at import: torch 2.11's dynamo cannot trace torch.amp.is_autocast_available, and
# autocast_disabled runs inside compiled graphs.
_AUTOCAST_AVAILABLE = {kind: torch.amp.is_autocast_available(kind) for kind in ("cpu", "cuda", "xpu", "mps", "meta")}


def autocast_disabled(device: torch.device) -> contextlib.AbstractContextManager:
    """A context with autocast off for ``device`` (a no-op on devices without autocast, such as
    ``meta``, where shape-only runs like FLOP counting happen)."""
    if _AUTOCAST_AVAILABLE.get(device.type, False):
        return torch.autocast(device.type, enabled=False)
    return contextlib.nullcontext()
