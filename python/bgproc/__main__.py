"""Blender's entry point: ``blender -b [FILE.blend] --python .../bgproc/__main__.py -- --job-dir DIR``.

Blender runs this file as a plain script, so it puts the runtime's folder on ``sys.path`` first. The job's
own arguments are not on Blender's command line: they come from spec.json and the script sees them in
``sys.argv`` after ``--``.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bgproc._runner import main  # noqa: E402 - needs the path above


def _own_args(argv: list[str]) -> list[str]:
    """Blender leaves everything after ``--`` to the script."""
    return argv[argv.index("--") + 1 :] if "--" in argv else []


_code = main(_own_args(sys.argv))
sys.stdout.flush()
sys.stderr.flush()
os._exit(_code)
