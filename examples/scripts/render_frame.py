"""Builds a small scene and renders one frame of it with Cycles (CPU) to a PNG; reports no progress itself."""
# passed_data: {"frame": 1, "samples": 16}

import math
import os

import bpy

frame = int(passed_data["frame"])
scene = bpy.context.scene
bpy.ops.mesh.primitive_monkey_add(rotation=(0, 0, math.radians(frame * 30)))
bpy.ops.object.shade_smooth()
bpy.ops.object.light_add(type="SUN", location=(2, -2, 4))
bpy.ops.object.camera_add(location=(0, -4, 1), rotation=(math.radians(80), 0, 0))
scene.camera = bpy.context.active_object
scene.render.engine = "CYCLES"
scene.cycles.device = "CPU"
scene.cycles.samples = int(passed_data.get("samples", 128))
scene.cycles.use_denoising = False
scene.render.resolution_x, scene.render.resolution_y = 320, 240
scene.render.image_settings.file_format = "PNG"
# "out" from examples/render.ts; "output_dir" from the service (`bgproc serve --outputs DIR`), for thumbnails.
out = passed_data.get("out") or passed_data["output_dir"]
scene.render.filepath = os.path.join(out, f"frame_{frame:03d}.png")
bpy.ops.render.render(write_still=True)
python_data = {"frame": frame, "file": scene.render.filepath}
