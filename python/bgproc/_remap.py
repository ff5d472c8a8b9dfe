"""Absolute paths of a .blend whose files were laid out elsewhere (a NATS worker's folder of the host's paths).

The worker puts every file a job's .blend uses at the path it had on the host, under a folder (``pathRoot``): relative
paths resolve by themselves. An absolute path (``/mnt/textures/sky.png``) is looked up under that folder when the file
is opened, in the job's own copy: the user's file is not changed.
"""

from __future__ import annotations

import os
from typing import Any, Callable, Optional

#: The collections whose blocks name a file by ``filepath`` (linked libraries are done first, on their own).
FILE_COLLECTIONS = ("images", "movieclips", "sounds", "fonts", "volumes", "cache_files", "texts")


def remap_absolute_paths(bpy: Any, root: str, warn: Callable[[str], None]) -> int:
    """Point each absolute path at its copy under ``root``; return how many were changed."""
    changed = 0
    for library in bpy.data.libraries:
        target = _under(root, library.filepath)
        if target is not None:
            library.filepath = target
            try:
                library.reload()
            except RuntimeError as error:
                warn(f"the library {target} could not be loaded again from its copy: {error}")
            changed += 1
    for collection in FILE_COLLECTIONS:
        for block in getattr(bpy.data, collection, []):
            if block.library is not None or getattr(block, "packed_file", None) is not None:
                continue  # A linked block's path is its library's to say; a packed one has no file.
            target = _under(root, block.filepath)
            if target is None:
                continue
            block.filepath = target
            if collection == "images":
                block.reload()
            changed += 1
    return changed


def _under(root: str, path: str) -> Optional[str]:
    """``path``'s copy under ``root``, when ``path`` is absolute and its copy (or its folder, for a sequence or UDIM
    tiles) is there; else ``None``. The copy wins over a file of that path here: the job uses what its host sent."""
    if not path or path.startswith("//") or not os.path.isabs(path) or path == "<builtin>":
        return None
    target = os.path.normpath(os.path.join(root, path.lstrip(os.sep)))
    if not target.startswith(os.path.join(root, "")):
        return None
    if os.path.exists(target) or os.path.isdir(os.path.dirname(target)):
        return target
    return None
