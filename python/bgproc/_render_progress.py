"""Progress from Blender's own rendering, for jobs whose script reports none (the job option ``progress``).

A render's progress is ``(frames done + the current frame's samples done) / frames``. The frame count is the
scene's frame range for an animation (``render.render(animation=True)``) and 1 for a still; the samples come from
Blender's render statistics (``Sample 3/16``), which Blender 3.4 does not pass to Python (its ``render_stats``
handler gets ``None``), so there progress moves once per frame. Each render of a job starts again from 0; the host
only ever publishes a value above the last one.
"""

from __future__ import annotations

import linecache
import os
import re
import sys
from typing import Any, Callable

_SAMPLE = re.compile(r"\bSample (\d+)/(\d+)")
_ANIMATION = re.compile(r"render\.render\([^)]*\banimation\s*=\s*(True|False)")
_RUNTIME_DIR = os.path.dirname(os.path.abspath(__file__))
_HANDLERS = ("render_init", "render_pre", "render_post", "render_stats")


def _is_animation(scene: Any) -> bool:
    """Whether the running ``render.render`` call renders the scene's frame range.

    Up to 4.x the operator's keywords are on the Python stack (``bpy.ops``' call wrapper holds them as ``kw``);
    5.x calls operators from C, so the calling line of Python is read instead (``animation=True`` in it). When
    neither says, a render that starts at the first frame of a range of several counts as an animation.
    """
    frame = sys._getframe(1)
    while frame is not None:
        code = frame.f_code
        kw = frame.f_locals.get("kw") if code.co_name == "__call__" else None
        if isinstance(kw, dict) and "bpy" in code.co_filename:
            return bool(kw.get("animation", False))
        if code.co_name == "<module>" or not code.co_filename.startswith(_RUNTIME_DIR):
            call = "".join(linecache.getline(code.co_filename, frame.f_lineno + i) for i in range(4))
            if "render.render(" in call:  # The call itself: without animation=True it renders a still.
                said = _ANIMATION.search(call)
                return said is not None and said.group(1) == "True"
        frame = frame.f_back
    return scene.frame_current == scene.frame_start and scene.frame_end > scene.frame_start


def _function(method: Callable[..., None]) -> Callable[..., None]:
    """A plain function calling ``method`` (``persistent`` takes functions, not bound methods)."""

    def handler(*args: Any) -> None:
        method(*args)

    return handler


class RenderProgress:
    """Blender's render handlers that turn a render into progress values for ``publish``."""

    def __init__(self, bpy: Any, publish: Callable[[float], None]) -> None:
        self._bpy = bpy
        self._publish = publish
        self._frames = 1
        self._done = 0
        self._handlers: list[tuple[str, Callable[..., None]]] = []

    def install(self) -> None:
        """Add the handlers (persistent, so a script that loads a file keeps them)."""
        persistent = self._bpy.app.handlers.persistent
        for name in _HANDLERS:
            handler = persistent(_function(getattr(self, "_on_" + name.split("_", 1)[1])))
            getattr(self._bpy.app.handlers, name).append(handler)
            self._handlers.append((name, handler))

    def remove(self) -> None:
        """Take the handlers out again (a pool worker's next job must not inherit them)."""
        for name, handler in self._handlers:
            handlers = getattr(self._bpy.app.handlers, name)
            if handler in handlers:
                handlers.remove(handler)
        self._handlers.clear()

    def _on_init(self, scene: Any, *_: Any) -> None:
        step = max(scene.frame_step, 1)
        count = len(range(scene.frame_start, scene.frame_end + 1, step))
        self._frames = max(count, 1) if _is_animation(scene) else 1
        self._done = 0
        self._publish(0.0)

    def _on_pre(self, *_: Any) -> None:
        self._publish(min(self._done / self._frames, 1.0))

    def _on_post(self, *_: Any) -> None:
        self._done += 1
        self._publish(min(self._done / self._frames, 1.0))

    def _on_stats(self, stats: Any = None, *_: Any) -> None:
        match = _SAMPLE.search(stats) if isinstance(stats, str) else None
        if match is None or int(match.group(2)) <= 0:
            return
        fraction = min(int(match.group(1)) / int(match.group(2)), 1.0)
        self._publish(min((self._done + fraction) / self._frames, 1.0))


def progress_sources(reporter: Any, mode: str) -> tuple[Callable[[float], None], Callable[[float], None] | None]:
    """The job's ``update_job_progress`` and the render progress publisher (or ``None``) for ``mode``.

    ``"script"``: only the script reports. ``"render"``: only renders do (the script's calls are ignored).
    ``"auto"``: renders do until the script first reports; from then on only the script does. The script gets the
    reporter's own bound ``update`` where it reports at all, as before this option existed.
    """
    if mode == "script":
        return reporter.update, None
    if mode == "render":
        return _ignored, reporter.update_from_render
    return reporter.update, reporter.update_from_render


def _ignored(value: float) -> None:
    """``update_job_progress`` with ``progress: "render"``: the script's reports are not used."""
