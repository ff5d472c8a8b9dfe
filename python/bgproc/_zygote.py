"""Fork mode's zygote: a warm Blender that never runs user code and forks one child per attempt.

It talks to the host over the pipes it was started with; there is no socket (Deno counts a Unix socket as network
access) and no path a job could find:

- host -> zygote, on stdin: one JSON message per line, ``fork`` (id, token, job dir) and ``kill`` (id). End-of-file
  is the host's death: the zygote ends its children and exits.
- zygote -> host, on stdout: first Blender's own start-up lines, then a line ``\x1ebgproc-frames``, then only frames:
  a kind byte, the attempt's id (4 bytes, big-endian), a length (4 bytes) and that many bytes. ``m`` is a JSON message
  (``ready``, ``forked``, ``refused``, ``exited`` with code and signal), ``o``/``e`` a chunk of a child's stdout/stderr,
  ``O``/``E`` the end of that stream. From the sync line on, whatever Blender or the zygote itself prints goes to
  stderr (fd 1 is pointed there); the frames go to a private copy of the old fd 1.

Each child gets two pipes of its own for its stdout and stderr; the zygote relays them as frames, at most 64 KiB per
stream per turn of its loop, so a child that prints 100 MB takes turns with the others and the zygote holds no more
than one chunk; a child that prints faster than the host reads waits on its own pipe (backpressure). A stream ends
when the child and everything it started have closed it, or one second after the child is reaped (a daemon the
reaper could not reach may hold it).

A child cannot reach the channel: it closes the zygote's descriptors (stdin becomes /dev/null), and the zygote is not
dumpable (``PR_SET_DUMPABLE`` 0, inherited by its children), so ``/proc/<zygote>/fd`` cannot be opened by a job
running as the same user.

The zygote reaps its children through pidfds (no SIGCHLD handler, no polling) and reports each exit, signals included.
It is the children's subreaper: when a child ends, whatever it left behind that was re-parented to the zygote (a
double-forked ``setsid`` daemon) is killed, and the child's process group is killed before the child is reaped (so
the group id cannot have been reused).

What forking a Blender must avoid (see the README's fork-mode section):

- GPU devices: the zygote never renders, never touches Cycles' device list or preferences, never imports add-ons of
  its own. CUDA/HIP/OptiX/Metal contexts do not survive a fork; a child initialises its own.
- Shared files and locks: the zygote opens nothing but its children's pipes and pidfds and its epoll; the child
  closes all of them first thing. It never writes a file a child could also write. What Blender itself holds open
  (the ``--python`` file on 3.4, a pipe pair of 5.2's own, /dev/null) stays shared and unused by bgproc.
- Threads: a fork copies only the forking thread. Blender itself keeps native threads (its task scheduler's TBB
  workers and, on Debian's 3.4, jemalloc's background thread) sleeping on futexes; those hold no lock while idle and
  jemalloc has fork handlers, which is why a child can still evaluate modifiers and render. The zygote forks only when
  no Python thread but the main one runs, no native thread appeared since it was ready, and every native thread is
  asleep; otherwise it refuses and the host starts a fresh zygote (and, if that refuses too, falls back loudly).
- Buffered output: stdout/stderr are flushed before every fork, or the zygote's unwritten output would be written
  again by each child.
- The random seed: Python's ``random`` reseeds itself in a forked child (``os.register_at_fork``); the child also
  reseeds it explicitly, and nothing else in the zygote has a seed (numpy is not imported).
- Exit: a child ends with ``os._exit`` after flushing, never by Blender's own exit path, which would run ``atexit``
  handlers and remove the temporary session folder the zygote and its other children share.
"""

from __future__ import annotations

import json
import os
import random
import selectors
import signal
import struct
import sys
import tempfile
import threading
import time
import warnings
from dataclasses import dataclass, field
from typing import Any

from ._jail import print_notice, take_notice
from ._libc import flush_output, prctl
from ._reaper import become_subreaper, end_descendants

PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4

EXIT_RUNTIME_ERROR = 4

# How long a native thread that is not asleep may take to fall asleep before the zygote refuses to fork.
SETTLE_SECONDS = 0.2

# How long a reaped child's output may stay open (a daemon the reaper could not reach may hold it).
OUTPUT_GRACE_SECONDS = 1.0

# The line on stdout after which only frames follow.
FRAMES_SYNC = b"\n\x1ebgproc-frames\n"

