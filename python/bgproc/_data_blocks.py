"""Data blocks in and out of a job: append the passed ones from a .blend library, write the returned ones to one."""

from __future__ import annotations

import os
from typing import Any, Iterator

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


def all_blocks(bpy: Any) -> Iterator[tuple[str, Any]]:
    """Every data block in Blender's data, as ``(collection, block)``, collection by collection."""
    for collection in _compat.data_block_collections(bpy):
        for block in getattr(bpy.data, collection):
            yield collection, block


def pointers(bpy: Any) -> set[int]:
    """The addresses of every data block now in Blender's data: what ``added_since`` compares with."""
    return {block.as_pointer() for _, block in all_blocks(bpy)}


def added_since(bpy: Any, before: set[int]) -> list[tuple[str, Any]]:
    """The data blocks, as ``(collection, block)``, that Blender's data holds now and did not at ``before``."""
    return [(collection, block) for collection, block in all_blocks(bpy) if block.as_pointer() not in before]


def with_dependencies(selected: list[Any], added: list[tuple[str, Any]]) -> list[Any]:
    """``selected`` in its order, then every other block in ``added`` (what they brought with them)."""
    seen = {block.as_pointer() for block in selected}
    return [*selected, *(block for _, block in added if block.as_pointer() not in seen)]


def describe(bpy: Any, block: Any, index: int) -> dict[str, Any]:
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
        return _entry(collection, block, collections, returned=True)
    raise DataBlockError(f"data_blocks[{index}] ({name!r}) is a {type(block).__name__}, which bgproc cannot send back")


def _entry(collection: str, block: Any, collections: dict[str, str], *, returned: bool) -> dict[str, Any]:
    kind = block.type if collection == "objects" else collections[collection].upper()
    return {"collection": collection, "name": block.name, "type": kind, "returned": returned}


def write_blocks(bpy: Any, blocks: Any, *, path: str) -> dict[str, Any] | None:
    """Write the script's ``data_blocks`` to ``data_blocks.blend`` (fake user set) and return the manifest.

    The manifest lists every block the library holds: the script's own (``returned``, in its order) and what they
    use (meshes, materials, ...), as the add-on's retrieved data did. ``None`` or an empty list returns nothing.
    """
    if blocks is None:
        return None
    if not isinstance(blocks, (list, tuple)):
        raise DataBlockError(f"data_blocks must be a list of Blender data blocks, not {type(blocks).__name__}")
    if not blocks:
        return None
    manifest: list[dict[str, Any]] = []
    listed: set[int] = set()
    for index, block in enumerate(blocks):
        entry = describe(bpy, block, index)
        if block.as_pointer() not in listed:
            listed.add(block.as_pointer())
            manifest.append(entry)
    tmp = path + ".tmp.blend"
    _compat.write_library(bpy, tmp, set(blocks))
    collections = _compat.data_block_collections(bpy)
    for collection, block in library_blocks(bpy, tmp, collections):
        if block.as_pointer() not in listed:
            listed.add(block.as_pointer())
            manifest.append(_entry(collection, block, collections, returned=False))
    os.replace(tmp, path)
    return {"path": path, "blocks": manifest}


def library_blocks(bpy: Any, path: str, collections: dict[str, str]) -> list[tuple[str, Any]]:
    """The local blocks of Blender's data that the library ``path`` (just written from them) holds.

    Blender lists a library's blocks by name, except shape keys (they cannot be linked on their own): those are
    the keys of the listed meshes, curves and lattices, which the library holds with them.
    """
    with bpy.data.libraries.load(path) as (source, _):
        held = {collection: list(getattr(source, collection, None) or []) for collection in collections}
    found: list[tuple[str, Any]] = []
    for collection, names in held.items():
        if not names:
            continue
        local = {block.name: block for block in getattr(bpy.data, collection) if block.library is None}
        found += [(collection, local[name]) for name in names if name in local]
    keys = [getattr(block, "shape_keys", None) for _, block in found]
    found += [("shape_keys", key) for key in keys if key is not None and "shape_keys" in collections]
    return found
