"""Data blocks in and out of a job: append the passed ones from a .blend library, write the returned ones to one."""

from __future__ import annotations

import os
from typing import Any

from . import _compat


class DataBlockError(Exception):
    """Passed or returned data blocks that cannot be loaded or written."""


def append_blocks(bpy: Any, *, path: str, blocks: dict[str, list[str]], link: bool = False) -> list[Any]:
    """Append (or link) the named blocks and what they use from the library at ``path``; return them in order."""
    with bpy.data.libraries.load(path, link=link) as (source, target):
        for collection, names in blocks.items():
            available = set(getattr(source, collection, None) or [])
            missing = [name for name in names if name not in available]
            if missing:
                raise DataBlockError(
                    f"{path} has no {collection} named {', '.join(map(repr, missing))} "
                    f"(it has: {', '.join(map(repr, sorted(available))) or 'none'})"
                )
            setattr(target, collection, list(names))
    appended: list[Any] = []
    for collection in blocks:
        for index, block in enumerate(getattr(target, collection)):
            if block is None:
                raise DataBlockError(f"Blender could not append {collection} {blocks[collection][index]!r} from {path}")
            appended.append(block)
    return appended


def describe(bpy: Any, block: Any, index: int) -> dict[str, str]:
    """The manifest entry of ``data_blocks[index]``; raises naming the index when it is not a live ID block."""
    if block is None:
        raise DataBlockError(f"data_blocks[{index}] is None")
    if not isinstance(block, bpy.types.ID):
        raise DataBlockError(
            f"data_blocks[{index}] is a {type(block).__name__}, not a Blender data block (bpy.types.ID)"
        )
    try:
        name = block.name
    except ReferenceError:
        raise DataBlockError(f"data_blocks[{index}] was removed from Blender's data before the job ended") from None
    collections = _compat.data_block_collections(bpy)
    collection = _compat.collection_of(bpy, block, collections)
    if collection is not None:
        kind = block.type if collection == "objects" else collections[collection].upper()
        return {"collection": collection, "name": name, "type": kind}
    raise DataBlockError(f"data_blocks[{index}] ({name!r}) is a {type(block).__name__}, which bgproc cannot send back")


def write_blocks(bpy: Any, blocks: Any, *, path: str) -> dict[str, Any] | None:
    """Write the script's ``data_blocks`` to ``data_blocks.blend`` (fake user set) and return the manifest."""
    if blocks is None:
        return None
    if not isinstance(blocks, (list, tuple)):
        raise DataBlockError(f"data_blocks must be a list of Blender data blocks, not {type(blocks).__name__}")
    if not blocks:
        return None
    manifest = [describe(bpy, block, index) for index, block in enumerate(blocks)]
    tmp = path + ".tmp.blend"
    _compat.write_library(bpy, tmp, set(blocks))
    os.replace(tmp, path)
    return {"path": path, "blocks": manifest}
