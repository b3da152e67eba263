"""What the full ``reproduce`` costs on this machine, per part, without running it for hours.

Each part of :mod:`interp_core.evaluate.reproduce` runs with the full protocol's steps, rounds and
budgets (``FULL``), but on a slice: one network per table (its PGD-trained one, which keeps most
images standing, so every step attacks them) and ``images`` images instead of 200 (the bound's
100, one of the trade-off's 5 images). The CPU seconds of that slice, scaled linearly by images and
by the number of networks of each table, estimate the full part. Smaller batches cost more per image
on a CPU than batches of 200, so the estimate leans high; it is an extrapolation, said as such.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch

from interp_core.evaluate import reproduce as rp

#: The network measured per table: the PGD-trained one (most images stay standing).
MEASURED = "adv"


def _timed(part: str, settings: rp.Settings) -> float:
    """CPU seconds of one part with ``settings`` (into a temporary folder)."""
    with tempfile.TemporaryDirectory() as out:
        run = rp.Run(Path(out), settings, "cpu", None)
        start = time.process_time()
        rp.PART_FUNCTIONS[part](run)
        return time.process_time() - start


def _networks(tables) -> dict[tuple[str, str], int]:
    """Paper networks present per (dataset, arch)."""
    return {(d, a): len(rp.paper_networks(d, prefix, a)) for d, prefix, a in tables}


def run(quick: bool) -> dict:
    torch.set_num_threads(1)
    images = 4 if quick else 20
    full = rp.FULL
    rows, totals = [], {}
    for part, tables, full_n in (("pgd", rp.TABLES, full.n), ("aai", rp.TABLES, full.n),
                                 ("uar", rp.UAR_TABLES, full.uar_n)):
        counts = _networks(tables)
        for (dataset, arch), count in counts.items():
            if not count:
                continue
            one = {(dataset, arch): (MEASURED,)}
            settings = replace(full, n=images, uar_n=images, methods=one, uar_methods=one)
            seconds = _timed(part, settings)
            estimate = seconds * full_n / images * count
            totals[part] = totals.get(part, 0.0) + estimate
            rows.append({"part": part, "table": f"{dataset} {arch}", "networks": count, "images measured": images,
                         "CPU s measured (1 network)": seconds, "estimated full CPU min": estimate / 60})
    for part, settings, scale in (("bound", replace(full, bound_n=images), full.bound_n / images),
                                  ("isa", replace(full, tradeoff_n=1), full.tradeoff_n)):
        seconds = _timed(part, settings)
        totals[part] = seconds * scale
        rows.append({"part": part, "table": "mnist and cifar10 smallgap normal", "networks": 2,
                     "images measured": images if part == "bound" else 1, "CPU s measured (1 network)": seconds,
                     "estimated full CPU min": seconds * scale / 60})
    mnist = sum(r["estimated full CPU min"] for r in rows
                if r["part"] in ("pgd", "aai") and r["table"].startswith("mnist "))
    summary = [{"part": part, "estimated full CPU min": totals[part] / 60} for part in rp.PARTS if part in totals]
    summary.append({"part": "all", "estimated full CPU min": sum(totals.values()) / 60})
    return {"title": "Full reproduce, estimated from measured slices",
            "settings": {"protocol": "FULL (200 steps, 10 rounds, both ISA budgets)", "images per slice": images,
                         "network per table": MEASURED, "threads": 1},
            "tables": {"Per part and table": rows, "Estimated full run (one thread)": summary},
            "notes": [f"MNIST tables (PGD, AAI; every MNIST network, 200 images): about {mnist:.0f} CPU minutes "
                      "against the issue's 20-minute target",
                      "linear extrapolation from the slice: images x networks; a two-process run on 2 idle cores "
                      "could at best halve the wall time"]}