CHUNK = 65536

_HEADER = struct.Struct(">cII")


@dataclass
class _Child:
    id: int
    pid: int
    pidfd: int
    # Read end -> stream kind (b"o" or b"e"), while open.
    streams: dict[int, bytes] = field(default_factory=dict)
    # Once reaped: when its open streams are closed whatever holds them.
    deadline: float | None = None


class _Host:
    """The frames to the host, on a private copy of fd 1 (blocking: the host reads all the time)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def frame(self, kind: bytes, child_id: int, payload: bytes) -> None:
        data = memoryview(_HEADER.pack(kind, child_id, len(payload)) + payload)
        while data:
            data = data[os.write(self.fd, data) :]

    def message(self, message: dict[str, Any]) -> None:
        self.frame(b"m", 0, json.dumps(message).encode("utf-8"))


def serve(*, zygote_id: str) -> int:
    """Report ``ready`` to the host, then fork a child per ``fork`` and relay its output until the host goes away."""
    import bpy  # noqa: PLC0415 - only inside Blender

    prctl(PR_SET_DUMPABLE, 0)  # No job (same user) may open /proc/<zygote>/fd: the channel and siblings' pipes.
    become_subreaper()
    baseline = set(_tasks())
    unsafe = _unsafe_reason()
    flush_output()
    host = _Host(os.dup(1))
    os.dup2(2, 1)  # From now on Blender's and Python's own prints go to stderr; stdout carries frames only.
    os.write(host.fd, FRAMES_SYNC)
    host.message(
        {
            "type": "ready",
            "zygote": zygote_id,
            "pid": os.getpid(),
            "blender": str(bpy.app.version_string),
            "threads": len(baseline),
            "unsafe": unsafe,
        }
    )
    children: dict[int, _Child] = {}
    selector = selectors.DefaultSelector()
    selector.register(0, selectors.EVENT_READ, None)
    pending = b""
    try:
        while True:
            deadlines = [child.deadline for child in children.values() if child.deadline is not None]
            timeout = None if not deadlines else max(0.0, min(deadlines) - time.monotonic())
            for key, _ in selector.select(timeout):
                if key.data is None:
                    data = os.read(0, CHUNK)
                    if not data:
                        return 0  # The host is gone.
                    pending += data
                    while b"\n" in pending:
                        line, pending = pending.split(b"\n", 1)
                        _handle(json.loads(line), bpy=bpy, host=host, children=children, selector=selector,
                                baseline=baseline)
                elif isinstance(key.data, _Child):
                    _reaped(key.data, host=host, children=children, selector=selector)
                else:
                    child, kind = key.data
                    _relay(child, key.fd, kind, host=host, children=children, selector=selector)
            _past_grace(children, host=host, selector=selector)
    finally:
        for child in children.values():
            if child.deadline is None:  # A reaped child's group id may be another's by now.
                _kill_group(child.pid)
        end_descendants()


def _handle(message: dict[str, Any], *, bpy: Any, host: _Host, children: dict[int, _Child],
            selector: selectors.BaseSelector, baseline: set[str]) -> None:
    child_id = int(message.get("id", 0))
    if message.get("type") == "kill":
        child = children.get(child_id)
        if child is not None and child.deadline is None:
            _kill_group(child.pid)  # Not reaped yet, so the group id is still this child's.
        return
    if message.get("type") != "fork":
        return
    problem = _fork_problem(baseline)
    if problem is not None:
        host.message({"type": "refused", "id": child_id, "why": problem})
        return
    try:
        child = _fork(bpy, child_id, str(message["jobDir"]), host=host, children=children, selector=selector)
    except OSError as error:  # No pipe or no process (ENOMEM, EAGAIN): this attempt fails; the zygote goes on.
        host.message({"type": "failed", "id": child_id, "why": f"the zygote could not fork: {error}"})
        return
    children[child_id] = child
    selector.register(child.pidfd, selectors.EVENT_READ, child)
    for fd, kind in child.streams.items():
        selector.register(fd, selectors.EVENT_READ, (child, kind))
    host.message({"type": "forked", "id": child_id, "pid": child.pid})


def _fork(bpy: Any, child_id: int, job_dir: str, *, host: _Host, children: dict[int, _Child],
          selector: selectors.BaseSelector) -> _Child:
    """Fork the child that runs the job in ``job_dir``, with pipes of its own for stdout and stderr."""
    out_read, out_write = os.pipe()
    try:
        err_read, err_write = os.pipe()
    except OSError:
        for fd in (out_read, out_write):
            os.close(fd)
        raise
    zygote = os.getpid()
    flush_output()
    try:
        with warnings.catch_warnings():
            # Python 3.12+ warns that Blender's (sleeping) native threads exist: see the module's notes.
            warnings.simplefilter("ignore", DeprecationWarning)
            pid = os.fork()
    except OSError:
        for fd in (out_read, out_write, err_read, err_write):
            os.close(fd)
        raise
    if pid == 0:
        code = EXIT_RUNTIME_ERROR
        try:
            os.setpgid(0, 0)
            _child_fds(out_write, err_write, keep_none_of=[out_read, err_read, host.fd, selector, children])
            code = _run_child(bpy, job_dir=job_dir, zygote=zygote)
        finally:
            try:
                sys.stdout.flush()
                sys.stderr.flush()
            finally:
                os._exit(code)
    take_notice()  # The first child says it; the zygote forgets it.
    try:
        os.setpgid(pid, pid)  # Also here: a kill may come before the child has run a line.
    except OSError:
        pass  # The child did it first, or has exited already.
    os.close(out_write)
    os.close(err_write)
    return _Child(id=child_id, pid=pid, pidfd=os.pidfd_open(pid), streams={out_read: b"o", err_read: b"e"})


def _child_fds(out_write: int, err_write: int, *, keep_none_of: list[Any]) -> None:
    """In a new child: stdin from /dev/null, stdout and stderr to its own pipes, and none of the zygote's fds."""
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(out_write, 1)
    os.dup2(err_write, 2)
    for fd in (null, out_write, err_write):
        os.close(fd)
    out_read, err_read, host_fd, selector, children = keep_none_of
    for fd in (out_read, err_read, host_fd):
        os.close(fd)
    for child in children.values():
        if child.pidfd >= 0:
            os.close(child.pidfd)
        for fd in child.streams:
            os.close(fd)
    selector.close()


