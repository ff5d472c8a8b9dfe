import bpy

python_data = {"objects": len(bpy.data.objects)}
