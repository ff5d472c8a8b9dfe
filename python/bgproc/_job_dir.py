"""The job directory, Python's side of the contract with the host (whose side is ``src/job/dir.ts``).

One place for the file names and for every write into the directory; each write is atomic.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from ._files import write_json_atomic

# Kept equal to JOB_FILES in src/job/dir.ts (tests/python_sources_test.ts checks).
FILES = {
    "spec": "spec.json",
    "runtime": "runtime.json",
    "progress": "progress",
    "result": "result.json",
    "error": "error.json",
    "work": "work.blend",
    "dataBlocks": "data_blocks.blend",
}


@dataclass(frozen=True)
class JobDir:
    """One job's directory."""

    path: str

    def file(self, key: str) -> str:
        """The path of the file ``FILES[key]``."""
        return os.path.join(self.path, FILES[key])

    def write_runtime(self, info: dict[str, Any]) -> None:
        """Say that Blender reached the runtime: a failure after this is the job's, not start-up's."""
        write_json_atomic(self.file("runtime"), info)

    def write_error(self, record: dict[str, Any]) -> None:
        """Record the exception that ended the job."""
        write_json_atomic(self.file("error"), record)

    def write_result(self, result: dict[str, Any]) -> None:
        """Record the job's result."""
        write_json_atomic(self.file("result"), result)
