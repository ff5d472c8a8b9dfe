"""bgproc's own job for ``JobManager.dependencies``: every file a .blend uses, found by Blender itself.

``passed_data``: ``blend`` (the .blend file's path), ``script`` (a script whose imports from its own folder count too,
or ``None``). Sets ``python_data["files"]``: one entry per file, ``{"path", "kind", "written", "exists", "size"}``:
``path`` absolute (a path inside a linked library resolved from that library's folder, as Blender does), ``written``
as the .blend (or library) holds it (``//`` relative, or absolute), ``kind`` what uses it. Packed files are not listed:
they travel inside the .blend.

What is found: linked libraries (those they link, too: Blender loads them all), images (each tile of a UDIM image, each
file of an image sequence), movie clips (and their sequences), sounds, fonts, volumes, cache files (Alembic, USD),
text blocks from files, point caches on disk and fluid caches (every file of their folders), and whatever else Blender's
own list of external files (``bpy.utils.blend_paths``) holds; plus the modules the script imports from its own folder.
"""

import ast
import glob
import os
import re

import bpy

blend = passed_data["blend"]
script = passed_data.get("script")
bpy.ops.wm.open_mainfile(filepath=blend, load_ui=False, use_scripts=False)  # Nothing of the file's runs.

found = {}
#: The folders searched for a sequence's files, UDIM tiles and cache files: a file added there is found next time.
searched = set()


def add(path, kind, written=None):
    """List ``path`` (absolute) once, under the first kind that used it."""
    if not path:
        return
    path = os.path.normpath(path)
    if path in found:
        return
    exists = os.path.isfile(path)
    found[path] = {
        "path": path,
        "kind": kind,
        "written": path if written is None else written,
        "exists": exists,
        "size": os.path.getsize(path) if exists else 0,
    }


def absolute(raw, block):
    """``raw`` (a block's path as stored) made absolute from the folder of the file that holds ``block``."""
    return bpy.path.abspath(raw, library=getattr(block, "library", None))


DIGITS = re.compile(r"^(.*?)(\d+)(\.[^.]*)?$")


def numbered(path):
    """The files of the numbered series ``path`` is one of (image sequences: ``frame_0001.png``, ``frame_0002.png``)."""
    folder, name = os.path.split(path)
    match = DIGITS.match(name)
    if match is None:
        return [path]
    prefix, _, ext = match.group(1), match.group(2), match.group(3) or ""
    pattern = re.compile(re.escape(prefix) + r"\d+" + re.escape(ext) + "$")
    if not os.path.isdir(folder):
        return [path]
    searched.add(folder)
    return sorted(os.path.join(folder, other) for other in os.listdir(folder) if pattern.match(other)) or [path]


def tiles(path):
    """The tiles of a UDIM image: its ``<UDIM>`` (or ``1001``) replaced by each tile number that has a file."""
    token = "<UDIM>" if "<UDIM>" in path else ("1001" if "1001" in os.path.basename(path) else None)
    if token is None:
        return [path]
    head, tail = path.rsplit(token, 1)
    if os.path.isdir(os.path.dirname(head) or "."):
        searched.add(os.path.dirname(head) or ".")
    return sorted(glob.glob(glob.escape(head) + "[0-9][0-9][0-9][0-9]" + glob.escape(tail))) or [path]


#: The most files listed of one cache folder (a cache set to a folder such as ``/tmp`` must not list a disk).
MAX_CACHE_FILES = 20_000


def cache_folder(folder, kind):
    """The files under ``folder`` (a point or fluid cache on disk); a file system's root is not walked."""
    folder = os.path.normpath(folder)
    if folder == os.path.dirname(folder):
        return
    listed = 0
    for root, _, names in os.walk(folder):
        searched.add(root)
        for name in sorted(names):
            if listed >= MAX_CACHE_FILES:
                return
            add(os.path.join(root, name), kind)
            listed += 1


for library in bpy.data.libraries:
    add(absolute(library.filepath, library), "library", library.filepath)
for image in bpy.data.images:
    if image.packed_file is not None or image.source not in {"FILE", "SEQUENCE", "TILED", "MOVIE"}:
        continue
    path = absolute(image.filepath, image)
    expanded = tiles(path) if image.source == "TILED" else numbered(path) if image.source == "SEQUENCE" else [path]
    for each in expanded:
        add(each, "image", image.filepath if each == path else None)
for clip in bpy.data.movieclips:
    path = absolute(clip.filepath, clip)
    for each in numbered(path) if clip.source == "SEQUENCE" else [path]:
        add(each, "movie clip", clip.filepath if each == path else None)
for collection, kind in (("sounds", "sound"), ("fonts", "font"), ("volumes", "volume"), ("cache_files", "cache")):
    for block in getattr(bpy.data, collection, []):
        if getattr(block, "packed_file", None) is not None or block.filepath in ("", "<builtin>"):
            continue
        add(absolute(block.filepath, block), kind, block.filepath)
for text in bpy.data.texts:
    if not text.is_in_memory and text.filepath:
        add(absolute(text.filepath, text), "text", text.filepath)

blend_stem = os.path.splitext(os.path.basename(blend))[0]
for obj in bpy.data.objects:
    for modifier in obj.modifiers:
        caches = [getattr(modifier, "point_cache", None)]
        if modifier.type == "PARTICLE_SYSTEM":
            caches.append(modifier.particle_system.point_cache)
        for cache in caches:
            if cache is None or not cache.use_disk_cache:
                continue
            folder = cache.filepath if cache.use_external else "//blendcache_" + blend_stem
            cache_folder(bpy.path.abspath(folder, library=obj.library), "point cache")
        if modifier.type == "FLUID" and modifier.fluid_type == "DOMAIN":
            cache_folder(bpy.path.abspath(modifier.domain_settings.cache_directory, library=obj.library), "fluid cache")

# Anything else Blender counts as an external file (its own list; relative to the file that holds it).
for path in bpy.utils.blend_paths(absolute=True, packed=False, local=False):
    if "<UDIM>" not in path and not os.path.isdir(path):  # UDIM tiles and cache folders are listed file by file above
        add(path, "other")


def imported_modules(path, folder, seen):
    """The modules ``path`` imports from ``folder`` (``helper.py``, a package's ``.py`` files), and theirs."""
    try:
        with open(path, "rb") as handle:
            tree = ast.parse(handle.read(), filename=path)
    except (OSError, SyntaxError, ValueError):
        return
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    for name in sorted(names):
        module = os.path.join(folder, name + ".py")
        package = os.path.join(folder, name)
        files = [module] if os.path.isfile(module) else []
        if os.path.isfile(os.path.join(package, "__init__.py")):
            for root, _, entries in os.walk(package):
                files.extend(os.path.join(root, entry) for entry in sorted(entries) if entry.endswith(".py"))
        for each in files:
            if each in seen:
                continue
            seen.add(each)
            add(each, "module")
            imported_modules(each, folder, seen)


if script:
    imported_modules(script, os.path.dirname(os.path.abspath(script)), {os.path.abspath(script)})

python_data = {"blend": os.path.abspath(blend), "files": list(found.values()), "folders": sorted(searched)}
