"""Runs one job inside Blender: reads ``spec.json``, runs the user's script, writes the result or the error."""

from __future__ import annotations

import argparse
import builtins
import json
import keyword
import os
import signal
import sys
import threading
import traceback
import types
from dataclasses import dataclass, field
from typing import Any

from . import _context
from ._data_blocks import DataBlockError, append_blocks, write_blocks
from ._files import write_json_atomic
from ._progress import ProgressReporter, progress_path

SPEC_VERSION = 1
RUNTIME_DIR = os.path.dirname(os.path.abspath(__file__))

EXIT_OK = 0
EXIT_SCRIPT_ERROR = 3
EXIT_RUNTIME_ERROR = 4
EXIT_HOST_GONE = 5

# Names the runtime gives every script; a passed_data key of the same name does not shadow them.
RESERVED_NAMES = frozenset(
    {
        "bpy",
        "passed_data",
        "passed_data_blocks",
        "source_blend_file",
        "update_job_progress",
        "python_data",
        "data_blocks",
    }
)


class JobSpecError(Exception):
    """The job directory's spec.json is missing, unreadable or of another version."""

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = path


class PythonDataError(Exception):
    """The script's python_data cannot travel back to the host as JSON."""


@dataclass(frozen=True, kw_only=True)
class JobSpec:
    """What the host asks of one job (``spec.json``, written by Deno)."""

    name: str
    script: str
    passed_data: dict[str, Any]
    blend_file: str | None
    args: list[str] = field(default_factory=list)
    passed_data_blocks: dict[str, Any] | None = None

    @staticmethod
    def load(path: str) -> JobSpec:
        try:
            with open(path, encoding="utf-8") as handle:
                raw = json.load(handle)
        except (OSError, ValueError) as error:
            raise JobSpecError(path, f"cannot be read: {error}") from error
        if not isinstance(raw, dict) or raw.get("version") != SPEC_VERSION:
            raise JobSpecError(path, f"is not a version {SPEC_VERSION} job spec")
        return JobSpec(
            name=raw["name"],
            script=raw["script"],
            passed_data=raw["passedData"],
            blend_file=raw.get("blendFile"),
            args=list(raw.get("args", [])),
            passed_data_blocks=raw.get("passedDataBlocks"),
        )


def main(argv: list[str]) -> int:
    """Run the job in ``--job-dir`` (or serve jobs as a pool worker) and return the process exit code."""
    parser = argparse.ArgumentParser(prog="bgproc")
    parser.add_argument("--job-dir")
    parser.add_argument("--pool-socket")
    parser.add_argument("--worker-id", default="0")
    parser.add_argument("--empty-blend")
    options = parser.parse_args(argv)
    _line_buffered_output()
    _watch_host()
    if options.pool_socket is not None:
        from ._pool import serve  # noqa: PLC0415 - only for pool workers

        return serve(socket_path=options.pool_socket, worker_id=options.worker_id, empty_blend=options.empty_blend)
    job_dir: str = options.job_dir
    # Tells the host that Blender started and reached the runtime: a failure after this is the job's, not start-up's.
    write_json_atomic(
        os.path.join(job_dir, "runtime.json"),
        {"pid": os.getpid(), "python": sys.version.split()[0], "blender": _blender_version()},
    )
    try:
        spec = JobSpec.load(os.path.join(job_dir, "spec.json"))
        return run_job(spec, job_dir=job_dir)
    except BaseException as error:  # noqa: BLE001 - the runtime itself failed: report it, never pass as success
        write_json_atomic(os.path.join(job_dir, "error.json"), error_record(error, origin="runtime"))
        return EXIT_RUNTIME_ERROR


