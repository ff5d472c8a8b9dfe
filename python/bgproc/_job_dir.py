"""The job directory, Python's side of the contract with the host (whose side is ``src/local/job/dir.ts``).

One place for the file names and for every write into the directory; each write is atomic.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from ._files import FolderId, write_json_atomic

# Kept equal to JOB_FILES in src/local/job/dir.ts (tests/python_sources_test.ts checks).
FILES = {
    "spec": "spec.json",
    "runtime": "runtime.json",
    "progress": "progress",
    "result": "result.json",
    "error": "error.json",
    "work": "work.blend",
    "dataBlocks": "data_blocks.blend",
    "temp": ".bgproc-temp",
}


#: The most entries of a job folder searched for names that are not UTF-8.
MAX_ESCAPED_SEARCH = 100_000


@dataclass(frozen=True)
class JobDir:
    """One job's directory.

    Its identity is taken when the runtime starts, before the script runs: every write of the runtime's own files
    goes into that folder or nowhere, so a script that swaps its folder for a link cannot have bgproc write elsewhere.
    """

    path: str
    folder_id: Optional[FolderId] = field(default=None)

    def __post_init__(self) -> None:
        if self.folder_id is None:
            try:
                info = os.lstat(self.path)
                folder_id = (info.st_dev, info.st_ino) if stat.S_ISDIR(info.st_mode) else (-1, -1)
            except OSError:
                folder_id = (-1, -1)  # Gone already: every write is refused.
            object.__setattr__(self, "folder_id", folder_id)

    def file(self, key: str) -> str:
        """The path of the file ``FILES[key]``."""
        return os.path.join(self.path, FILES[key])

    def write_runtime(self, info: dict[str, Any]) -> None:
        """Say that Blender reached the runtime: a failure after this is the job's, not start-up's."""
        write_json_atomic(self.file("runtime"), info, self.folder_id)

    def write_error(self, record: dict[str, Any]) -> None:
        """Record the exception that ended the job."""
        write_json_atomic(self.file("error"), record, self.folder_id)

    def write_result(self, result: dict[str, Any]) -> None:
        """Record the job's result."""
        write_json_atomic(self.file("result"), result, self.folder_id)

    def escape_undecodable_names(self, warn: Callable[[str], None]) -> None:
        """Rename files and folders whose names are not UTF-8 to an escaped name (``bad\\xffname.png``).

        The host reads names as UTF-8, and could not move such a file into ``outputDir``. Each rename is said through
        ``warn``. Nothing is renamed when the job swapped its folder for a link or another folder: that is not its own.
        """
        try:
            info = os.lstat(self.path)
        except OSError:
            return
        if not stat.S_ISDIR(info.st_mode) or (info.st_dev, info.st_ino) != self.folder_id:
            return
        seen = 0
        for folder, folders, files in os.walk(os.fsencode(self.path)):
            for names in (folders, files):
                for index, name in enumerate(names):
                    seen += 1
                    if seen > MAX_ESCAPED_SEARCH:
                        return
                    try:
                        name.decode("utf-8")
                        continue
                    except UnicodeDecodeError:
                        pass
                    new = _free_name(folder, name.decode("utf-8", "backslashreplace"))
                    os.rename(os.path.join(folder, name), os.path.join(folder, new.encode("utf-8")))
                    names[index] = new.encode("utf-8")  # os.walk goes on into the renamed folder.
                    relative = os.path.relpath(os.path.join(os.fsdecode(folder), new), self.path)
                    warn(f"the output {name!r} has a name that is not UTF-8; it was renamed {relative!r}")


def _free_name(folder: bytes, name: str) -> str:
    """``name``, or ``name`` with ``~2``, ``~3``... before its extension when ``folder`` holds it already."""
    stem, extension = os.path.splitext(name)
    candidate, number = name, 1
    while os.path.lexists(os.path.join(folder, candidate.encode("utf-8"))):
        number += 1
        candidate = f"{stem}~{number}{extension}"
    return candidate
