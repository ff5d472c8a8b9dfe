"""Enabling the add-ons a job asks for (``addons`` in spec.json) before its script runs.

Each is enabled as the user would in Preferences: ``addon_utils.enable(name, default_set=True, persistent=True)``,
so it is listed in ``bpy.context.preferences.addons`` and stays enabled if the script loads another file. A name that
is not installed, or an add-on whose ``register()`` fails, raises ``AddonError`` naming it; the runner reports that
with origin ``"addons"`` before the script has run a line.

Blender 4.2 made many bundled add-ons extensions, whose modules are ``bl_ext.<repository>.<name>``: a plain name that
is no add-on but is the last part of exactly one installed extension's module enables that extension. This is a naming
scheme, not a bpy difference (the same search finds nothing to add on 3.4), so it lives here rather than in _compat.

In a pool worker an enabled add-on changes the worker for good (``_worker_state`` sees the changed add-on list and
retires the worker after the job); in process and fork mode it dies with the job's Blender.
"""

from __future__ import annotations

import difflib
import importlib.util
import json
from typing import Any

from ._compat import built_in_addon


class AddonError(Exception):
    """An add-on the job asked for is not installed, or would not enable."""

    def __init__(self, name: str, problem: str) -> None:
        super().__init__(f"add-on '{name}' {problem}")
        self.name = name


def enable_addons(bpy: Any, *, spec_path: str) -> list[str]:
    """Enable the add-ons listed in the job's spec.json, in order; return their module names."""
    with open(spec_path, encoding="utf-8") as handle:
        names = json.load(handle).get("addons") or []
    return [enable_addon(bpy, str(name)) for name in names]


def enable_addon(bpy: Any, name: str) -> str:
    """Enable the add-on ``name`` (or the one extension it names); return its module name, or raise ``AddonError``."""
    import addon_utils  # noqa: PLC0415 - only inside Blender

    module = name if _importable(name) else _extension_named(addon_utils, name)
    if module is None:
        replaced = built_in_addon(bpy, name)
        if replaced is not None:
            raise AddonError(
                name, f"is built into Blender {bpy.app.version_string} as {replaced}: there is no add-on to enable"
            )
        raise AddonError(name, f"is not installed in Blender {bpy.app.version_string}{_hint(addon_utils, name)}")
    if addon_utils.check(module)[1]:
        return module  # Enabled already (by the user's preferences, or the manager's list and the job's).
    failures: list[BaseException] = []
    enabled = addon_utils.enable(module, default_set=True, persistent=True, handle_error=failures.append)
    if failures or enabled is None or not addon_utils.check(module)[1]:
        cause = failures[0] if failures else None
        why = "" if cause is None else f": {type(cause).__name__}: {cause}"
        raise AddonError(name, f"could not be enabled{why}") from cause
    return module


def _importable(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False  # A dotted name whose package does not exist.


def _extension_named(addon_utils: Any, name: str) -> str | None:
    """The module of the one installed extension (``bl_ext.<repository>.<name>``) whose last part is ``name``."""
    if "." in name:
        return None
    suffix = "." + name
    found = [module for module in _installed(addon_utils) if module.startswith("bl_ext.") and module.endswith(suffix)]
    return found[0] if len(found) == 1 else None


def _installed(addon_utils: Any) -> list[str]:
    return sorted(module.__name__ for module in addon_utils.modules())


def _hint(addon_utils: Any, name: str) -> str:
    """What the user may have meant, and where Blender looked."""
    installed = _installed(addon_utils)
    close = difflib.get_close_matches(name, installed, n=3, cutoff=0.6)
    close += [module for module in installed if module.endswith("." + name) and module not in close]
    hint = f"; did you mean {', '.join(repr(module) for module in close)}?" if close else ""
    return f" (add-on folders: {', '.join(addon_utils.paths())}){hint}"
