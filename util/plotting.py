"""Matplotlib without a display: the non-interactive Agg backend is chosen when the first plot is
made, not when a module is imported, so importing the project never changes global state."""

from __future__ import annotations


def pyplot():
    """``matplotlib.pyplot``, with the Agg backend selected (PNG output, no display needed)."""
    import matplotlib

    if matplotlib.get_backend().lower() != "agg":
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path, dpi: int = 120):
    """Lay out ``fig``, write it to ``path`` atomically (format from the suffix, PNG by default)
    and close it; returns the path."""
    from pathlib import Path

    from .atomic import atomic_path

    path = Path(path)
    try:
        fig.tight_layout()
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=dpi, format=path.suffix.lstrip(".") or "png")
    finally:
        pyplot().close(fig)
    return path
