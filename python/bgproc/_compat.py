"""Where Blender's Python API differs between the versions bgproc supports (3.4, 4.3, 5.2 LTS): the one place.

Each difference names the version that changed it. Everything else in the runtime uses only what all of them share.
"""

from __future__ import annotations

from typing import Any

# BlendData collection properties that hold no data blocks of their own kind: ``all_ids`` (5.0+) lists every ID,
# ``libraries``, ``screens`` and ``window_managers`` are UI and file bookkeeping, never passed or returned by a job.
_NOT_DATA_BLOCKS = frozenset({"all_ids", "libraries", "screens", "window_managers"})


def data_block_collections(bpy: Any) -> dict[str, str]:
    """The ``bpy.data`` collections that hold data blocks, as {collection: RNA type name}, read from this Blender.

    The set differs by version, so it is read from ``BlendData``'s RNA rather than listed here:

    - 4.3 has ``grease_pencils`` (legacy, type ``GreasePencil``) and ``grease_pencils_v3`` (``GreasePencilv3``).
    - 5.0 turned the legacy kind into ``annotations`` (``Annotation``) and renamed ``grease_pencils_v3`` to
      ``grease_pencils`` (``GreasePencil``), and added ``all_ids``.
    """
    found: dict[str, str] = {}
    for prop in bpy.types.BlendData.bl_rna.properties:
        if prop.type != "COLLECTION" or prop.identifier in _NOT_DATA_BLOCKS:
            continue
        fixed = getattr(prop, "fixed_type", None)
        if fixed is not None and issubclass(getattr(bpy.types, fixed.identifier, object), bpy.types.ID):
            found[prop.identifier] = fixed.identifier
    return found


def collection_of(bpy: Any, block: Any, collections: dict[str, str]) -> str | None:
    """The ``bpy.data`` collection that holds ``block`` (an ID), or None when it is of no collection above.

    A subclass belongs to its base's collection (``ShaderNodeTree`` to ``node_groups``, ``PointLight`` to
    ``lights``); the most derived match wins, so 4.3's ``GreasePencilv3`` never counts as a legacy ``GreasePencil``.
    """
    best: tuple[int, str] | None = None
    for collection, type_name in collections.items():
        cls = getattr(bpy.types, type_name, None)
        if cls is not None and isinstance(block, cls):
            depth = len(cls.__mro__)
            if best is None or depth > best[0]:
                best = (depth, collection)
    return None if best is None else best[1]


def write_library(bpy: Any, path: str, blocks: set[Any]) -> None:
    """Write ``blocks`` (and what they use) to the library ``path``, uncompressed, with absolute paths and fake users.

    5.0 made ``libraries.write``'s options keyword-only and ``path_remap`` an enum ('NONE', 'ABSOLUTE', ...);
    3.4 and 4.3 take the same keywords and enum names, so keywords serve every version.
    """
    bpy.data.libraries.write(path, blocks, path_remap="ABSOLUTE", fake_user=True, compress=False)


# Add-ons that Blender 4.2 built in (there is no add-on of that name to enable from 4.2 on): name -> what replaced it.
_ADDONS_BUILT_IN_4_2 = {
    "io_import_images_as_planes": "File > Import > Images as Planes (bpy.ops.image.import_as_mesh_planes)",
}


def built_in_addon(bpy: Any, name: str) -> str | None:
    """What replaced the add-on ``name`` in this Blender, when it was built in (4.2+); else ``None``."""
    return _ADDONS_BUILT_IN_4_2.get(name) if bpy.app.version >= (4, 2, 0) else None
