"""A pool worker's process state before a job, and what the job left: undone where a reset can, else a cause to retire.

Undone (put back exactly): ``builtins``, ``os.environ`` and the C library's own environment (``os.putenv``), signal
handlers, the signal mask and pending alarms (``alarm``/``setitimer``), profile and trace hooks (``sys`` and
``threading``), ``sys.meta_path``/``path_hooks`` (and the importer cache), ``bpy.app.handlers`` lists, the recursion
limit, ``sys.stdout``/``sys.stderr``, modules the job imported from outside Python's and Blender's own folders
(dropped from ``sys.modules``, so the next job imports them afresh), the umask, the garbage collector's state, the
exception hooks (``sys``, ``threading``, unraisable), warnings filters, the socket default timeout, the switch
interval, resource limits, the nice value, Python attributes set on ``bpy.types`` classes, the time zone
(``time.tzset``) and the int-to-str digit limit.

Retire the worker (it cannot be undone from Python): a lowered hard resource limit or a higher nice value the
worker may not undo (without privilege), a Python thread still running, a patched attribute of bgproc's
own runtime, an add-on enabled or disabled, a class registered or unregistered, an RNA property added to a built-in
type, changed user preferences, an extension module imported from outside Python's and Blender's folders, a new open
fd, or fd 1/2 closed or replaced.

Checks cost about a millisecond: the registered-class check counts calls of ``bpy.utils.(un)register_class`` (through
which add-ons and ``register_classes_factory`` register) instead of walking Blender's 3,000 types.
"""

from __future__ import annotations

import builtins
import ctypes
import gc
import os
import resource
import signal
import socket
import sys
import sysconfig
import threading
import time
import types
import warnings
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

# Built-in types that scripts extend with properties (``bpy.types.Scene.my_prop = IntProperty()``).
RNA_TYPES = (
    "ID", "Scene", "Object", "Mesh", "Material", "WindowManager", "ViewLayer", "World", "Collection", "Image",
    "Camera", "Light", "NodeTree", "Text", "Screen", "Window", "Bone", "PoseBone", "Armature", "Action", "Curve",
    "Texture", "Node", "Brush", "Library", "Key", "ParticleSettings", "Lattice", "Speaker", "Volume", "MovieClip",
    "Mask", "Sound", "VectorFont", "CacheFile", "PointCloud", "Palette", "LightProbe", "FreestyleLineStyle",
    "WorkSpace", "MetaBall", "ToolSettings", "Preferences", "Area", "Region",
)  # fmt: skip

_SIGNALS = [number for number in signal.valid_signals() if number not in (signal.SIGKILL, signal.SIGSTOP)]


@dataclass
class _Registrations:
    """Counts ``bpy.utils.register_class``/``unregister_class`` calls made during a job."""

    calls: int = 0


@dataclass
class Snapshot:
    """The process state a job starts from."""

    threads: set[int]
    runtime: dict[str, dict[str, int]]
    builtins: dict[str, Any]
    environ: dict[str, str]
    signals: dict[int, Any]
    profile: Any
    trace: Any
    threading_hooks: tuple[Any, Any]
    meta_path: list[Any]
    path_hooks: list[Any]
    handlers: dict[str, list[Any]]
    addons: list[str]
    rna: dict[str, int]
    preferences: dict[str, Any]
    recursion_limit: int
    fds: set[str]
    std_fds: tuple[Any, Any]
    streams: tuple[Any, Any]
    modules: set[str]
    register: tuple[Any, Any]
    registrations: _Registrations
    settings: "ProcessSettings"


class Guard:
    """A worker's clean state, taken once before its first job; each later job must leave the worker as clean.

    Taking the state costs several milliseconds right after Blender's data was reset, checking it about one: a worker
    that passes the check is back in its clean state (what differed was undone), so one snapshot serves every job.
    """

    def __init__(self) -> None:
        self._clean: Snapshot | None = None

    def before_job(self, bpy: Any) -> None:
        """Take the clean state (first job) and start counting class registrations."""
        if self._clean is None:
            self._clean = take(bpy)
        _count_registrations(bpy, self._clean)

    def after_job(self, bpy: Any) -> list[str]:
        """Undo what the job left that can be undone; return the causes to retire the worker (empty: clean)."""
        if self._clean is None:
            return []
        causes = tidy(bpy, self._clean)
        self._clean.modules = set(sys.modules)  # Shared modules a job imported stay; they are not looked at again.
        return causes


