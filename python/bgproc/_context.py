"""The running job's names, for scripts that ``import bgproc`` instead of using globals."""

from __future__ import annotations

import contextvars
from typing import Any

_job_globals: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar("bgproc_job", default=None)


def activate(globals_: dict[str, Any]) -> contextvars.Token[dict[str, Any] | None]:
    """Make ``globals_`` the running job's names until ``deactivate``."""
    return _job_globals.set(globals_)


def deactivate(token: contextvars.Token[dict[str, Any] | None]) -> None:
    """Forget the running job's names."""
    _job_globals.reset(token)


def current() -> dict[str, Any]:
    """The running job's names; raises when no job runs."""
    globals_ = _job_globals.get()
    if globals_ is None:
        raise RuntimeError("bgproc: no job is running (import bgproc from a script run by bgproc)")
    return globals_
