"""Times update_job_progress in a tight loop, inside Blender."""

import time

calls = int(passed_data.get("calls", 1_000_000))
start = time.perf_counter()
for i in range(calls):
    update_job_progress(i / calls)
elapsed = time.perf_counter() - start
python_data = {"calls": calls, "seconds": elapsed, "calls_per_second": calls / elapsed}