def take(bpy: Any) -> Snapshot:
    """The state now."""
    utils = bpy.utils
    snapshot = Snapshot(
        threads={thread.ident or 0 for thread in threading.enumerate()},
        runtime=_runtime_attributes(),
        builtins=dict(builtins.__dict__),
        environ=dict(os.environ),
        signals={number: signal.getsignal(number) for number in _SIGNALS},
        profile=sys.getprofile(),
        trace=sys.gettrace(),
        threading_hooks=_threading_hooks(),
        meta_path=list(sys.meta_path),
        path_hooks=list(sys.path_hooks),
        handlers=_handler_lists(bpy),
        addons=list(bpy.context.preferences.addons.keys()),
        rna=_rna_properties(bpy),
        preferences=_rna_values(bpy.context.preferences),
        recursion_limit=sys.getrecursionlimit(),
        fds=set(os.listdir("/proc/self/fd")),
        std_fds=(_fd_identity(1), _fd_identity(2)),
        streams=(sys.stdout, sys.stderr),
        modules=set(sys.modules),
        register=(utils.register_class, utils.unregister_class),
        registrations=_Registrations(),
        settings=ProcessSettings.take(bpy),
    )
    return snapshot


def _count_registrations(bpy: Any, clean: Snapshot) -> None:
    """Count ``bpy.utils.register_class``/``unregister_class`` calls until ``tidy`` puts the originals back."""
    registrations = clean.registrations
    registrations.calls = 0

    def counted(function: Any) -> Any:
        def call(cls: Any) -> Any:
            registrations.calls += 1
            return function(cls)

        return call

    bpy.utils.register_class = counted(clean.register[0])
    bpy.utils.unregister_class = counted(clean.register[1])


def tidy(bpy: Any, before: Snapshot) -> list[str]:
    """Undo what can be undone of what the job changed; return the causes to retire the worker (empty: clean)."""
    causes: list[str] = []
    _restore_streams(before)
    if (_fd_identity(1), _fd_identity(2)) != before.std_fds:
        causes.append("the job closed or replaced fd 1 or 2")
    threads = [t.name for t in threading.enumerate() if (t.ident or 0) not in before.threads and t.is_alive()]
    if threads:
        causes.append(f"Python threads still run: {', '.join(threads)}")
    patched = [
        f"{module}.{name}"
        for module, attributes in _runtime_attributes().items()
        for name, ident in attributes.items()
        if before.runtime.get(module, {}).get(name) != ident
    ]
    if patched:
        causes.append(f"bgproc's runtime was patched: {', '.join(sorted(patched)[:5])}")
    bpy.utils.register_class, bpy.utils.unregister_class = before.register
    if before.registrations.calls:
        causes.append(f"{before.registrations.calls} class(es) were registered or unregistered")
    if list(bpy.context.preferences.addons.keys()) != before.addons:
        causes.append("add-ons were enabled or disabled")
    rna = _rna_properties(bpy)
    grown = [name for name, count in rna.items() if count != before.rna.get(name)]
    if grown:
        causes.append(f"RNA properties were added to or removed from {', '.join(grown[:5])}")
    preferences = _rna_values(bpy.context.preferences)
    changed = [key for key, value in preferences.items() if before.preferences.get(key) != value]
    if changed:
        causes.append(f"user preferences changed: {', '.join(changed[:5])}")
    causes += _undo_modules(before)
    _undo_process_hooks(before)
    causes += before.settings.restore(bpy)
    if not causes:
        # Handlers of enabled add-ons are only safe to restore when the add-ons themselves are as they were.
        for name, saved in before.handlers.items():
            current = getattr(bpy.app.handlers, name)
            if current != saved:
                current[:] = saved
    new_fds = set(os.listdir("/proc/self/fd")) - before.fds
    if new_fds:
        causes.append(f"{len(new_fds)} file descriptor(s) were left open")
    return causes


def _restore_streams(before: Snapshot) -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:  # noqa: BLE001 - a job's own stream object may fail any way it likes
            pass
    sys.stdout, sys.stderr = before.streams


def _undo_process_hooks(before: Snapshot) -> None:
    current = builtins.__dict__
    for name in [name for name in current if name not in before.builtins]:
        del current[name]
    current.update(before.builtins)
    if dict(os.environ) != before.environ:
        os.environ.clear()
        os.environ.update(before.environ)
    signal.setitimer(signal.ITIMER_REAL, 0)  # Also cancels signal.alarm.
    for number, handler in before.signals.items():
        if handler is not None and signal.getsignal(number) is not handler:
            try:
                signal.signal(number, handler)
            except (OSError, ValueError):
                pass
    try:
        sys.setprofile(before.profile)
        sys.settrace(before.trace)
        threading.setprofile(before.threading_hooks[0])
        threading.settrace(before.threading_hooks[1])
    except TypeError:
        pass  # The worker itself runs under a C profiler (cProfile), which cannot be set back this way.
    if sys.meta_path != before.meta_path or sys.path_hooks != before.path_hooks:
        sys.meta_path[:] = before.meta_path
        sys.path_hooks[:] = before.path_hooks
        sys.path_importer_cache.clear()
    sys.setrecursionlimit(before.recursion_limit)


