"""bgproc's runtime inside Blender.

A script run by bgproc gets its inputs as globals (``passed_data``, ``passed_data_blocks``,
``source_blend_file``, ``update_job_progress``, ``job_folder``). Scripts that prefer a module can use this one::

    import bgproc
    bgproc.update_job_progress(0.5)
    size = bgproc.passed_data["size"]
"""

from __future__ import annotations

from typing import Any

from . import _context

__all__ = ["job_folder", "passed_data", "passed_data_blocks", "source_blend_file", "update_job_progress"]


def update_job_progress(value: float) -> None:
    """Report the running job's progress, a number from 0.0 to 1.0."""
    _context.current()["update_job_progress"](value)


def __getattr__(name: str) -> Any:
    if name in ("passed_data", "passed_data_blocks", "source_blend_file", "job_folder"):
        return _context.current()[name]
    raise AttributeError(f"module 'bgproc' has no attribute {name!r}")
