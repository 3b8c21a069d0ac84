"""What produced a result: git SHA, library versions, device, host, command and time.

Every run folder, checkpoint and benchmark file records this, so a figure can be traced to the
code and machine that made it.
"""

from __future__ import annotations

import datetime as _dt
import importlib.metadata
import os
import platform
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
_LIBRARIES = ("torch", "triton", "numpy", "regex", "tiktoken", "tokenizers")

# Data-sheet peaks used to put measured throughput in context (MFU, fraction of bandwidth):
# (dense bf16 tensor-core FLOP/s without sparsity, memory bytes/s). Keys are matched as
# case-insensitive substrings of the device name, most specific first.
DEVICE_PEAKS = {
    "H100 SXM": (989.4e12, 3.35e12),
    "H100 NVL": (835.0e12, 3.9e12),
    "H100 PCIe": (756.0e12, 2.0e12),
    "H100": (989.4e12, 3.35e12),  # an unqualified H100 name is, in practice, the SXM part
    "H200": (989.4e12, 4.8e12),
    "A100": (312.0e12, 2.0e12),
    "L40S": (362.0e12, 0.864e12),
    "A10G": (70.0e12, 0.6e12),
    "RTX 4090": (165.2e12, 1.008e12),
}


# Where runs and benchmarks write the results the docs quote: a change there is an output, not
# a change of the code that produced it.
RESULT_PATHS = ("docs/results", "docs/results.md", "bench/results")


def git_sha() -> str:
    """The commit of the working tree, with ``+dirty`` when tracked files other than the result
    folders (``RESULT_PATHS``) have uncommitted changes."""
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "--", ".",
             *(f":(exclude){path}" for path in RESULT_PATHS)],
            cwd=REPO_ROOT, capture_output=True, text=True, check=True,
        ).stdout.strip()
        return sha + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def library_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in _LIBRARIES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    if "torch" in sys.modules:  # torch's own string names the build (2.11.0+cu130); PyPI's metadata does not
        versions["torch"] = str(sys.modules["torch"].__version__)  # a plain str: checkpoints load weights_only
    return versions


def device_description() -> str:
    """The accelerator if one is visible, else the CPU model and core count."""
    try:
        import torch

        if torch.cuda.is_available():
            return torch.cuda.get_device_name(0)
    except ImportError:
        pass
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"CPU: {cpu} x{os.cpu_count()}"


def device_peaks(device_name: str) -> tuple[float, float] | None:
    """``(bf16 FLOP/s, memory bytes/s)`` of a known GPU, or None (CPU or an unknown device)."""
    for key, peaks in DEVICE_PEAKS.items():
        if key.lower() in device_name.lower():
            return peaks
    return None


def command_line() -> str:
    """The command that is running, as one could type it again: ``python -m train.leaderboard
    --budget 5m`` for a module run with ``-m``, else the script's name and its arguments."""
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    if spec is not None and spec.name:
        program = f"python -m {spec.name.removesuffix('.__main__')}"
    else:
        program = Path(sys.argv[0]).name
    return " ".join([program, *sys.argv[1:]])


def run_metadata() -> dict:
    """A JSON-ready record of what is producing the current result."""
    return {
        "git_sha": git_sha(),
        "versions": library_versions(),
        "device": device_description(),
        "host": platform.node(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "command": command_line(),
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
