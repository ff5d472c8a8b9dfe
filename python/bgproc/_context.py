"""The running job's names, for scripts that ``import bgproc`` instead of using globals.

One job runs in a Blender process at a time, so this is process-wide (threads the script starts see it too);
the runner activates it before the script and clears it after, so nothing carries over to the next job.
"""

from __future__ import annotations

import threading
from typing import Any


class _Current:
    """Holds the running job's globals; the lock keeps activate/deactivate whole."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.globals: dict[str, Any] | None = None


_current = _Current()


def activate(globals_: dict[str, Any]) -> None:
    """Make ``globals_`` the running job's names until ``deactivate``."""
    with _current.lock:
        _current.globals = globals_


def deactivate() -> None:
    """Forget the running job's names."""
    with _current.lock:
        _current.globals = None


def current() -> dict[str, Any]:
    """The running job's names; raises when no job runs."""
    globals_ = _current.globals
    if globals_ is None:
        raise RuntimeError("bgproc: no job is running (import bgproc from a script run by bgproc)")
    return globals_
