"""Turns the passed cube into a wall of bricks (an applied array modifier) and hands it back as 'Bricks'."""
# passed_data: {"columns": 6, "rows": 4}

import bpy

cube = passed_data_blocks[0]
bpy.context.scene.collection.objects.link(cube)
bpy.context.view_layer.objects.active = cube
cube.scale = (1.0, 0.5, 0.25)
for axis, count in ((0, int(passed_data.get("columns", 6))), (2, int(passed_data.get("rows", 4)))):
    array = cube.modifiers.new(f"Array{axis}", "ARRAY")
    array.count = count
    array.relative_offset_displace = [1.05 if i == axis else 0 for i in range(3)]
    bpy.ops.object.modifier_apply(modifier=array.name)
    update_job_progress(0.5 if axis == 0 else 1.0)
cube.name = "Bricks"
python_data = {"vertices": len(cube.data.vertices), "materials": [m.name for m in cube.data.materials]}
data_blocks = [cube]
