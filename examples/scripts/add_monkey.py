"""Adds a row of monkeys, subdivides them, and reports what it made.

Runs inside Blender under bgproc: ``passed_data``, ``size``, ``count`` and ``update_job_progress``
are given by the runtime.
"""
# passed_data: {"size": 1, "count": 4}

import bpy

count = int(passed_data.get("count", 5))
objects = []
for i in range(count):
    bpy.ops.mesh.primitive_monkey_add(size=size, location=(i * size * 2.5, 0, 0))  # noqa: F821 - passed_data["size"]
    monkey = bpy.context.active_object
    monkey.name = f"Monkey.{i:02d}"
    modifier = monkey.modifiers.new("Subdivision", "SUBSURF")
    modifier.levels = 2
    depsgraph = bpy.context.evaluated_depsgraph_get()
    evaluated = monkey.evaluated_get(depsgraph)
    objects.append({"name": monkey.name, "vertices": len(evaluated.data.vertices)})
    update_job_progress((i + 1) / count)

python_data = {
    "label": passed_data.get("label", ""),
    "objects": objects,
    "total_vertices": sum(o["vertices"] for o in objects),
    "blender": bpy.app.version_string,
}
