"""The reference curves of the Train page: the shipped paper networks (normal, PGD-AT, Int) measured
with the evaluation every run gets (:func:`interp_core.services.jobs.evaluate_model`), stored in
``results/train-references.json`` so the page shows them without recomputing.

    python tools/train_references.py [--dataset mnist,cifar10] [--n 200,50]

One evaluation per (dataset, images, model), written as soon as it is done (the file is replaced
atomically), so an interrupted call keeps what it finished; ``--force`` recomputes what is there.
An evaluation stored before the re-test (no "contradicted") gets its robustness half
(:func:`interp_core.services.jobs.robust_evaluation`) measured anew; its AAI half is kept.
The image counts are those of the presets' automatic evaluations (200; the classroom preset's fewer).
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import torch

from interp_core.models import load_model
from interp_core.models.checkpoint import atomic_write
from interp_core.runtime import configure_threads
from interp_core.services.jobs import REFERENCE_MODELS, REFERENCES, evaluate_model, robust_evaluation


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="mnist,cifar10")
    parser.add_argument("--n", default="200", help="comma-separated image counts")
    parser.add_argument("--force", action="store_true")
    args = parser.parse_args()
    threads = configure_threads(shared=True)
    stored = json.loads(REFERENCES.read_text()) if REFERENCES.is_file() else {}
    stored["about"] = ("Train page references: interp_core.services.jobs.evaluate_model on the shipped paper "
                       "networks; regenerate with `python tools/train_references.py`.")
    evaluations = stored.setdefault("evaluations", {})
    for dataset in args.dataset.split(","):
        for n in (int(v) for v in args.n.split(",")):
            for name in REFERENCE_MODELS[dataset]:
                done = evaluations.setdefault(dataset, {}).setdefault(str(n), {})
                stored_before = done.get(name, {}) if not args.force else {}
                if "contradicted" in stored_before:
                    continue
                model, card = load_model(name, "cpu")
                started = time.time()
                measure = robust_evaluation if "aai" in stored_before else evaluate_model
                result = measure(model.requires_grad_(False), dataset, n)
                done[name] = {**stored_before, "model": name, "method": card.method, **result.to_dict(),
                              "machine": f"{platform.machine()} CPU, {threads} torch thread(s), "
                                         f"torch {torch.__version__}", "wall_seconds": round(time.time() - started, 1)}
                with atomic_write(REFERENCES) as tmp:
                    with open(tmp, "w") as f:
                        json.dump(stored, f, indent=1, sort_keys=True)
                        f.write("\n")


if __name__ == "__main__":
    main()
