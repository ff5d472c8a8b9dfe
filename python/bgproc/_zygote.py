"""Fork mode's zygote: a warm Blender that never runs user code and forks one child per attempt.

The control channel is a Unix socket to the host, one JSON message per line, as in pool mode:

- zygote -> host: ``ready`` (pid, Blender version, native threads, ``unsafe``: why forking is unsafe here, or null),
  ``forked`` (token, child pid), ``refused`` (token, why), ``exited`` (token, code, signal).
- host -> zygote: ``fork`` (token, job dir), ``kill`` (token).

A child's stdout and stderr are two more connections to the host's socket, made by the zygote just before the fork
(each opens with a ``output`` line naming the token and stream); the child puts them on fds 1 and 2, and the zygote
closes its copies. So a job's output reaches the host per job, ends when the child and everything it started have
closed it (as a pipe would), and never passes through the zygote. Deno cannot pass fds over a socket (SCM_RIGHTS), so
the host cannot hand the zygote pipes; FIFOs or files in the job directory would need polling and leave files behind.

The zygote reaps its children through pidfds (no SIGCHLD handler, no polling) and reports each exit, signals included.
It is the children's subreaper: when a child ends, whatever it left behind that was re-parented to the zygote (a
double-forked ``setsid`` daemon) is killed, and the child's process group is killed before the child is reaped (so
the group id cannot have been reused).

What forking a Blender must avoid (see the README's fork-mode section):

- GPU devices: the zygote never renders, never touches Cycles' device list or preferences, never imports add-ons of
  its own. CUDA/HIP/OptiX/Metal contexts do not survive a fork; a child initialises its own.
- Shared files and locks: the zygote opens nothing but its control socket, its epoll and its children's pidfds; the
  child closes all of them first thing. It never writes a file a child could also write. What Blender itself holds
  open (the ``--python`` file on 3.4, a pipe pair of 5.2's own, /dev/null) stays shared and unused by bgproc.
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

import ctypes
import json
import os
import random
import selectors
import signal
import socket
import stat
import sys
import tempfile
import threading
import time
import warnings
from dataclasses import dataclass
from typing import Any

from ._reaper import become_subreaper, end_descendants

PR_SET_PDEATHSIG = 1

EXIT_RUNTIME_ERROR = 4

# How long a native thread that is not asleep may take to fall asleep before the zygote refuses to fork.
SETTLE_SECONDS = 0.2


@dataclass
class _Child:
    token: str
    pid: int
    pidfd: int


def serve(*, socket_path: str, zygote_id: str) -> int:
    """Connect to the host, report ``ready``, then fork a child per ``fork`` until the host goes away."""
    import bpy  # noqa: PLC0415 - only inside Blender

    become_subreaper()
    baseline = set(_tasks())
    unsafe = _unsafe_reason()
    control = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    control.connect(socket_path)

    def send(message: dict[str, Any]) -> None:
        control.sendall(json.dumps(message).encode("utf-8") + b"\n")

    send(
        {
            "type": "ready",
            "zygote": zygote_id,
            "pid": os.getpid(),
            "blender": str(bpy.app.version_string),
            "threads": len(baseline),
            "unsafe": unsafe,
        }
    )
    children: dict[str, _Child] = {}
    selector = selectors.DefaultSelector()
    selector.register(control, selectors.EVENT_READ, "control")
    if stat.S_ISFIFO(os.fstat(0).st_mode):
        selector.register(0, selectors.EVENT_READ, "stdin")  # The host holds it open: end-of-file is its death.
    pending = b""
    try:
        while True:
            for key, _ in selector.select():
                if key.data == "stdin":
                    if not os.read(0, 65536):
                        return 0  # The host is gone.
                elif key.data == "control":
                    data = control.recv(65536)
                    if not data:
                        return 0
                    pending += data
                    while b"\n" in pending:
                        line, pending = pending.split(b"\n", 1)
                        _handle(
                            json.loads(line),
                            bpy=bpy,
                            send=send,
                            socket_path=socket_path,
                            children=children,
                            selector=selector,
                            control=control,
                            baseline=baseline,
                        )
                else:
                    child: _Child = key.data
                    selector.unregister(child.pidfd)
                    os.close(child.pidfd)
                    del children[child.token]
                    code, name = _reap(child.pid, keep={other.pid for other in children.values()})
                    send({"type": "exited", "token": child.token, "code": code, "signal": name})
    finally:
        for child in children.values():
            _kill_group(child.pid)
        end_descendants()


def _handle(message: dict[str, Any], *, bpy: Any, send: Any, socket_path: str, children: dict[str, _Child],
            selector: selectors.BaseSelector, control: socket.socket, baseline: set[str]) -> None:
    token = str(message.get("token"))
    if message.get("type") == "kill":
        child = children.get(token)
        if child is not None:
            _kill_group(child.pid)  # Not reaped yet, so the group id is still this child's.
        return
    if message.get("type") != "fork":
        return
    problem = _fork_problem(baseline)
    if problem is not None:
        send({"type": "refused", "token": token, "why": problem})
        return
    streams = [_output_connection(socket_path, token, name) for name in ("stdout", "stderr")]
    sys.stdout.flush()
    sys.stderr.flush()
    with warnings.catch_warnings():
        # Python 3.12+ warns that Blender's (sleeping) native threads exist: see the module's notes.
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:
        code = EXIT_RUNTIME_ERROR
        try:
            os.setpgid(0, 0)
            os.dup2(streams[0].fileno(), 1)
            os.dup2(streams[1].fileno(), 2)
            for stream in streams:
                stream.close()
            for child in children.values():
                os.close(child.pidfd)
            selector.close()
            control.close()
            code = _run_child(bpy, job_dir=str(message["jobDir"]))
        finally:
            try:
                sys.stdout.flush()
                sys.stderr.flush()
            finally:
                os._exit(code)
    try:
        os.setpgid(pid, pid)  # Also here: a kill may come before the child has run a line.
    except OSError:
        pass  # The child did it first, or has exited already.
    for stream in streams:
        stream.close()
    child = _Child(token=token, pid=pid, pidfd=os.pidfd_open(pid))
    children[token] = child
    selector.register(child.pidfd, selectors.EVENT_READ, child)
    send({"type": "forked", "token": token, "pid": pid})


def _run_child(bpy: Any, *, job_dir: str) -> int:
    """In the child: die with the zygote, reseed, open the job's .blend file, then run the job as process mode does."""
    from ._job_dir import JobDir  # noqa: PLC0415 - after the fork: the zygote stays lean
    from ._runner import JobSpec, run_job_dir, watch_host  # noqa: PLC0415

    _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() == 1:
        return EXIT_RUNTIME_ERROR  # The zygote died before the line above.
    random.seed()
    _own_temp_dir(bpy, JobDir(job_dir).file("temp"))
    try:
        spec = JobSpec.load(JobDir(job_dir).file("spec"))
        if spec.blend_file is not None:
            bpy.ops.wm.open_mainfile(filepath=spec.blend_file, load_ui=False)
    except Exception:  # noqa: BLE001 - run_job_dir reports a bad spec or an unreadable .blend, as process mode does
        pass
    watch_host()
    return run_job_dir(job_dir)


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


def _output_connection(socket_path: str, token: str, stream: str) -> socket.socket:
    connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    connection.connect(socket_path)
    connection.sendall(json.dumps({"type": "output", "token": token, "stream": stream}).encode("utf-8") + b"\n")
    connection.shutdown(socket.SHUT_RD)
    return connection


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


def _prctl(option: int, value: int) -> None:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(option, value, 0, 0, 0)
    except (OSError, AttributeError):
        pass
