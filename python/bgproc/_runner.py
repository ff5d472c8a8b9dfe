"""Runs one job inside Blender: reads ``spec.json``, runs the user's script, writes the result or the error.

The command line is read in ``__main__.py``, which calls in here (or into ``_pool.py`` for a warm worker).
"""

from __future__ import annotations

import builtins
import contextlib
import json
import keyword
import os
import re
import signal
import sys
import threading
import traceback
import types
from dataclasses import dataclass, field
from typing import Any, Iterator

from . import _context
from ._addons import AddonError, enable_addons
from ._data_blocks import DataBlockError, added_since, append_blocks, pointers, with_dependencies, write_blocks
from ._job_dir import JobDir
from ._phases import Phases, now_ms
from ._remap import remap_absolute_paths
from ._gpu import assign_gpu
from ._progress import ProgressReporter
from ._render_progress import RenderProgress, progress_sources
from ._reaper import become_subreaper, end_descendants

SPEC_VERSION = 1
RUNTIME_DIR = os.path.dirname(os.path.abspath(__file__))

EXIT_OK = 0
EXIT_SCRIPT_ERROR = 3
EXIT_RUNTIME_ERROR = 4
EXIT_HOST_GONE = 5

# Names the runtime gives every script; a passed_data key of the same name (or a builtin's) does not shadow them.
RESERVED_NAMES = frozenset(
    {
        "bpy",
        "passed_data",
        "passed_data_blocks",
        "source_blend_file",
        "update_job_progress",
        "python_data",
        "data_blocks",
        "job_folder",
    }
)


class JobSpecError(Exception):
    """The job directory's spec.json is missing, unreadable or of another version."""

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = path


class BlendFileOpenError(Exception):
    """Blender could not open the job's .blend file (corrupt, not a .blend file, or saved by a newer Blender)."""

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = path


def runtime_origin(error: BaseException) -> str:
    """The origin an error of bgproc's runtime is reported with: the .blend file's, or the runtime's own."""
    return "blend-file" if isinstance(error, BlendFileOpenError) else "runtime"


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
    progress: str = "auto"
    keep_files: bool = False
    #: Where the job's files were laid out at their host paths (a NATS worker's folder), or ``None``.
    path_root: str | None = None
    #: Warnings for the job's output, said before its script runs.
    notes: list[str] = field(default_factory=list)
    #: The GPU of the job's slot (``JobManager({ gpus })``), or ``None``.
    gpu: str | None = None

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
            progress=raw.get("progress", "auto"),
            keep_files=raw.get("keepFiles") is True,
            path_root=raw["pathRoot"] if isinstance(raw.get("pathRoot"), str) else None,
            notes=[note for note in raw.get("notes") or [] if isinstance(note, str)],
            gpu=raw["gpu"] if isinstance(raw.get("gpu"), str) else None,
        )


def run_job_dir(path: str, *, reached_at: float | None = None, phases: Phases | None = None) -> int:
    """Run the job in the job directory ``path`` (process mode, and a fork-mode child); return the exit code.

    ``reached_at`` is when the runtime got the job (a fork-mode child's start), ``phases`` what it timed before."""
    reached = now_ms() if reached_at is None else reached_at
    phases = Phases() if phases is None else phases
    become_subreaper()
    job_dir = JobDir(path)
    job_dir.write_runtime(
        {"pid": os.getpid(), "python": sys.version.split()[0], "blender": blender_version(), "at": reached}
    )
    try:
        spec = JobSpec.load(job_dir.file("spec"))
        return run_job(spec, job_dir=job_dir, phases=phases)
    except BaseException as error:  # noqa: BLE001 - the runtime itself failed: report it, never pass as success
        job_dir.write_error({**error_record(error, origin=runtime_origin(error)), "phases": phases.snapshot()})
        return EXIT_RUNTIME_ERROR
    finally:
        end_descendants()  # What the job started, daemons in sessions of their own included, ends with it.


