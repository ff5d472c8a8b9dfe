"""A cgroup of its own for this Blender, made by Blender itself, where the host could not make one.

Deno lets the host read ``/proc`` and write ``/sys`` only with ``--allow-all``, so under the README's permissions the
host cannot give each Blender a cgroup (``src/local/runners/_cgroup.ts``); then it asks Blender to (environment
``BGPROC_CGROUP=self``). Blender forks a *guardian* first, which stays in the host's cgroup, leaves Blender's session
and process group (a kill of Blender's group spares it), holds none of Blender's files, and waits for Blender's death
(``PR_SET_PDEATHSIG``); Blender then moves itself into a new cgroup,
``<host's cgroup>/bgproc-<host pid>/blender-<pid>``. Everything Blender starts is born in that cgroup, daemons in
sessions of their own included, so when Blender ends, in any way, the guardian kills the whole cgroup
(``cgroup.kill``), removes it and exits. Where no cgroup can be made (no
cgroup2 mount, no right to write there, a read-only ``/sys`` in a sandbox), nothing changes and ``enter`` says why.
"""

from __future__ import annotations

import errno
import os
import signal
import sys
import time

from ._libc import libc, prctl
from ._reaper import spare

PR_SET_PDEATHSIG = 1
EMPTY_SECONDS = 2.0

_notice: str | None = None


def enter_if_asked() -> None:
    """Enter a guarded cgroup when the host asks (``BGPROC_CGROUP=self``); keep the notice when none can be made."""
    global _notice
    if os.environ.get("BGPROC_CGROUP") != "self":
        return
    why = enter(int(os.environ.get("BGPROC_HOST_PID", "0") or 0))
    if why is not None and os.environ.get("BGPROC_CGROUP_NOTICE") == "1":
        _notice = f"bgproc: {why}; a process a killed job leaves in a session of its own may outlive it"


def take_notice() -> str | None:
    """The notice, once: the first job's stderr says it (later jobs of a warm Blender do not repeat it)."""
    global _notice
    notice, _notice = _notice, None
    return notice


def print_notice() -> None:
    """Print the notice, if it is still to be said, to stderr (the job's)."""
    notice = take_notice()
    if notice is not None:
        print(notice, file=sys.stderr)


def enter(host_pid: int) -> str | None:
    """Move this process into a cgroup of its own, guarded; ``None`` when done, else why not."""
    try:
        folder = os.path.join(_own_cgroup(), f"bgproc-{host_pid}")
        _sweep_dead_hosts(os.path.dirname(folder))
        path = os.path.join(folder, f"blender-{os.getpid()}")
        os.makedirs(path, exist_ok=True)
    except OSError as error:
        return f"no cgroup could be made ({error.strerror or error})"
    except LookupError as error:
        return f"no cgroup could be made ({error})"
    if not os.path.exists(os.path.join(path, "cgroup.procs")):
        # Not a cgroup: the mount is hidden (a sandbox's own /sys), and the folder was made in whatever is there.
        _remove(path)
        return "no cgroup could be made (the cgroup2 file system is not visible here)"
    if libc() is None:  # Loaded before the fork: no dlopen in the child.
        _remove(path)
        return "no guardian can watch a cgroup here (the C library cannot be loaded)"
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
    parent = os.getpid()
    try:
        pid = os.fork()
    except OSError as error:
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
        _remove(path)
        return f"no guardian could be started ({error.strerror or error})"
    if pid == 0:
        _guard(path, parent)  # Never returns.
    signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
    spare(pid)  # Blender's own reaper must not end its guardian.
    try:
        with open(os.path.join(path, "cgroup.procs"), "w", encoding="ascii") as handle:
            handle.write(str(parent))
    except OSError as error:
        os.kill(pid, signal.SIGTERM)  # The guardian removes the empty cgroup and exits.
        return f"no cgroup could be entered ({error.strerror or error})"
    return None


def _guard(path: str, parent: int) -> None:
    """In the guardian: wait for Blender's death, then end everything in its cgroup and remove it."""
    code = 0
    try:
        os.setsid()
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        for fd in [int(name) for name in os.listdir("/proc/self/fd")]:  # Not even Blender's pipes to the host.
            if fd > 2:
                try:
                    os.close(fd)
                except OSError:
                    pass  # The listing's own fd, closed already.
        prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() == parent:
            signal.sigwait({signal.SIGTERM})
        _kill_all(path)
    except BaseException:  # noqa: BLE001 - the guardian has nobody to report to
        code = 1
    finally:
        os._exit(code)


def _kill_all(path: str) -> None:
    """Kill everything in the cgroup ``path`` until it can be removed (at most ``EMPTY_SECONDS``), then remove it."""
    deadline = time.monotonic() + EMPTY_SECONDS
    while True:
        try:
            with open(os.path.join(path, "cgroup.procs"), encoding="ascii") as handle:
                pids = [int(line) for line in handle if line.strip()]
        except OSError:
            return  # Gone already.
        if pids:
            try:
                with open(os.path.join(path, "cgroup.kill"), "w", encoding="ascii") as handle:
                    handle.write("1")
            except OSError:  # Before Linux 5.14: one by one until none is left.
                for pid in pids:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except OSError:
                        pass
        try:
            os.rmdir(path)  # Busy until the last process in it (a dying Blender's threads too) has exited.
            break
        except OSError as error:
            if error.errno != errno.EBUSY or time.monotonic() > deadline:
                break
        time.sleep(0.005)
    try:
        os.rmdir(os.path.dirname(path))  # The host's folder, once no other Blender's cgroup is in it.
    except OSError:
        pass


def _own_cgroup() -> str:
    """This process's cgroup (v2) folder."""
    mount = None
    with open("/proc/self/mountinfo", encoding="utf-8") as handle:
        for line in handle:
            fields = line.split()
            if "-" in fields and fields[fields.index("-") + 1] == "cgroup2":
                mount = fields[4]
                break
    if mount is None:
        raise LookupError("no cgroup2 file system is mounted")
    with open("/proc/self/cgroup", encoding="utf-8") as handle:
        for line in handle:
            if line.startswith("0::"):
                return os.path.normpath(os.path.join(mount, line[3:].strip().lstrip("/")))
    raise LookupError("this process is in no cgroup2 cgroup")


def _sweep_dead_hosts(parent: str) -> None:
    """End and remove what hosts that are gone left in their cgroups (a host killed with its Blenders' guardians)."""
    try:
        entries = os.listdir(parent)
    except OSError:
        return
    for name in entries:
        if not name.startswith("bgproc-") or not name[7:].isdigit() or os.path.exists(f"/proc/{name[7:]}"):
            continue
        folder = os.path.join(parent, name)
        try:
            children = [entry for entry in os.listdir(folder) if os.path.isdir(os.path.join(folder, entry))]
        except OSError:
            continue
        for child in children:
            _kill_all(os.path.join(folder, child))
        try:
            os.rmdir(folder)  # Also when it had no Blender's cgroup left.
        except OSError:
            pass


def _remove(path: str) -> None:
    for folder in (path, os.path.dirname(path)):
        try:
            os.rmdir(folder)
        except OSError:
            pass
