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


# Render engines by the names ``JobManager.render`` takes. EEVEE is ``BLENDER_EEVEE`` in 3.4, ``BLENDER_EEVEE_NEXT``
# from 4.2 (4.3 has only that one), and ``BLENDER_EEVEE`` again from 5.0 (5.2 has only that one).
_ENGINE_NAMES = {
    "CYCLES": ("CYCLES",),
    "EEVEE": ("BLENDER_EEVEE", "BLENDER_EEVEE_NEXT"),
    "BLENDER_EEVEE": ("BLENDER_EEVEE", "BLENDER_EEVEE_NEXT"),
    "BLENDER_EEVEE_NEXT": ("BLENDER_EEVEE_NEXT", "BLENDER_EEVEE"),
    "WORKBENCH": ("BLENDER_WORKBENCH",),
}


def set_render_engine(scene: Any, name: str) -> str:
    """Set ``scene.render.engine`` from ``CYCLES``, ``EEVEE``, ``WORKBENCH`` or an engine identifier; return it."""
    error: Exception | None = None
    for identifier in _ENGINE_NAMES.get(name.upper(), (name,)):
        try:
            scene.render.engine = identifier
            return identifier
        except TypeError as problem:  # Not an engine of this Blender; the message lists the ones it has.
            error = problem
    raise ValueError(f"this Blender has no render engine {name!r}: {error}")


def use_image_format(settings: Any, fallback: str = "PNG") -> None:
    """Make ``settings`` (ImageFormatSettings) write still images: a video format becomes ``fallback``.

    5.0 added ``media_type`` ('IMAGE', 'MULTI_LAYER_IMAGE', 'VIDEO'), which must change before ``file_format``.
    """
    if settings.file_format not in {"FFMPEG", "AVI_JPEG", "AVI_RAW"}:
        return
    if hasattr(settings, "media_type"):
        settings.media_type = "IMAGE"
    settings.file_format = fallback


def use_video_format(settings: Any) -> None:
    """Make ``settings`` (ImageFormatSettings) write a video through FFmpeg (5.0+: media type 'VIDEO' first)."""
    if hasattr(settings, "media_type"):
        settings.media_type = "VIDEO"
    settings.file_format = "FFMPEG"


def sequencer_strips(editor: Any) -> Any:
    """The top-level strips of a SequenceEditor: ``sequences`` in 3.4 and 4.3, ``strips`` from 4.4 (5.0 dropped
    ``sequences``)."""
    return editor.strips if hasattr(editor, "strips") else editor.sequences


# Add-ons that Blender 4.2 built in (there is no add-on of that name to enable from 4.2 on): name -> what replaced it.
_ADDONS_BUILT_IN_4_2 = {
    "io_import_images_as_planes": "File > Import > Images as Planes (bpy.ops.image.import_as_mesh_planes)",
}


def built_in_addon(bpy: Any, name: str) -> str | None:
    """What replaced the add-on ``name`` in this Blender, when it was built in (4.2+); else ``None``."""
    return _ADDONS_BUILT_IN_4_2.get(name) if bpy.app.version >= (4, 2, 0) else None


def drop_unavailable_denoiser(scene: Any) -> bool:
    """Turn Cycles' denoising off in ``scene`` (and its view layers) when this build has no OpenImageDenoise and the
    scene asks for it; return whether it did.

    Debian's Blender 3.4 fails such a render ("Build without OpenImageDenoiser"); 4.3 and 5.2 builds lack it too.
    This is a build difference, not a version one, read from Cycles' own module.
    """
    try:
        import _cycles  # noqa: PLC0415 - Cycles' C module, present when Cycles is
    except ImportError:
        return False
    if getattr(_cycles, "with_openimagedenoise", True) or not scene.cycles.use_denoising:
        return False
    if getattr(scene.cycles, "denoiser", "") not in ("", "OPENIMAGEDENOISE"):  # '' when the build has none at all
        return False
    scene.cycles.use_denoising = False
    for layer in scene.view_layers:
        if hasattr(layer, "cycles"):
            layer.cycles.use_denoising = False
    return True