def run_job(spec: JobSpec, *, job_dir: JobDir, phases: Phases) -> int:
    """Prepare Blender's data, run the script in fresh globals, write result.json or error.json (with ``phases``)."""
    import bpy  # noqa: PLC0415 - only inside Blender

    # The end of the job goes through these references, taken before the script runs: a script that patches the
    # runtime's attributes cannot forge or swallow its own result.
    check_data, write_library, finish, record = checked_python_data, write_blocks, _finish, error_record
    timed, snapshot = phases.timed, phases.snapshot
    escape_names = job_dir.escape_undecodable_names
    write_result, write_error_file = job_dir.write_result, job_dir.write_error

    def write_error(failure: dict[str, Any]) -> None:
        write_error_file({**failure, "phases": snapshot()})

    for note in spec.notes:
        warn(note)
    if spec.gpu is not None:
        assign_gpu(bpy, spec.gpu, warn)
    with timed("blend"):
        if spec.blend_file is None:
            empty_scene(bpy)
        else:
            if os.path.realpath(bpy.data.filepath or ".") != os.path.realpath(spec.blend_file):
                raise BlendFileOpenError(spec.blend_file, "Blender could not open it as a .blend file")
            if spec.path_root is not None:
                remap_absolute_paths(bpy, spec.path_root, warn)
            # The job works on a private copy; relative paths are remapped so they still find their files.
            copy = job_dir.file("work")
            bpy.ops.wm.save_as_mainfile(filepath=copy, relative_remap=True, compress=False)

    addon_error = _enable_addons_timed(bpy, job_dir=job_dir, phases=phases)
    if addon_error is not None:
        write_error(error_record(addon_error, origin="addons"))
        return EXIT_SCRIPT_ERROR

    passed_blocks: list[Any] = []
    if spec.passed_data_blocks is not None:
        try:
            with timed("data-blocks"):
                passed_blocks = receive_data_blocks(bpy, spec.passed_data_blocks)
        except DataBlockError as error:
            write_error(error_record(error, origin="data-blocks"))
            return EXIT_SCRIPT_ERROR

    reporter = ProgressReporter(job_dir.file("progress"), warn=warn, folder_id=job_dir.folder_id)
    from_script, from_render = progress_sources(reporter, spec.progress)
    render_progress = None if from_render is None else RenderProgress(bpy, from_render)
    # The script runs as a real __main__ module, as under `blender --python`: pickle and friends can find it.
    module = types.ModuleType("__main__")
    globals_ = module.__dict__
    globals_.update(
        script_globals(
            spec,
            bpy=bpy,
            update_job_progress=from_script,
            passed_data_blocks=passed_blocks,
            job_folder=job_dir.path,
        )
    )
    _context.activate(globals_)
    if not spec.keep_files:
        forget_spec(job_dir)
    if render_progress is not None:
        render_progress.install()
    try:
        with process_state(), timed("script"):
            sys.modules["__main__"] = module
            sys.argv = [sys.argv[0], "--background", "--python", spec.script, "--", *spec.args]
            failure = _exec_script(spec, globals_)
    finally:
        if render_progress is not None:
            render_progress.remove()
        _context.deactivate()
    finish(reporter)
    if failure is not None:
        write_error(record(failure, origin="script"))
        return EXIT_SCRIPT_ERROR
    try:
        with timed("results"):
            python_data = check_data(globals_.get("python_data", {}))
            data_blocks = write_library(bpy, globals_.get("data_blocks"), path=job_dir.file("dataBlocks"))
            escape_names(warn)
    except (PythonDataError, DataBlockError) as error:
        write_error(record(error, origin="result"))
        return EXIT_SCRIPT_ERROR
    write_result(
        {"version": SPEC_VERSION, "pythonData": python_data, "dataBlocks": data_blocks, "phases": snapshot()}
    )
    return EXIT_OK


def _enable_addons_timed(bpy: Any, *, job_dir: JobDir, phases: Phases) -> AddonError | None:
    """Enable the job's add-ons (an ``addons`` phase when it has any); return the error that stopped it, if one did."""
    start = now_ms()
    try:
        if enable_addons(bpy, spec_path=job_dir.file("spec")):
            phases.add("addons", start, now_ms())
    except AddonError as error:
        phases.add("addons", start, now_ms())
        return error
    return None


def forget_spec(job_dir: JobDir) -> None:
    """Remove ``spec.json`` once everything in it has been read, just before the script runs: with one user id for all
    jobs, another job could otherwise read this job's ``passed_data`` from it for as long as the job lasts (the host
    writes it again for a retry)."""
    try:
        os.unlink(job_dir.file("spec"))
    except OSError:
        pass  # Gone already, or the folder was replaced: nothing of this job's to hide there.


def receive_data_blocks(bpy: Any, passed: dict[str, Any]) -> list[Any]:
    """Append the passed blocks; return them in the order given, then every block they brought with them."""
    before = pointers(bpy)
    selected = append_blocks(bpy, path=passed["path"], blocks=passed["blocks"])
    return with_dependencies(selected, added_since(bpy, before))


def warn(message: str) -> None:
    """Tell the job's log (Blender's stderr, which a script that replaced ``sys.stderr`` cannot hide) of ``message``."""
    stream = sys.__stderr__
    if stream is None:
        return
    try:
        stream.write(f"bgproc: warning: {message}\n")
        stream.flush()
    except (OSError, ValueError):
        pass  # No stderr to tell: the job goes on without the warning.


