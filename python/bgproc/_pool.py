"""A warm worker: one Blender that runs many jobs, one at a time, told what to run on its stdin.

There is no socket (Deno counts a Unix socket as network access). The host writes one JSON message per line on the
worker's stdin (``run``, with the job's token and folder); a thread of the worker reads them (and takes end-of-file
as the host's death, as ``watch_host`` does), and stdin itself becomes /dev/null, so a job cannot read them. The
worker answers with marker lines among the job's output, written straight to a private copy of the old fd 1:
``\x1ebgproc-ready <worker id>`` once, and after each job ``\x1ebgproc-done <token> <json>`` on stdout and
``\x1ebgproc-end <token>`` on stderr, so the host knows where the job's output ends and how it ended. The token is
not secret from the job, which runs in this process: pool mode is for trusted scripts (see the README).
Between jobs the worker resets Blender's data from an empty file (milliseconds); ``run_job`` restores ``sys.path``,
the working folder, ``sys.argv`` and ``__main__``; each script runs in fresh globals.

The manager's ``addons`` are enabled once, when the worker starts, so they are part of its clean state: a job that asks
only for those finds them enabled and leaves the worker clean. An add-on a job enables itself retires the worker.
"""

from __future__ import annotations

import json
import os
import queue
import sys
import threading
from typing import Any

from ._addons import AddonError, enable_addon
from ._jail import print_notice
from ._libc import flush_output
from ._job_dir import JobDir
from ._phases import Phases, now_ms
from ._reaper import become_subreaper, end_descendants
from ._runner import (
    EXIT_RUNTIME_ERROR,
    BlendFileOpenError,
    JobSpec,
    blender_version,
    empty_scene,
    end_for_dead_host,
    error_record,
    run_job,
    runtime_origin,
)
from ._worker_state import Guard

MARKER = "\x1ebgproc-"


class HostChannel:
    """The host's requests (read from the old stdin by a thread) and the worker's marker lines (to the old stdout)."""

    def __init__(self) -> None:
        self._in = os.dup(0)
        self._out = os.dup(1)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.close(null)
        self._requests: queue.Queue[dict[str, Any]] = queue.Queue()
        threading.Thread(target=self._read, name="bgproc-host-watch", daemon=True).start()

    def _read(self) -> None:
        pending = b""
        try:
            while True:
                data = os.read(self._in, 65536)
                if not data:
                    break
                pending += data
                while b"\n" in pending:
                    line, pending = pending.split(b"\n", 1)
                    self._requests.put(json.loads(line))
        finally:
            end_for_dead_host()

    def next(self) -> dict[str, Any]:
        """The host's next request (blocks; the worker ends when the host goes away)."""
        return self._requests.get()

    def send(self, line: str, *, fd: int | None = None) -> None:
        """Write one marker line, whole, after everything the job printed (Python's and the C library's buffers)."""
        flush_output()  # A script's replaced sys.stdout, or C stdio, must not hold output past the marker.
        data = memoryview(f"{MARKER}{line}\n".encode("utf-8"))
        target = self._out if fd is None else fd
        while data:
            data = data[os.write(target, data) :]


def _resident_mib() -> float:
    """This worker's resident memory, which the host compares with ``maxWorkerMemoryMiB`` (it may not read /proc)."""
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as handle:
            for line in handle:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0.0


def serve(*, worker_id: str, empty_blend: str, addons: list[str]) -> int:
    """Enable ``addons``, say ``ready``, then run jobs until the host goes away."""
    import bpy  # noqa: PLC0415 - only inside Blender

    become_subreaper()
    host = HostChannel()
    empty_scene(bpy)
    bpy.ops.wm.save_as_mainfile(filepath=empty_blend, compress=False)
    for name in addons:
        try:
            enable_addon(bpy, name)
        except AddonError as error:
            # Each job that needs it tries again and fails with this error in its own report.
            print(f"bgproc: pool worker {worker_id}: {error}", file=sys.stderr)
    host.send(f"ready {worker_id} {os.getpid()}")
    guard = Guard()
    while True:
        message = host.next()
        if message.get("type") != "run":
            return 0
        token = str(message["token"])
        code, causes = run_one(bpy, job_dir=message["jobDir"], empty_blend=empty_blend, guard=guard)
        if causes:
            # Dirty: no end marker on stderr (fd 2 may be gone); the host ends the job when this worker has exited.
            host.send(f"done {token} {json.dumps({'exitCode': code, 'retire': '; '.join(causes)})}")
            return 0
        host.send(f"end {token}", fd=2)
        host.send(f"done {token} {json.dumps({'exitCode': code, 'residentMiB': _resident_mib()})}")


def run_one(bpy: Any, *, job_dir: str, empty_blend: str, guard: Guard) -> tuple[int, list[str]]:
    """Reset Blender's data, run one job, put back what it changed in the process: ``(exit code, causes)``.

    ``run_job`` puts back argv, ``__main__``, sys.path and the cwd; ``guard`` checks the rest and undoes what it can.
    ``causes`` says why the worker must be retired (what the job left that cannot be undone); empty when clean.
    """
    directory = JobDir(job_dir)
    code = EXIT_RUNTIME_ERROR
    guarded = False
    phases = Phases()
    print_notice()
    try:
        directory.write_runtime(
            {
                "pid": os.getpid(),
                "pool": True,
                "python": sys.version.split()[0],
                "blender": blender_version(),
                "at": now_ms(),
            }
        )
        spec = JobSpec.load(directory.file("spec"))
        with phases.timed("blend"):
            if spec.blend_file is None:
                bpy.ops.wm.read_homefile(filepath=empty_blend, load_ui=False)
            else:
                try:
                    bpy.ops.wm.open_mainfile(filepath=spec.blend_file, load_ui=False)
                except RuntimeError as error:  # Blender's own words: "Failed to read blend file '…', not a blend file"
                    raise BlendFileOpenError(spec.blend_file, str(error).strip()) from None
        guard.before_job(bpy)
        guarded = True
        code = run_job(spec, job_dir=directory, phases=phases)
    except BaseException as error:  # noqa: BLE001 - the runtime itself failed: report it, never pass as success
        directory.write_error({**error_record(error, origin=runtime_origin(error)), "phases": phases.snapshot()})
        code = EXIT_RUNTIME_ERROR
    finally:
        end_descendants()  # What the job started (a forked child, a setsid daemon) ends with it.
    if not guarded:
        return code, []
    try:
        return code, guard.after_job(bpy)
    except Exception as error:  # noqa: BLE001 - a check that fails cannot vouch for the worker
        return code, [f"the worker's state could not be checked: {type(error).__name__}: {error}"]
