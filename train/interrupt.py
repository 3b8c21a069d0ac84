"""SIGINT/SIGTERM become a request to stop after the current step (checkpoint, then exit).

A second signal of the same kind falls through to the previous handler, so a user can still
force-quit a run that hangs while saving.
"""

from __future__ import annotations

import signal
import threading


class StopRequest:
    """Context manager that records SIGINT/SIGTERM instead of raising KeyboardInterrupt."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.signal_name: str | None = None
        self._previous: dict[int, object] = {}

    @property
    def requested(self) -> bool:
        return self.signal_name is not None

    def request(self, reason: str) -> None:
        self.signal_name = self.signal_name or reason

    def _handle(self, signum, frame) -> None:
        if self.requested:  # second signal: restore the default behaviour and re-raise it
            signal.signal(signum, self._previous.get(signum, signal.SIG_DFL))
            signal.raise_signal(signum)
            return
        self.signal_name = signal.Signals(signum).name

    def __enter__(self) -> "StopRequest":
        if threading.current_thread() is threading.main_thread():
            for sig in self.SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()
