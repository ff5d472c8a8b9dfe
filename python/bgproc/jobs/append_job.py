"""bgproc's own job for ``JobManager.appendDataBlocks``: append (or link) blocks from a library into a .blend file.

``passed_data``: ``library`` (path), ``blocks`` ({collection: [names]}), ``into`` (target .blend, made when missing),
``overwrite``, ``link``; with ``in_job_folder``, ``library`` and ``into`` are names in the job's folder (its inputs).
Sets ``python_data["names"]``: {collection: [name as it ended up in the target]}, in the order given.

``overwrite`` does what the add-on's ``retrieve_data(overwrite_data=True)`` did, for every block the append brings
(the named ones and what they use: meshes, materials, ...): the target's local blocks of the same names are set aside
under temporary names first, so the new blocks keep their own names; then the users of each old block are remapped to
its new namesake and the old blocks (with their shape keys) are removed. Old blocks the append brought no namesake for
get their names back. So appending the same blocks twice leaves the target as once: no ``.001`` copies, no orphans.
"""

import os

import bpy

from bgproc._compat import data_block_collections
from bgproc._data_blocks import DataBlockError, added_since, append_blocks, pointers

library = passed_data["library"]
blocks = passed_data["blocks"]
into = passed_data["into"]
if passed_data.get("in_job_folder"):
    # The library and the target came as the job's inputs (from another machine): the changed target goes back.
    library = os.path.join(job_folder, library)
    into = os.path.join(job_folder, into)
overwrite = bool(passed_data.get("overwrite", False))
link = bool(passed_data.get("link", False))

if os.path.exists(into):
    bpy.ops.wm.open_mainfile(filepath=into, load_ui=False)


def set_aside(path):
    """Rename the target's local blocks that share a name with a block of the library ``path``; return them.

    Each entry is ``(collection, block, name, shape key or None, its name)``; shape keys go with their owner
    (Blender lists none in a library), also renamed, so the library's keep their names too.
    """
    with bpy.data.libraries.load(path) as (source, _):
        held = {collection: set(getattr(source, collection, None) or []) for collection in data_block_collections(bpy)}
    old = []
    for collection, names in held.items():
        for block in getattr(bpy.data, collection) if names else ():
            if block.library is None and block.name in names:
                key = getattr(block, "shape_keys", None)
                old.append((collection, block, block.name, key, None if key is None else key.name))
    for index, (_, block, _, key, _) in enumerate(old):
        block.name = f"bgproc-old-{index}"
        if key is not None:
            key.name = f"bgproc-old-key-{index}"
    return old


def replace(old, added):
    """Remap the users of each set-aside block to the new block of its name and remove it; rename back the rest."""
    new = {(collection, block.name): block for collection, block in added}
    removed = []
    for collection, block, name, key, key_name in old:
        replacement = new.get((collection, name))
        if replacement is None:
            block.name = name
            if key is not None:
                key.name = key_name
            continue
        block.user_remap(replacement)
        removed += [block] if key is None else [block, key]
    bpy.data.batch_remove(removed)


old = set_aside(library) if overwrite else []
before = pointers(bpy)
try:
    loaded = append_blocks(bpy, path=library, blocks=blocks, link=link)
except DataBlockError as error:
    raise KeyError(str(error)) from None
replace(old, added_since(bpy, before))

names = {}
loaded_blocks = iter(loaded)
for collection, wanted in blocks.items():
    final = []
    for _ in wanted:
        block = next(loaded_blocks)
        if collection == "objects" and not link and block.users_collection == ():
            bpy.context.scene.collection.objects.link(block)
        final.append(block.name)
    names[collection] = final

bpy.ops.wm.save_as_mainfile(filepath=into, compress=False)
python_data = {"names": names, "into": into}
