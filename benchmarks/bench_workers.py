"""``reproduce`` on one worker against a local Ray of two: the wall-clock of one slice of the real
run, measured both ways in one benchmark run, and whether the two wrote the same tables.

The slice: the quick run's PGD part (its 50 steps, 40 images and quick re-test) on the MNIST
smallgap networks it measures (``--quick``: two of them, 10 images). Wall time, not CPU time: the
point is the time to the tables with the cores working at once; the Ray figure includes starting
Ray. One torch thread per worker in both modes.
"""

from __future__ import annotations

import os
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch

from interp_core.evaluate import reproduce as rp

FILES = ("pgd_accuracy.csv", "pgd_accuracy.md")


def _pgd(out: Path, settings: rp.Settings, workers: int) -> tuple[float, float]:
    """(wall seconds, seconds of the units' work) of the PGD part with ``workers`` into ``out``."""
    start = time.perf_counter()
    result = rp.pgd_tables(rp.Run(out, settings, "cpu", None, workers=workers))
    return time.perf_counter() - start, result["unit_seconds"]


def run(quick: bool) -> dict:
    torch.set_num_threads(1)
    methods = ("normal", "adv") if quick else rp.QUICK.methods[("mnist", "smallgap")]
    settings = replace(rp.QUICK, n=10 if quick else rp.QUICK.n, methods={("mnist", "smallgap"): methods})
    rows, outputs = [], {}
    with tempfile.TemporaryDirectory() as folder:
        for workers in (1, 2):
            out = Path(folder) / f"workers-{workers}"
            load = os.getloadavg()[0]
            wall, work = _pgd(out, settings, workers)
            outputs[workers] = [(out / name).read_bytes() for name in FILES]
            rows.append({"workers": workers, "engine": "one process" if workers == 1 else "local Ray",
                         "wall s": wall, "units' work s": work, "1-min load before": round(load, 2)})
    ratio = rows[0]["wall s"] / rows[1]["wall s"]
    return {"title": "reproduce on one worker and on two Ray workers",
            "settings": {"part": "pgd", "networks": f"mnist smallgap {', '.join(methods)}", "images": settings.n,
                         "steps": settings.steps, "retest": settings.retest, "threads per worker": 1},
            "tables": {"Wall-clock of the slice": rows,
                       "Two workers against one": [{"wall-clock ratio (1 worker / 2 workers)": ratio,
                                                    "identical CSV and markdown": outputs[1] == outputs[2]}]},
            "notes": ["one run each, serial first; the machine's other work (the load averages) takes from "
                      "both, and a busy second core takes more from the two-worker run",
                      "the Ray figure includes starting Ray and its workers (seconds), paid once per run"]}
