"""The smallest job: greet whoever passed_data names, and say which Blender did it."""
# passed_data: {"who": "world"}

import bpy

python_data = {
    "greeting": f"Hello, {passed_data.get('who', 'world')}!",
    "blender": bpy.app.version_string,
    "objects_in_empty_scene": len(bpy.data.objects),
}
