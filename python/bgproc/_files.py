"""Atomic file writes: a reader sees the old file or the new one, never half of one."""

from __future__ import annotations

import json
import os
import threading
from typing import Any, Optional, Tuple

#: A folder's identity: ``(st_dev, st_ino)``.
FolderId = Tuple[int, int]


class FolderReplacedError(OSError):
    """The folder a write was meant for is no longer that folder (the job swapped it for a link or another one)."""

    def __init__(self, folder: str) -> None:
        super().__init__(f"{folder} is no longer the job's folder (it was replaced); nothing was written there")


def write_atomic(path: str, data: bytes, folder_id: Optional[FolderId] = None) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder and a rename.

    The folder is opened once, without following a link in its place, and both steps work from that descriptor: a
    folder swapped for a link never receives the file. With ``folder_id``, a folder that is not that one is refused.
    """
    folder, name = os.path.split(path)
    dir_fd = os.open(folder or ".", os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        if folder_id is not None:
            info = os.fstat(dir_fd)
            if (info.st_dev, info.st_ino) != folder_id:
                raise FolderReplacedError(folder)
        tmp = f"{name}.{os.getpid()}.{threading.get_ident()}.tmp"
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC
        with os.fdopen(os.open(tmp, flags, 0o644, dir_fd=dir_fd), "wb") as handle:
            handle.write(data)
        os.replace(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    finally:
        os.close(dir_fd)


def write_json_atomic(path: str, value: Any, folder_id: Optional[FolderId] = None) -> None:
    """Write ``value`` as UTF-8 JSON (no NaN or Infinity, which JSON cannot hold)."""
    write_atomic(path, json.dumps(value, ensure_ascii=False, allow_nan=False).encode("utf-8"), folder_id)
