"""Nothing a job starts outlives it: Blender is its job's child subreaper, and kills what is left when the job ends.

A process a script starts in a session of its own (``setsid``, ``start_new_session=True``, a double fork) leaves
Blender's process group, so killing the group misses it. With ``PR_SET_CHILD_SUBREAPER`` every orphaned descendant is
re-parented to Blender instead of to init, so Blender's children are, at the end, everything the job left behind.
"""

from __future__ import annotations

import os
import signal

from ._libc import prctl

PR_SET_CHILD_SUBREAPER = 36

# Each round kills the children we have now; their own children are then re-parented to us for the next round.
MAX_ROUNDS = 32

# Children that are not the job's: Blender's cgroup guardian (``_jail.py``).
_spared: set[int] = set()


def spare(pid: int) -> None:
    """Never end this child: it is bgproc's own, not something a job started."""
    _spared.add(pid)


def become_subreaper() -> bool:
    """Make this process the child subreaper of its descendants; ``False`` where the kernel will not."""
    return prctl(PR_SET_CHILD_SUBREAPER, 1)


def children() -> list[int]:
    """The pids of this process's children (of all its threads)."""
    pids: list[int] = []
    for task in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{task}/children", encoding="ascii") as handle:
                pids += [int(pid) for pid in handle.read().split()]
        except OSError:
            pass  # The thread ended.
    return pids


def end_descendants(*, keep: frozenset[int] = frozenset()) -> int:
    """Kill and reap every descendant but ``keep`` (and theirs), round by round; returns how many were killed."""
    killed = 0
    for _ in range(MAX_ROUNDS):
        pids = [pid for pid in children() if pid not in keep and pid not in _spared]
        if not pids:
            break
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
                killed += 1
            except OSError:
                pass  # Gone already.
        for pid in pids:
            try:
                os.waitpid(pid, 0)
            except OSError:
                pass  # Reaped elsewhere (a script's own subprocess object).
    return killed
