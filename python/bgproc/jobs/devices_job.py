"""bgproc's own job for ``bgproc info``: the compute devices Cycles sees, per compute type.

Sets ``python_data["devices"]``: ``[{"type", "name", "id"}]`` (the CPU included), and ``python_data["types"]``: the
GPU compute types that have a device.
"""

import bpy

devices = []
types = []
addon = bpy.context.preferences.addons.get("cycles")
if addon is not None:
    preferences = addon.preferences
    for compute_type in ("OPTIX", "CUDA", "HIP", "ONEAPI", "METAL"):
        try:
            preferences.compute_device_type = compute_type
        except TypeError:
            continue
        preferences.get_devices()
        found = [device for device in preferences.devices if device.type == compute_type]
        if found:
            types.append(compute_type)
        devices.extend({"type": device.type, "name": device.name, "id": device.id} for device in found)
    preferences.compute_device_type = "NONE"
    preferences.get_devices()
    devices.extend(
        {"type": device.type, "name": device.name, "id": device.id} for device in preferences.devices
        if device.type == "CPU"
    )
python_data = {"devices": devices, "types": types}
