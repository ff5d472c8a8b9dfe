"""Blender's entry point: ``blender -b [FILE.blend] --python .../bgproc/__main__.py -- --job-dir DIR``.

Blender runs this file as a plain script, so it puts the runtime's folder on ``sys.path`` first. The job's
own arguments are not on Blender's command line: they come from spec.json and the script sees them in
``sys.argv`` after ``--``.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import argparse  # noqa: E402 - after the path above, with the imports that need it

from bgproc._runner import run_job_dir, watch_host  # noqa: E402


def _line_buffered_output() -> None:
    """Flush output at every line, whatever Blender set: a line printed just before a crash or ``os._exit`` must
    still reach the host's report (through a pipe, Blender 4.3 and 5.2 lost such a line; 3.4 did not)."""
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            reconfigure(line_buffering=True)


def main(argv: list[str]) -> int:
    """Run the job in ``--job-dir``, serve jobs as a pool worker, or fork them as the zygote; return the exit code."""
    parser = argparse.ArgumentParser(prog="bgproc")
    parser.add_argument("--job-dir")
    parser.add_argument("--pool", action="store_true")
    parser.add_argument("--worker-id", default="0")
    parser.add_argument("--empty-blend")
    parser.add_argument("--zygote", action="store_true")
    parser.add_argument("--addons", default="")
    options = parser.parse_args(argv)
    _line_buffered_output()
    from bgproc import _jail  # noqa: PLC0415 - after the path above

    _jail.enter_if_asked()  # First: everything Blender starts from here on is born in its cgroup.
    if options.zygote:
        # No watch_host: the zygote starts no thread (it reads the host's requests on stdin), so that it can fork.
        from bgproc._zygote import serve as serve_zygote  # noqa: PLC0415 - only for the fork-mode zygote

        return serve_zygote(zygote_id=options.worker_id)
    if options.pool:
        # No watch_host either: the worker's own reader of stdin takes the host's requests and sees its death.
        from bgproc._pool import serve  # noqa: PLC0415 - only for pool workers

        return serve(
            worker_id=options.worker_id,
            empty_blend=options.empty_blend,
            addons=[name for name in options.addons.split(",") if name],
        )
    watch_host()
    _jail.print_notice()
    return run_job_dir(options.job_dir)


def _own_args(argv: list[str]) -> list[str]:
    """Blender leaves everything after ``--`` to the script."""
    return argv[argv.index("--") + 1 :] if "--" in argv else []


_code = main(_own_args(sys.argv))
for _stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
    try:
        _stream.flush()
    except Exception:  # noqa: BLE001 - a stream a script put in place (or a closed fd) must not change the exit code
        pass
os._exit(_code)
