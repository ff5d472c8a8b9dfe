"""``update_job_progress``: cheap to call in a tight loop, coalesced into a few atomic file writes."""

from __future__ import annotations

import math
import numbers
import threading
import time
from typing import Callable, Optional

from ._files import FolderId, write_atomic


class ProgressReporter:
    """Keeps the latest progress in memory and writes it to the job's ``progress`` file.

    A call writes at once when the last write is at least ``interval`` seconds old; otherwise it
    only records the value, and a flusher thread writes the latest value when the interval is up.
    ``close()`` writes the last value, so the host always sees where the script ended.

    A finite number outside 0.0 to 1.0 is clamped (the add-on took them, and its own demo passes 1.01), and ``warn``
    hears of it once per reporter (one job); NaN, infinities, bools and non-numbers raise.
    """

    def __init__(
        self, path: str, *, warn: Callable[[str], None], interval: float = 0.01, folder_id: Optional[FolderId] = None
    ) -> None:
        self._path = path
        self._folder_id = folder_id
        self._warn = warn
        self._warned = False
        self._interval = interval
        self._value = 0.0
        self._written = -1.0
        self._next_write = 0.0
        self._pending = False
        self._closed = False
        self._script_reported = False
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    def update(self, value: float) -> None:
        """Record ``value`` (0.0 to 1.0; a finite number outside is clamped) as the job's progress."""
        self._script_reported = True
        self._record(value)

    def update_from_render(self, value: float) -> None:
        """Record a render's progress, unless the script has reported its own (``update`` was called)."""
        if not self._script_reported:
            self._record(value)

    def _record(self, value: float) -> None:
        if value.__class__ is not float:
            if isinstance(value, bool) or not isinstance(value, numbers.Real):
                raise TypeError(f"update_job_progress takes a finite number (clamped to 0.0 to 1.0), not {value!r}")
            value = float(value)
        if not 0.0 <= value <= 1.0:
            value = self._clamped(value)
        self._value = value
        if self._pending:
            return
        if time.monotonic() >= self._next_write:
            self._write()
        else:
            self._pending = True
            if self._thread is None:
                self._thread = threading.Thread(target=self._flush_loop, name="bgproc-progress", daemon=True)
                self._thread.start()
            self._wake.set()

    def _clamped(self, value: float) -> float:
        if not math.isfinite(value):
            raise ValueError(f"update_job_progress takes a finite number (clamped to 0.0 to 1.0), not {value!r}")
        clamped = min(max(value, 0.0), 1.0)
        with self._lock:
            warn, self._warned = not self._warned, True
        if warn:
            self._warn(
                f"update_job_progress({value!r}) is outside 0.0 to 1.0 and was clamped to {clamped!r} "
                "(said once per job)"
            )
        return clamped

    def close(self) -> None:
        """Write the latest value if it has not been written, and stop the flusher thread."""
        self._closed = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        self._write()

    def _write(self) -> None:
        with self._lock:
            self._pending = False
            value = self._value
            self._next_write = time.monotonic() + self._interval
            if value == self._written:
                return
            self._written = value
            try:
                write_atomic(self._path, repr(value).encode("ascii"), self._folder_id)
            except OSError:
                pass  # The folder was replaced or removed: the host drops the job for it; never write elsewhere.

    def _flush_loop(self) -> None:
        while True:
            self._wake.wait()
            self._wake.clear()
            if self._closed:
                return
            delay = self._next_write - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            if self._pending:
                self._write()
