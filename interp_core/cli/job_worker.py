"""The worker process of a background training job: ``python -m interp_core.cli.job_worker
<job folder> <mode>`` (mode "train", "resume" or "evaluate"), started by
:mod:`interp_core.services.jobs`, which does the work (:func:`~interp_core.services.jobs.run_worker`);
this module only hands it the ``train`` command, so the service layer does not import the CLI.
The command's errors reach the worker as exceptions (a ``ValueError`` for settings that cannot
run), which it records as typed events, not as text printed to stderr.
"""

from __future__ import annotations

import sys
from pathlib import Path

from interp_core.cli import build_parser
from interp_core.cli.common import CLIError
from interp_core.runtime import configure_threads
from interp_core.services.jobs import run_worker


def run_command(argv: list[str]) -> int:
    """Run ``python -m interp_core <argv>``; its errors are raised (CLIError as ValueError), not printed."""
    args = build_parser().parse_args(argv)
    try:
        return args.run(args) or 0
    except CLIError as err:
        raise ValueError(str(err)) from None


if __name__ == "__main__":
    configure_threads(shared=True)
    sys.exit(run_worker(Path(sys.argv[1]), sys.argv[2], run_command))
