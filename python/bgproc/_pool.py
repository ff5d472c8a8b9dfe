"""A warm worker: one Blender that runs many jobs, one at a time, told what to run over a Unix socket.

The socket is the control channel: one JSON message per line, ``ready`` / ``run`` / ``done``. A job's own output
goes to stdout and stderr as always, and can never be taken for a message. After each job the worker prints an end
marker with the job's token (which no script can guess) on both streams, so the host knows where its output ends.
Between jobs the worker resets Blender's data from an empty file (milliseconds); ``run_job`` restores ``sys.path``,
the working folder, ``sys.argv`` and ``__main__``; each script runs in fresh globals.

The manager's ``addons`` are enabled once, when the worker starts, so they are part of its clean state: a job that asks
only for those finds them enabled and leaves the worker clean. An add-on a job enables itself retires the worker.
"""

from __future__ import annotations

import json
import os
import socket
import sys
from typing import Any

from ._addons import AddonError, enable_addon
from ._job_dir import JobDir
from ._reaper import become_subreaper, end_descendants
from ._runner import (
    EXIT_RUNTIME_ERROR,
    BlendFileOpenError,
    JobSpec,
    blender_version,
    empty_scene,
    error_record,
    run_job,
    runtime_origin,
)
from ._worker_state import Guard

END_MARKER = "\x1ebgproc-end "


def serve(*, socket_path: str, worker_id: str, empty_blend: str, addons: list[str]) -> int:
    """Enable ``addons``, connect to the host, then run jobs until it says ``quit`` or goes away."""
    import bpy  # noqa: PLC0415 - only inside Blender

    become_subreaper()
    empty_scene(bpy)
    bpy.ops.wm.save_as_mainfile(filepath=empty_blend, compress=False)
    for name in addons:
        try:
            enable_addon(bpy, name)
        except AddonError as error:
            # Each job that needs it tries again and fails with this error in its own report.
            print(f"bgproc: pool worker {worker_id}: {error}", file=sys.stderr)
    connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    connection.connect(socket_path)
    channel = connection.makefile("rwb")

    def send(message: dict[str, Any]) -> None:
        channel.write(json.dumps(message).encode("utf-8") + b"\n")
        channel.flush()

    send({"type": "ready", "worker": worker_id, "pid": os.getpid()})
    guard = Guard()
    for line in channel:
        message = json.loads(line)
        if message.get("type") != "run":
            break
        code, causes = run_one(bpy, job_dir=message["jobDir"], empty_blend=empty_blend, guard=guard)
        if causes:
            # Dirty: no end markers (fd 1/2 may be gone); the host ends the job when this worker has exited.
            send({"type": "done", "token": message["token"], "exitCode": code, "retire": "; ".join(causes)})
            return 0
        marker = f"{END_MARKER}{message['token']}\n".encode("utf-8")
        # Straight to the fds, flushed streams first: a script's replaced sys.stdout cannot swallow the marker.
        sys.stdout.flush()
        sys.stderr.flush()
        os.write(1, marker)
        os.write(2, marker)
        send({"type": "done", "token": message["token"], "exitCode": code})
    return 0


def run_one(bpy: Any, *, job_dir: str, empty_blend: str, guard: Guard) -> tuple[int, list[str]]:
    """Reset Blender's data, run one job, put back what it changed in the process: ``(exit code, causes)``.

    ``run_job`` puts back argv, ``__main__``, sys.path and the cwd; ``guard`` checks the rest and undoes what it can.
    ``causes`` says why the worker must be retired (what the job left that cannot be undone); empty when clean.
    """
    directory = JobDir(job_dir)
    code = EXIT_RUNTIME_ERROR
    guarded = False
    try:
        directory.write_runtime(
            {"pid": os.getpid(), "pool": True, "python": sys.version.split()[0], "blender": blender_version()}
        )
        spec = JobSpec.load(directory.file("spec"))
        if spec.blend_file is None:
            bpy.ops.wm.read_homefile(filepath=empty_blend, load_ui=False)
        else:
            try:
                bpy.ops.wm.open_mainfile(filepath=spec.blend_file, load_ui=False)
            except RuntimeError as error:  # Blender's own words: "Failed to read blend file '…', not a blend file"
                raise BlendFileOpenError(spec.blend_file, str(error).strip()) from None
        guard.before_job(bpy)
        guarded = True
        code = run_job(spec, job_dir=directory)
    except BaseException as error:  # noqa: BLE001 - the runtime itself failed: report it, never pass as success
        directory.write_error(error_record(error, origin=runtime_origin(error)))
        code = EXIT_RUNTIME_ERROR
    finally:
        end_descendants()  # What the job started (a forked child, a setsid daemon) ends with it.
    if not guarded:
        return code, []
    try:
        return code, guard.after_job(bpy)
    except Exception as error:  # noqa: BLE001 - a check that fails cannot vouch for the worker
        return code, [f"the worker's state could not be checked: {type(error).__name__}: {error}"]
