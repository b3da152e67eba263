"""The worker process of a background training job: ``python -m interp_core.cli.job_worker
<job folder> <mode>`` (mode "train", "resume" or "evaluate"), started by
:mod:`interp_core.services.jobs`, which does the work (:func:`~interp_core.services.jobs.run_worker`);
this module only hands it the ``train`` command, so the service layer does not import the CLI.
"""

from __future__ import annotations

import sys
from pathlib import Path

from interp_core.cli import main
from interp_core.runtime import configure_threads
from interp_core.services.jobs import run_worker

if __name__ == "__main__":
    configure_threads(shared=True)
    sys.exit(run_worker(Path(sys.argv[1]), sys.argv[2], main))
