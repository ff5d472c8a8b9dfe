"""A job's GPU (``gpu`` in its spec: its slot's device, from ``JobManager({ gpus })``).

The drivers read their device lists from the environment when Cycles first uses a GPU in this Blender, so the
device is set there first: ``CUDA_VISIBLE_DEVICES`` (CUDA and OptiX), ``HIP_VISIBLE_DEVICES`` (HIP) and
``ONEAPI_DEVICE_SELECTOR`` (oneAPI). A Blender that used a GPU already (a pool worker's earlier job) keeps the devices
its drivers saw, so Cycles' preferences are set too: the GPU devices Cycles lists, and only those, are used. Without a
GPU Cycles renders on the CPU, and the job's output says so.
"""

from __future__ import annotations

import os
from typing import Any, Callable, Dict

#: The compute device types tried, the best first.
COMPUTE_TYPES = ("OPTIX", "CUDA", "HIP", "ONEAPI", "METAL")


def assign_gpu(bpy: Any, device: str, warn: Callable[[str], None]) -> Dict[str, Any]:
    """Give this job the GPU ``device``; return what was set (the environment and Cycles' choice)."""
    environment = {"CUDA_VISIBLE_DEVICES": device, "HIP_VISIBLE_DEVICES": device}
    if device.isdigit():
        environment["ONEAPI_DEVICE_SELECTOR"] = f"level_zero:{device}"  # oneAPI names devices by number only.
    os.environ.update(environment)
    try:
        chosen = _cycles_devices(bpy, device)
    except Exception as error:  # noqa: BLE001 - a driver that fails to list its devices: the job renders as it can
        warn(f"Cycles could not list its devices for GPU {device}: {type(error).__name__}: {error}")
        return {"environment": environment, "cycles": None}
    if chosen is None:
        warn(f"GPU {device} was given to this job, but Cycles sees no GPU here: it renders on the CPU")
    return {"environment": environment, "cycles": chosen}


def _cycles_devices(bpy: Any, device: str) -> Any:
    """Use the GPU devices Cycles sees, of the best compute type that has one: ``{type, devices}``, or ``None``.

    Where Cycles lists several (its drivers started before the environment was set: a pool worker's earlier job), the
    ``device``-th of them only, when ``device`` is a number."""
    addon = bpy.context.preferences.addons.get("cycles")
    if addon is None:
        return None
    preferences = addon.preferences
    for compute_type in COMPUTE_TYPES:
        try:
            preferences.compute_device_type = compute_type
        except TypeError:
            continue  # Not a type this Blender (or this build) knows.
        preferences.get_devices()
        gpus = [device for device in preferences.devices if device.type == compute_type]
        if not gpus:
            continue
        if len(gpus) > 1 and device.isdigit() and int(device) < len(gpus):
            gpus = [gpus[int(device)]]
        for each in preferences.devices:
            each.use = any(each == chosen for chosen in gpus)
        return {"type": compute_type, "devices": [each.name for each in gpus]}
    preferences.compute_device_type = "NONE"
    return None
