"""Blender's entry point: ``blender -b [FILE.blend] --python .../bgproc/__main__.py -- --job-dir DIR``.

Blender runs this file as a plain script, so it puts the runtime's folder on ``sys.path`` first. The job's
own arguments are not on Blender's command line: they come from spec.json and the script sees them in
``sys.argv`` after ``--``.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import argparse  # noqa: E402 - after the path above, with the imports that need it

from bgproc._job_dir import JobDir  # noqa: E402
from bgproc._runner import EXIT_RUNTIME_ERROR, JobSpec, blender_version, error_record, run_job, watch_host  # noqa: E402


def main(argv: list[str]) -> int:
    """Run the job in ``--job-dir``, or serve jobs as a pool worker; return the process exit code."""
    parser = argparse.ArgumentParser(prog="bgproc")
    parser.add_argument("--job-dir")
    parser.add_argument("--pool-socket")
    parser.add_argument("--worker-id", default="0")
    parser.add_argument("--empty-blend")
    options = parser.parse_args(argv)
    watch_host()
    if options.pool_socket is not None:
        from bgproc._pool import serve  # noqa: PLC0415 - only for pool workers

        return serve(socket_path=options.pool_socket, worker_id=options.worker_id, empty_blend=options.empty_blend)
    job_dir = JobDir(options.job_dir)
    job_dir.write_runtime({"pid": os.getpid(), "python": sys.version.split()[0], "blender": blender_version()})
    try:
        spec = JobSpec.load(job_dir.file("spec"))
        return run_job(spec, job_dir=job_dir)
    except BaseException as error:  # noqa: BLE001 - the runtime itself failed: report it, never pass as success
        job_dir.write_error(error_record(error, origin="runtime"))
        return EXIT_RUNTIME_ERROR


def _own_args(argv: list[str]) -> list[str]:
    """Blender leaves everything after ``--`` to the script."""
    return argv[argv.index("--") + 1 :] if "--" in argv else []


_code = main(_own_args(sys.argv))
sys.stdout.flush()
sys.stderr.flush()
os._exit(_code)
