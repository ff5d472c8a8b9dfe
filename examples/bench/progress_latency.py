"""Reports progress every ``pause`` seconds and records the wall-clock time of each call (ms since the epoch)."""

import time

steps = int(passed_data.get("steps", 50))
sent = []
for i in range(1, steps + 1):
    time.sleep(float(passed_data.get("pause", 0.03)))
    value = i / steps
    sent.append([value, time.time() * 1000])
    update_job_progress(value)
python_data = {"sent": sent}
