"""The times of a job's phases inside Blender, sent back with its result or its error (``"phases"``): the host shows
where a job's time went (``result.timings``, its trace) without Blender knowing of any telemetry."""

from __future__ import annotations

import contextlib
import time
from typing import Any, Iterator, List

#: The most phases one job reports.
MAX_PHASES = 16


def now_ms() -> float:
    """The wall clock in milliseconds since the epoch, as the host's ``Date.now()`` (with fractions)."""
    return time.time() * 1000.0


class Phases:
    """One job's phases, in the order they ran: ``[name, start_ms, end_ms]`` each."""

    def __init__(self) -> None:
        self.entries: List[List[Any]] = []

    def add(self, name: str, start: float, end: float) -> None:
        """Record a phase; a phase of the name of the last one extends it (the .blend opened, then copied)."""
        last = self.entries[-1] if self.entries else None
        if last is not None and last[0] == name:
            last[2] = end
        elif len(self.entries) < MAX_PHASES:
            self.entries.append([name, start, end])

    @contextlib.contextmanager
    def timed(self, name: str) -> Iterator[None]:
        """Record the time the ``with`` block takes as the phase ``name``, however it ends."""
        start = now_ms()
        try:
            yield
        finally:
            self.add(name, start, now_ms())

    def snapshot(self) -> List[List[Any]]:
        """A copy of the phases, for a result or error record."""
        return [list(entry) for entry in self.entries]