def run_job(spec: JobSpec, *, job_dir: str) -> int:
    """Prepare Blender's data, run the script in fresh globals, write result.json or error.json."""
    import bpy  # noqa: PLC0415 - only inside Blender

    if spec.blend_file is None:
        empty_scene(bpy)
    else:
        if os.path.realpath(bpy.data.filepath or ".") != os.path.realpath(spec.blend_file):
            raise JobSpecError(spec.blend_file, "Blender could not open this file as a .blend file")
        # The job works on a private copy; relative paths are remapped so they still find their files.
        copy = os.path.join(job_dir, "work.blend")
        bpy.ops.wm.save_as_mainfile(filepath=copy, relative_remap=True, compress=False)

    passed_blocks: list[Any] = []
    if spec.passed_data_blocks is not None:
        try:
            passed_blocks = append_blocks(
                bpy, path=spec.passed_data_blocks["path"], blocks=spec.passed_data_blocks["blocks"]
            )
        except DataBlockError as error:
            write_json_atomic(os.path.join(job_dir, "error.json"), error_record(error, origin="data-blocks"))
            return EXIT_SCRIPT_ERROR

    reporter = ProgressReporter(progress_path(job_dir))
    # The script runs as a real __main__ module, as under `blender --python`: pickle and friends can find it.
    module = types.ModuleType("__main__")
    globals_ = module.__dict__
    globals_.update(
        script_globals(spec, bpy=bpy, update_job_progress=reporter.update, passed_data_blocks=passed_blocks)
    )
    _context.activate(globals_)
    saved_argv = sys.argv
    saved_main = sys.modules.get("__main__")
    sys.modules["__main__"] = module
    sys.argv = [saved_argv[0], "--background", "--python", spec.script, "--", *spec.args]
    try:
        with open(spec.script, "rb") as handle:
            source = handle.read()
        code = compile(source, spec.script, "exec")
        exec(code, globals_)  # noqa: S102 - running the user's script is the point
    except SystemExit as error:
        if error.code not in (None, 0):
            _finish(reporter)
            write_json_atomic(os.path.join(job_dir, "error.json"), error_record(error, origin="script"))
            return EXIT_SCRIPT_ERROR
    except BaseException as error:  # noqa: BLE001 - any failure of the script is reported, none is success
        _finish(reporter)
        write_json_atomic(os.path.join(job_dir, "error.json"), error_record(error, origin="script"))
        return EXIT_SCRIPT_ERROR
    finally:
        sys.argv = saved_argv
        if saved_main is not None:
            sys.modules["__main__"] = saved_main
        _context.deactivate()
    _finish(reporter)
    try:
        python_data = checked_python_data(globals_.get("python_data", {}))
        data_blocks = write_blocks(bpy, globals_.get("data_blocks"), job_dir=job_dir)
    except (PythonDataError, DataBlockError) as error:
        write_json_atomic(os.path.join(job_dir, "error.json"), error_record(error, origin="result"))
        return EXIT_SCRIPT_ERROR
    write_json_atomic(
        os.path.join(job_dir, "result.json"),
        {"version": SPEC_VERSION, "pythonData": python_data, "dataBlocks": data_blocks},
    )
    return EXIT_OK


def script_globals(
    spec: JobSpec, *, bpy: Any, update_job_progress: Any, passed_data_blocks: list[Any]
) -> dict[str, Any]:
    """Fresh globals for one run of the script, as ``blender -b --python script.py`` would give plus ours."""
    globals_: dict[str, Any] = {
        "__name__": "__main__",
        "__file__": spec.script,
        "__builtins__": builtins,
        "__doc__": None,
        "__package__": None,
        "__spec__": None,
    }
    for key, value in spec.passed_data.items():
        if key.isidentifier() and not keyword.iskeyword(key) and key not in RESERVED_NAMES and not key.startswith("__"):
            globals_[key] = value
    globals_.update(
        bpy=bpy,
        passed_data=spec.passed_data,
        passed_data_blocks=passed_data_blocks,
        source_blend_file=spec.blend_file,
        update_job_progress=update_job_progress,
    )
    return globals_


