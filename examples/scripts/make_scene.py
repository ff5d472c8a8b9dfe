"""Saves a scene with a red cube called 'Cube' where ``out`` says."""

import bpy

bpy.ops.mesh.primitive_cube_add()
cube = bpy.context.active_object
cube.name = "Cube"
red = bpy.data.materials.new("Red")
red.diffuse_color = (0.8, 0.1, 0.1, 1)
cube.data.materials.append(red)
bpy.ops.wm.save_as_mainfile(filepath=passed_data["out"])
