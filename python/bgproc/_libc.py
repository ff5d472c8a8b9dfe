"""The C library, loaded once: ``prctl`` and flushing every output buffer (Python's and C stdio's).

A forked child or a warm Blender's marker line must not find output of Blender's still in a C ``FILE`` buffer: it would
be written again by each child, or after the marker. ``prctl`` serves the subreaper, the parent-death signal and the
zygote's ``PR_SET_DUMPABLE``.
"""

from __future__ import annotations

import ctypes
import sys
from typing import Any

_libc: Any = None


def libc() -> Any:
    """The C library, or ``None`` where it cannot be loaded. Loaded once (before any fork, by the first caller)."""
    global _libc
    if _libc is None:
        try:
            _libc = ctypes.CDLL(None, use_errno=True)
        except OSError:
            _libc = False
    return _libc or None


def prctl(option: int, value: int) -> bool:
    """``prctl(option, value)``; ``False`` where the kernel or the C library will not."""
    library = libc()
    try:
        return library is not None and library.prctl(option, value, 0, 0, 0) == 0
    except AttributeError:
        return False


def flush_output() -> None:
    """Flush ``sys.stdout``/``sys.stderr`` (and the originals, when a script replaced them), then every C stream."""
    for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
        try:
            stream.flush()
        except Exception:  # noqa: BLE001, S110 - a stream a script closed or replaced must not stop the flush
            pass
    library = libc()
    if library is not None:
        library.fflush(None)
