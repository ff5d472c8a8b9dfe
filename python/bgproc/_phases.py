"""The times of a job's phases inside Blender, sent back with its result or its error (``"phases"``): the host shows
where a job's time went (``result.timings``, its trace) without Blender knowing of any telemetry.

Timing is an observer: nothing here raises, and a script that patches ``time.time`` (a mock left in place) changes no
time and breaks no write: the clock is taken when this module is imported, and every value is checked."""

from __future__ import annotations

import contextlib
import math
import time
from typing import Any, Iterator, List

#: The most phases one job reports.
MAX_PHASES = 16

#: The clock, bound before any script runs.
_clock = time.time


def now_ms() -> float:
    """Milliseconds since the epoch, as the host's ``Date.now()`` (with fractions); NaN if the clock fails."""
    try:
        return float(_clock()) * 1000.0
    except Exception:  # noqa: BLE001 - a clock that fails gives no time, never an error
        return math.nan


class Phases:
    """One job's phases, in the order they ran: ``[name, start_ms, end_ms]`` each (finite numbers only)."""

    def __init__(self) -> None:
        self.entries: List[List[Any]] = []

    def add(self, name: str, start: float, end: float) -> None:
        """Record a phase; a phase of the name of the last one extends it (the .blend opened, then copied)."""
        if not (math.isfinite(start) and math.isfinite(end)):
            return
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