def _relay(child: _Child, fd: int, kind: bytes, *, host: _Host, children: dict[int, _Child],
           selector: selectors.BaseSelector) -> None:
    """Pass one chunk of a child's stream to the host, or its end."""
    try:
        data = os.read(fd, CHUNK)
    except OSError:
        data = b""
    if data:
        host.frame(kind, child.id, data)
        return
    _close_stream(child, fd, host=host, selector=selector)
    _forget_if_done(child, children)


def _close_stream(child: _Child, fd: int, *, host: _Host, selector: selectors.BaseSelector) -> None:
    kind = child.streams.pop(fd)
    selector.unregister(fd)
    os.close(fd)
    host.frame(kind.upper(), child.id, b"")


def _reaped(child: _Child, *, host: _Host, children: dict[int, _Child], selector: selectors.BaseSelector) -> None:
    selector.unregister(child.pidfd)
    os.close(child.pidfd)
    child.pidfd = -1  # Closed: a child forked later must not close that number again (it may be reused by then).
    others = {other.pid for other in children.values() if other is not child and other.deadline is None}
    code, name = _reap(child.pid, keep=others)
    child.deadline = time.monotonic() + OUTPUT_GRACE_SECONDS
    host.message({"type": "exited", "id": child.id, "code": code, "signal": name})
    _forget_if_done(child, children)


def _past_grace(children: dict[int, _Child], *, host: _Host, selector: selectors.BaseSelector) -> None:
    """Close the streams of reaped children whose grace is over (a process out of the reaper's reach holds them)."""
    now = time.monotonic()
    for child in list(children.values()):
        if child.deadline is not None and child.deadline <= now:
            for fd in list(child.streams):
                _close_stream(child, fd, host=host, selector=selector)
            _forget_if_done(child, children)


def _forget_if_done(child: _Child, children: dict[int, _Child]) -> None:
    if child.deadline is not None and not child.streams:
        children.pop(child.id, None)


