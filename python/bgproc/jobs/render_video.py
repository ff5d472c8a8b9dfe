"""bgproc's own job for the video step of ``JobManager.render``: frames to a video with Blender's sequencer.

``passed_data``: ``frames`` (image paths in one folder, in video order; with ``in_job_folder``, names of the job's
inputs, and ``path`` a name in the job's folder too), ``path`` (the video file; its extension
picks the container: .mp4, .mkv, .mov, .avi or .webm), ``fps`` and ``codec`` (an FFmpeg codec identifier of
Blender's, e.g. ``H264``). Reports progress per frame written. Sets ``python_data``: ``path``, ``frames`` (count).
"""

import math
import os

import bpy

from bgproc._compat import sequencer_strips, use_video_format

CONTAINERS = {".mp4": "MPEG4", ".mkv": "MKV", ".mov": "QUICKTIME", ".avi": "AVI", ".webm": "WEBM"}

if not bpy.app.ffmpeg.supported:
    raise RuntimeError(
        f"Blender {bpy.app.version_string} was built without FFmpeg (bpy.app.ffmpeg.supported is False), "
        "so it cannot write videos: the frames are rendered; make the video with another tool"
    )

frames = list(passed_data["frames"])
path = passed_data["path"]
if passed_data.get("in_job_folder"):
    # The frames came as the job's inputs (from another machine): names in the job's folder, and so is the video.
    frames = [os.path.join(job_folder, frame) for frame in frames]
    path = os.path.join(job_folder, path)
fps = float(passed_data["fps"])
extension = os.path.splitext(path)[1].lower()
if extension not in CONTAINERS:
    raise ValueError(f"the video's extension {extension!r} is not one of {', '.join(CONTAINERS)}")

os.makedirs(os.path.dirname(path), exist_ok=True)
scene = bpy.context.scene
first = bpy.data.images.load(frames[0])
width, height = first.size
bpy.data.images.remove(first)
scene.render.resolution_x, scene.render.resolution_y = width, height
scene.render.resolution_percentage = 100
scene.frame_start, scene.frame_end = 1, len(frames)
scene.render.fps = max(1, math.ceil(fps))
scene.render.fps_base = scene.render.fps / fps
scene.view_settings.view_transform = "Standard"  # The frames are display images already: pass them through.
scene.view_settings.look = "None"

editor = scene.sequence_editor_create()
strip = sequencer_strips(editor).new_image(name="frames", filepath=frames[0], channel=1, frame_start=1)
for frame in frames[1:]:
    strip.elements.append(os.path.basename(frame))

use_video_format(scene.render.image_settings)
scene.render.ffmpeg.format = CONTAINERS[extension]
scene.render.ffmpeg.codec = passed_data["codec"]
scene.render.filepath = path
scene.render.use_file_extension = False

written = []


def frame_written(*_args):
    written.append(1)
    update_job_progress(min(1.0, len(written) / len(frames)))


bpy.app.handlers.render_write.append(frame_written)
try:
    bpy.ops.render.render(animation=True, scene=scene.name)
finally:
    bpy.app.handlers.render_write.remove(frame_written)
if not os.path.isfile(path):
    raise FileNotFoundError(f"Blender rendered the video but did not write {path}")
python_data = {"path": path, "frames": len(frames)}