def checked_python_data(value: Any) -> dict[str, Any]:
    """Return ``value`` if it is a dict that JSON can carry; else raise naming what is wrong."""
    if not isinstance(value, dict):
        raise PythonDataError(f"python_data must be a dict, not {type(value).__name__}")
    for key, item in value.items():
        if not isinstance(key, str):
            raise PythonDataError(f"python_data keys must be strings: key {key!r} is {type(key).__name__}")
        try:
            json.dumps(item, allow_nan=False, ensure_ascii=False).encode("utf-8")
        except (TypeError, ValueError) as error:
            raise PythonDataError(f"python_data[{key!r}] cannot be sent as JSON: {error}") from None
    return value


def error_record(error: BaseException, *, origin: str) -> dict[str, Any]:
    """A JSON-ready description of ``error``: type, message, the frames outside this runtime, the text.

    The text is Python's own traceback, with its chained causes (``raise ... from``), less bgproc's frames.
    """
    frames = [
        {"file": frame.filename, "line": frame.lineno, "function": frame.name, "code": frame.line or ""}
        for frame in traceback.extract_tb(error.__traceback__)
        if not frame.filename.startswith(RUNTIME_DIR)
    ]
    record: dict[str, Any] = {
        "origin": origin,
        "type": type(error).__qualname__,
        "message": _message(error),
        "frames": frames,
        "text": "".join(_without_runtime_frames(traceback.TracebackException.from_exception(error)).format()),
    }
    if isinstance(error, SyntaxError):
        record["file"] = error.filename
        record["line"] = error.lineno
    return record


def _without_runtime_frames(exception: traceback.TracebackException) -> traceback.TracebackException:
    seen: set[int] = set()
    pending: list[traceback.TracebackException | None] = [exception]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        current.stack = traceback.StackSummary.from_list(
            [frame for frame in current.stack if not frame.filename.startswith(RUNTIME_DIR)]
        )
        pending += [current.__cause__, current.__context__]
    return exception


def _message(error: BaseException) -> str:
    if isinstance(error, SystemExit):
        return f"the script called sys.exit({error.code!r})"
    return str(error)


def _blender_version() -> str:
    try:
        import bpy  # noqa: PLC0415 - only inside Blender

        return str(bpy.app.version_string)
    except ImportError:
        return "unknown"


def _finish(reporter: ProgressReporter) -> None:
    reporter.close()
    sys.stdout.flush()
    sys.stderr.flush()


def empty_scene(bpy: Any) -> None:
    """Blender's factory start-up scene, less its objects and their data: what a script expects of 'empty'."""
    data = bpy.data
    bpy.data.batch_remove(
        [*data.objects, *data.meshes, *data.materials, *data.cameras, *data.lights, *data.collections]
    )


def _line_buffered_output() -> None:
    """Flush output at every line, whatever Blender set: a line printed just before a crash or ``os._exit`` must
    still reach the host's report (through a pipe, Blender 4.3 and 5.2 lost such a line; 3.4 did not)."""
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            reconfigure(line_buffering=True)


def _watch_host() -> None:
    """End Blender when the host goes away: the host holds our stdin open, so end-of-file means it is gone.

    Nothing is written on the way out: stdout and stderr are pipes to the dead host, and a write would fail.
    """

    def watch() -> None:
        try:
            while sys.stdin.buffer.read(65536):
                pass
        finally:
            # The host starts Blender detached (a session and process group of its own, led by Blender or by a
            # wrapper such as bwrap's): end that whole group, so what the script started goes too. A group that
            # does not lead its session is someone else's (a shell's job): leave it alone.
            try:
                group = os.getpgid(0)
                if os.getsid(0) == group:
                    os.killpg(group, signal.SIGKILL)
            finally:
                os._exit(EXIT_HOST_GONE)

    if sys.stdin is not None:
        threading.Thread(target=watch, name="bgproc-host-watch", daemon=True).start()