@contextlib.contextmanager
def process_state() -> Iterator[None]:
    """Put back, on the way out, what a script may change in the process: argv, ``__main__``, sys.path, cwd."""
    saved_argv = sys.argv
    saved_main = sys.modules.get("__main__")
    saved_path = list(sys.path)
    saved_cwd = os.getcwd()
    try:
        yield
    finally:
        sys.argv = saved_argv
        if saved_main is not None:
            sys.modules["__main__"] = saved_main
        sys.path[:] = saved_path
        os.chdir(saved_cwd)


def _exec_script(spec: JobSpec, globals_: dict[str, Any]) -> BaseException | None:
    """Run the script in ``globals_``; return what it raised (a ``sys.exit(0)`` is no failure), or ``None``."""
    try:
        with open(spec.script, "rb") as handle:
            source = handle.read()
        exec(compile(source, spec.script, "exec"), globals_)  # noqa: S102 - running the user's script is the point
    except SystemExit as error:
        if error.code not in (None, 0):
            return error
    except BaseException as error:  # noqa: BLE001 - any failure of the script is reported, none is success
        return error
    return None


def script_globals(
    spec: JobSpec, *, bpy: Any, update_job_progress: Any, passed_data_blocks: list[Any], job_folder: str
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
    withheld: list[str] = []
    for key, value in spec.passed_data.items():
        if not key.isidentifier() or keyword.iskeyword(key) or key.startswith("__"):
            continue
        if key in RESERVED_NAMES or hasattr(builtins, key):
            withheld.append(key)
        else:
            globals_[key] = value
    if withheld:
        warn(
            f"passed_data {'keys' if len(withheld) > 1 else 'key'} {', '.join(map(repr, withheld))} would hide "
            "Python's builtins or bgproc's names, so the script gets no such variables: read them from passed_data"
        )
    globals_.update(
        bpy=bpy,
        passed_data=spec.passed_data,
        passed_data_blocks=passed_data_blocks,
        source_blend_file=source_blend_of(spec),
        update_job_progress=update_job_progress,
        # The job's own folder: its inputs are there, and what it writes there are its outputs.
        job_folder=job_folder,
        # Pre-set as the add-on did (scripts do `data_blocks.append(ob)`); a script that assigns them wins.
        python_data={},
        data_blocks=[],
    )
    return globals_


def source_blend_of(spec: JobSpec) -> str | None:
    """The .blend file the job's data comes from: ``blendFile``, else the file ``passedDataBlocks`` came from."""
    if spec.blend_file is not None:
        return spec.blend_file
    if spec.passed_data_blocks is not None:
        return str(spec.passed_data_blocks["path"])
    return None


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
        "text": _without_runtime_names(
            "".join(_without_runtime_frames(traceback.TracebackException.from_exception(error)).format())
        ),
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


def _without_runtime_names(text: str) -> str:
    """``PythonDataError: ...`` for ``bgproc._runner.PythonDataError: ...``: the user sees no internal module."""
    return re.sub(r"^bgproc(?:\.\w+)+\.(\w+)(?=:|$)", r"\1", text, flags=re.MULTILINE)


def _message(error: BaseException) -> str:
    if isinstance(error, SystemExit):
        return f"the script called sys.exit({error.code!r})"
    return str(error)


def blender_version() -> str:
    try:
        import bpy  # noqa: PLC0415 - only inside Blender

        return str(bpy.app.version_string)
    except ImportError:
        return "unknown"


def _finish(reporter: ProgressReporter) -> None:
    reporter.close()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:  # noqa: BLE001 - a stream the script put in place may fail any way; the job still ends
            pass


def empty_scene(bpy: Any) -> None:
    """Blender's factory start-up scene, less its objects and their data: what a script expects of 'empty'."""
    data = bpy.data
    bpy.data.batch_remove(
        [*data.objects, *data.meshes, *data.materials, *data.cameras, *data.lights, *data.collections]
    )


def watch_host() -> None:
    """End Blender when the host goes away: the host holds our stdin open, so end-of-file means it is gone."""

    def watch() -> None:
        try:
            while sys.stdin.buffer.read(65536):
                pass
        finally:
            end_for_dead_host()

    if sys.stdin is not None:
        threading.Thread(target=watch, name="bgproc-host-watch", daemon=True).start()


def end_for_dead_host() -> None:
    """The host is gone: end everything this Blender started, and Blender, at once.

    Nothing is written on the way out: stdout and stderr are pipes to the dead host, and a write would fail.
    """
    try:
        # Every descendant (also where a wrapper, not Blender, leads the process group, and daemons in sessions of
        # their own), then the group when Blender leads it.
        end_descendants()
        if os.getpgid(0) == os.getpid():
            os.killpg(os.getpid(), signal.SIGKILL)
    finally:
        os._exit(EXIT_HOST_GONE)