def _undo_modules(before: Snapshot) -> list[str]:
    """Drop the job's own modules from ``sys.modules``; an extension module of its own is a cause to retire."""
    added = [name for name in sys.modules if name not in before.modules]
    if not added:
        return []
    shared = _shared_folders()
    extensions: list[str] = []
    for name in added:
        module = sys.modules.get(name)
        path = os.path.realpath(getattr(module, "__file__", None) or "")
        if not path or any(path.startswith(folder) for folder in shared):
            continue  # Python's or Blender's own (or built in): shared by every job, and Blender may hold it.
        if path.endswith((".so", ".pyd")):
            extensions.append(name)
            continue
        del sys.modules[name]
    return [f"extension modules were imported: {', '.join(extensions[:5])}"] if extensions else []


def _shared_folders() -> list[str]:
    import bpy  # noqa: PLC0415 - only inside Blender

    folders = {sysconfig.get_paths()[key] for key in ("stdlib", "platstdlib")}
    folders |= {os.path.dirname(os.path.dirname(os.path.abspath(bpy.__file__)))}
    folders |= set(bpy.utils.script_paths())
    folders.add(os.path.dirname(os.path.abspath(__file__)))
    return [os.path.realpath(folder) + os.sep for folder in folders if folder]


def _runtime_attributes() -> dict[str, dict[str, int]]:
    return {
        name: {key: id(value) for key, value in vars(module).items()}
        for name, module in list(sys.modules.items())
        if (name == "bgproc" or name.startswith("bgproc.")) and isinstance(module, types.ModuleType)
    }


def _threading_hooks() -> tuple[Any, Any]:
    get_profile = getattr(threading, "getprofile", None)
    get_trace = getattr(threading, "gettrace", None)
    return (
        get_profile() if get_profile else getattr(threading, "_profile_hook", None),
        get_trace() if get_trace else getattr(threading, "_trace_hook", None),
    )


def _handler_lists(bpy: Any) -> dict[str, list[Any]]:
    handlers = bpy.app.handlers
    return {name: list(value) for name in dir(handlers) if isinstance(value := getattr(handlers, name), list)}


def _rna_properties(bpy: Any) -> dict[str, int]:
    return {name: len(getattr(bpy.types, name).bl_rna.properties) for name in RNA_TYPES if hasattr(bpy.types, name)}


def _rna_values(struct: Any, depth: int = 0, prefix: str = "") -> dict[str, Any]:
    """The simple values of an RNA struct and its nested structs (two levels), by path; collections are skipped."""
    values: dict[str, Any] = {}
    for prop in struct.bl_rna.properties:
        key = prop.identifier
        if key == "rna_type" or prop.type == "COLLECTION":
            continue
        value = getattr(struct, key, None)
        if prop.type == "POINTER":
            if depth < 2 and value is not None:
                values.update(_rna_values(value, depth + 1, f"{prefix}{key}."))
            continue
        if getattr(prop, "is_array", False):
            try:
                value = tuple(value)
            except TypeError:
                pass
        values[prefix + key] = value
    return values


def _fd_identity(fd: int) -> Any:
    try:
        info = os.fstat(fd)
    except OSError:
        return None
    return (info.st_dev, info.st_ino)


_LIMITS = [getattr(resource, name) for name in dir(resource) if name.startswith("RLIMIT_")]