def _run_child(bpy: Any, *, job_dir: str, zygote: int) -> int:
    """In the child: die with the zygote, reseed, open the job's .blend file, then run the job as process mode does.

    No host watch here (stdin is /dev/null): the zygote watches the host, and the child dies with the zygote."""
    from ._job_dir import JobDir  # noqa: PLC0415 - after the fork: the zygote stays lean
    from ._phases import Phases, now_ms  # noqa: PLC0415
    from ._runner import JobSpec, run_job_dir  # noqa: PLC0415

    reached_at = now_ms()
    phases = Phases()

    prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != zygote:
        return EXIT_RUNTIME_ERROR  # The zygote died before the line above (we were re-parented, maybe not to init).
    print_notice()
    random.seed()
    _own_temp_dir(bpy, JobDir(job_dir).file("temp"))
    try:
        spec = JobSpec.load(JobDir(job_dir).file("spec"))
        if spec.blend_file is not None:
            with phases.timed("blend"):
                bpy.ops.wm.open_mainfile(filepath=spec.blend_file, load_ui=False)
    except Exception:  # noqa: BLE001 - run_job_dir reports a bad spec or an unreadable .blend, as process mode does
        pass
    return run_job_dir(job_dir, reached_at=reached_at, phases=phases)


def _own_temp_dir(bpy: Any, folder: str) -> None:
    """Give the child temp folders of its own, inside its job folder (removed with it): Blender's ``bpy.app.tempdir``
    (a new session folder under the preference, which a change of it makes) and Python's ``tempfile``. Without this
    every child shares the zygote's, and a job could read or remove what another left there."""
    try:
        os.makedirs(folder, exist_ok=True)
        os.environ["TMPDIR"] = folder
        tempfile.tempdir = None
        bpy.context.preferences.filepaths.temporary_directory = folder
    except Exception as error:  # noqa: BLE001 - the job still runs; it is told why its temp folder is shared
        print(f"bgproc: the job's own temp folder could not be made ({error}); it shares the zygote's", file=sys.stderr)


def _reap(pid: int, *, keep: set[int]) -> tuple[int, str | None]:
    """Kill what the child left in its group and re-parented to us, then reap it: ``(code, signal name)``."""
    _kill_group(pid)
    _, status = os.waitpid(pid, 0)
    end_descendants(keep=frozenset(keep))
    if os.WIFSIGNALED(status):
        number = os.WTERMSIG(status)
        try:
            name = signal.Signals(number).name
        except ValueError:
            name = f"SIG{number}"
        return 128 + number, name
    return os.WEXITSTATUS(status), None


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except OSError:
        pass  # Gone already.


def _tasks() -> list[str]:
    return os.listdir("/proc/self/task")


def _fork_problem(baseline: set[str]) -> str | None:
    """Why the zygote must not fork now, or ``None``."""
    others = [thread.name for thread in threading.enumerate() if thread is not threading.main_thread()]
    if others:
        return f"Python threads run in the zygote: {', '.join(others)}"
    new = set(_tasks()) - baseline
    if new:
        return f"{len(new)} native thread(s) started in the zygote since it was ready"
    deadline = time.monotonic() + SETTLE_SECONDS
    while True:
        busy = _busy_tasks()
        if not busy:
            return None
        if time.monotonic() > deadline:
            return f"native threads of the zygote did not fall asleep: {', '.join(busy)}"
        time.sleep(0.002)


def _busy_tasks() -> list[str]:
    """Native threads, other than this one, that are running or in uninterruptible sleep."""
    me = str(threading.get_native_id())
    busy: list[str] = []
    for task in _tasks():
        if task == me:
            continue
        try:
            with open(f"/proc/self/task/{task}/stat", encoding="ascii", errors="replace") as handle:
                text = handle.read()
        except OSError:
            continue  # It ended.
        state = text[text.rfind(")") + 2 :][:1]
        if state in ("R", "D"):
            busy.append(f"{task} ({state})")
    return busy


def _unsafe_reason() -> str | None:
    """Why this Blender cannot fork safely at all, or ``None``."""
    forced = os.environ.get("BGPROC_FORK_UNSAFE")
    if forced:
        return f"{forced} (BGPROC_FORK_UNSAFE is set)"
    if not hasattr(os, "pidfd_open"):
        return f"Python {sys.version.split()[0]} has no os.pidfd_open (Python 3.9+ on Linux 5.3+ is needed)"
    try:
        os.close(os.pidfd_open(os.getpid()))
    except OSError as error:
        return f"the kernel has no pidfd_open ({error})"
    if sys.platform != "linux":
        return f"fork mode needs Linux, not {sys.platform}"
    return None
