"""Reports a first progress value at once, then sleeps for ``seconds`` (default 0.5)."""

import time

update_job_progress(0.01)
time.sleep(float(passed_data.get("seconds", 0.5)))
python_data = {"slept": True}
