"""bgproc's own job for ``JobManager.render``: render some frames of the job's .blend file into its job folder.

``passed_data``: ``frames`` (frame numbers), and the overrides that are not None:
``scene`` (its name), ``camera`` (a camera object's name), ``engine`` (``CYCLES``, ``EEVEE``, ``WORKBENCH`` or an
engine identifier), ``samples`` (Cycles and EEVEE), ``resolution`` ([width, height], at 100 %).
Each frame goes to ``//frame_####`` (the job folder, where the working copy of the .blend file is) plus the
extension of the scene's image format (a video format is replaced by PNG), so the frames are the job's outputs: the
manager moves them into the render's folder, from whichever machine ran the chunk. Progress is reported after each
frame. Sets ``python_data``: ``frames`` ([{frame, file}] in the order rendered, ``file`` relative to the job
folder) and ``fps`` (the scene's frame rate).
"""

import os
import sys

import bpy

from bgproc._compat import drop_unavailable_denoiser, set_render_engine, use_image_format

frames = [int(frame) for frame in passed_data["frames"]]
output_dir = bpy.path.abspath("//")

scene = bpy.context.scene
if passed_data.get("scene") is not None:
    scene = bpy.data.scenes.get(passed_data["scene"])
    if scene is None:
        names = ", ".join(repr(s.name) for s in bpy.data.scenes)
        raise KeyError(f"there is no scene {passed_data['scene']!r} in this .blend file (it has {names})")
if passed_data.get("camera") is not None:
    camera = bpy.data.objects.get(passed_data["camera"])
    if camera is None or camera.type != "CAMERA":
        names = ", ".join(repr(o.name) for o in bpy.data.objects if o.type == "CAMERA") or "none"
        raise KeyError(f"there is no camera object {passed_data['camera']!r} in this .blend file (cameras: {names})")
    scene.camera = camera
if scene.camera is None:
    raise ValueError(f"scene {scene.name!r} has no camera to render with: set one, or pass 'camera'")

engine = scene.render.engine
if passed_data.get("engine") is not None:
    engine = set_render_engine(scene, passed_data["engine"])
if passed_data.get("samples") is not None:
    if engine == "CYCLES":
        scene.cycles.samples = int(passed_data["samples"])
    elif engine.startswith("BLENDER_EEVEE"):
        scene.eevee.taa_render_samples = int(passed_data["samples"])
    else:
        print(f"bgproc: 'samples' applies to Cycles and EEVEE, not to {engine}: ignored")
if passed_data.get("resolution") is not None:
    scene.render.resolution_x, scene.render.resolution_y = (int(size) for size in passed_data["resolution"])
    scene.render.resolution_percentage = 100

if engine == "CYCLES" and drop_unavailable_denoiser(scene):
    print("bgproc: this Blender's Cycles has no OpenImageDenoise: rendering without denoising", file=sys.stderr)
use_image_format(scene.render.image_settings)
scene.render.filepath = os.path.join(output_dir, "frame_####")
scene.render.use_file_extension = True

# write_still does not put the frame number into the file name: name each frame's file from the pattern first.
paths = [scene.render.frame_path(frame=frame) for frame in frames]
rendered = []
for index, (frame, path) in enumerate(zip(frames, paths)):
    scene.frame_set(frame)
    scene.render.filepath = path
    bpy.ops.render.render(write_still=True, scene=scene.name)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"Blender rendered frame {frame} but did not write {path}")
    rendered.append({"frame": frame, "file": os.path.relpath(path, output_dir)})
    update_job_progress((index + 1) / len(frames))

python_data = {"frames": rendered, "fps": scene.render.fps / scene.render.fps_base}
