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
    first = next(iter(devices.values()))
    if any(d != first for d in devices.values()):
        listed = ", ".join(f"{name} on {d}" for name, d in devices.items())
        raise ValueError(f"inputs must be on one device, got {listed}; move them with .to(device)")
    return first


def check_same_dtype(**tensors: torch.Tensor) -> torch.dtype:
    dtypes = {name: t.dtype for name, t in tensors.items()}
    first = next(iter(dtypes.values()))
    if any(d != first for d in dtypes.values()):
        listed = ", ".join(f"{name} is {d}" for name, d in dtypes.items())
        raise TypeError(f"inputs must share one dtype, got {listed}; cast them to one dtype first")
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


def autocast_disabled(device: torch.device) -> contextlib.AbstractContextManager:
    """A context with autocast off for ``device`` (a no-op on devices without autocast, such as
    ``meta``, where shape-only runs like FLOP counting happen)."""
    if torch.amp.is_autocast_available(device.type):
        return torch.autocast(device.type, enabled=False)
    return contextlib.nullcontext()
