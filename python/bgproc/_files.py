"""Atomic file writes: a reader sees the old file or the new one, never half of one."""

from __future__ import annotations

import json
import os
import threading
from typing import Any


def write_atomic(path: str, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder and a rename."""
    tmp = f"{path}.{os.getpid()}.{threading.get_ident()}.tmp"
    with open(tmp, "wb") as handle:
        handle.write(data)
    os.replace(tmp, path)


def write_json_atomic(path: str, value: Any) -> None:
    """Write ``value`` as UTF-8 JSON (no NaN or Infinity, which JSON cannot hold)."""
    write_atomic(path, json.dumps(value, ensure_ascii=False, allow_nan=False).encode("utf-8"))