@dataclass
class ProcessSettings:
    """Process-wide settings a script can change with one call, and which no Blender reset puts back."""

    c_environ: Dict[bytes, bytes]
    umask: int
    gc: Tuple[bool, Tuple[int, ...]]
    hooks: Dict[str, Any]
    warnings: Tuple[List[Any], Any, Any]
    socket_timeout: Optional[float]
    switch_interval: float
    limits: Dict[int, Tuple[int, int]]
    nice: int
    type_attributes: Dict[str, Dict[str, Any]]
    tz: Tuple[Any, ...]
    int_max_str_digits: Optional[int]
    signal_mask: Any

    @staticmethod
    def take(bpy: Any) -> "ProcessSettings":
        mask = os.umask(0)
        os.umask(mask)
        return ProcessSettings(
            c_environ=_c_environ(),
            umask=mask,
            gc=(gc.isenabled(), gc.get_threshold()),
            hooks=_hooks(),
            warnings=(list(warnings.filters), warnings.showwarning, warnings.formatwarning),
            socket_timeout=socket.getdefaulttimeout(),
            switch_interval=sys.getswitchinterval(),
            limits={limit: resource.getrlimit(limit) for limit in _LIMITS},
            nice=os.nice(0),
            type_attributes=_type_attributes(bpy),
            tz=(time.tzname, time.timezone, time.altzone, time.daylight),
            int_max_str_digits=sys.get_int_max_str_digits() if hasattr(sys, "get_int_max_str_digits") else None,
            signal_mask=signal.pthread_sigmask(signal.SIG_BLOCK, []),
        )

    def restore(self, bpy: Any) -> List[str]:
        """Put every setting back; return the causes to retire for those that cannot be (no privilege)."""
        causes: List[str] = []
        _restore_c_environ(self.c_environ)
        os.umask(self.umask)
        (gc.enable if self.gc[0] else gc.disable)()
        gc.set_threshold(*self.gc[1])
        for name, hook in self.hooks.items():
            module, attribute = name.split(".")
            setattr(sys if module == "sys" else threading, attribute, hook)
        warnings.filters[:] = self.warnings[0]
        warnings.showwarning, warnings.formatwarning = self.warnings[1], self.warnings[2]
        getattr(warnings, "_filters_mutated", lambda: None)()
        socket.setdefaulttimeout(self.socket_timeout)
        sys.setswitchinterval(self.switch_interval)
        for limit, saved in self.limits.items():
            if resource.getrlimit(limit) != saved:
                try:
                    resource.setrlimit(limit, saved)
                except (OSError, ValueError):
                    causes.append(f"a resource limit ({limit}) was lowered and cannot be raised again")
        if os.nice(0) != self.nice:
            try:
                os.setpriority(os.PRIO_PROCESS, 0, self.nice)
            except OSError:
                causes.append(f"the nice value went from {self.nice} to {os.nice(0)} and cannot be lowered again")
        _restore_type_attributes(bpy, self.type_attributes)
        if (time.tzname, time.timezone, time.altzone, time.daylight) != self.tz:
            time.tzset()  # os.environ["TZ"] is back already.
        if self.int_max_str_digits is not None:
            sys.set_int_max_str_digits(self.int_max_str_digits)
        signal.pthread_sigmask(signal.SIG_SETMASK, self.signal_mask)
        return causes


_HOOKS = ("sys.excepthook", "sys.unraisablehook", "sys.displayhook", "sys.breakpointhook", "threading.excepthook")


def _hooks() -> Dict[str, Any]:
    hooks = {}
    for name in _HOOKS:
        module, attribute = name.split(".")
        owner = sys if module == "sys" else threading
        if hasattr(owner, attribute):
            hooks[name] = getattr(owner, attribute)
    return hooks


def _c_environ() -> Dict[bytes, bytes]:
    """The C library's environment (``os.putenv`` changes it without ``os.environ`` knowing)."""
    env = ctypes.POINTER(ctypes.c_char_p).in_dll(ctypes.CDLL(None), "environ")
    entries: Dict[bytes, bytes] = {}
    index = 0
    while env[index] is not None:
        key, _, value = env[index].partition(b"=")
        entries[key] = value
        index += 1
    return entries


def _restore_c_environ(saved: Dict[bytes, bytes]) -> None:
    current = _c_environ()
    for key in current:
        if key not in saved:
            os.unsetenv(key)
    for key, value in saved.items():
        if current.get(key) != value:
            os.putenv(key, value)


def _type_attributes(bpy: Any) -> Dict[str, Dict[str, Any]]:
    """The Python attributes of the ``bpy.types`` classes scripts extend (not their RNA properties)."""
    return {name: dict(vars(getattr(bpy.types, name))) for name in RNA_TYPES if hasattr(bpy.types, name)}


def _restore_type_attributes(bpy: Any, saved: Dict[str, Dict[str, Any]]) -> None:
    for name, attributes in saved.items():
        cls = getattr(bpy.types, name)
        current = dict(vars(cls))
        for key, value in current.items():
            if key.startswith("__") or attributes.get(key, _MISSING) is value:
                continue
            try:
                if key in attributes:
                    setattr(cls, key, attributes[key])
                elif not _is_rna_property(cls, key):
                    delattr(cls, key)  # An RNA property added is a cause to retire already; left to that.
            except (AttributeError, TypeError):
                pass


def _is_rna_property(cls: Any, key: str) -> bool:
    return key in cls.bl_rna.properties.keys()


_MISSING = object()
