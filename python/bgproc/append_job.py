"""bgproc's own job for ``JobManager.appendDataBlocks``: append (or link) blocks from a library into a .blend file.

``passed_data``: ``library`` (path), ``blocks`` ({collection: [names]}), ``into`` (target .blend, made when missing),
``overwrite`` (remap users of same-named blocks to the new ones and remove the old ones), ``link``.
Sets ``python_data["names"]``: {collection: [name as it ended up in the target]}, in the order given.
"""

import os

import bpy

from bgproc._data_blocks import DataBlockError, append_blocks

library = passed_data["library"]
blocks = passed_data["blocks"]
into = passed_data["into"]
overwrite = bool(passed_data.get("overwrite", False))
link = bool(passed_data.get("link", False))

if os.path.exists(into):
    bpy.ops.wm.open_mainfile(filepath=into, load_ui=False)
before = {collection: {block.name for block in getattr(bpy.data, collection)} for collection in blocks}

try:
    loaded = iter(append_blocks(bpy, path=library, blocks=blocks, link=link))
except DataBlockError as error:
    raise KeyError(str(error)) from None

names: dict[str, list[str]] = {}
for collection, wanted in blocks.items():
    data = getattr(bpy.data, collection)
    final = []
    for name in wanted:
        block = next(loaded)
        if overwrite and name in before[collection]:
            old = data.get((name, None)) if link else data.get(name)
            if old is not None and old != block:
                old.user_remap(block)
                data.remove(old)
                if not link:
                    block.name = name
        if collection == "objects" and not link and block.users_collection == ():
            bpy.context.scene.collection.objects.link(block)
        final.append(block.name)
    names[collection] = final

bpy.ops.wm.save_as_mainfile(filepath=into, compress=False)
python_data = {"names": names, "into": into}
