"""Counts to ``steps`` over ``seconds``, reporting progress as it goes."""
# passed_data: {"steps": 50, "seconds": 5}

import time

steps = int(passed_data.get("steps", 50))
seconds = float(passed_data.get("seconds", 5))
for i in range(1, steps + 1):
    time.sleep(seconds / steps)
    update_job_progress(i / steps)
python_data = {"counted": steps}
