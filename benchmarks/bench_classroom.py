"""The Train page's classroom compare, end to end: two background jobs of the ``classroom`` preset
(MNIST training set, the page's defaults) started together through ``interp_core.services.jobs``,
as the page's Compare button starts them, timed from the start to both automatic evaluations
done. Each trained model's clean accuracy is then measured on the whole MNIST test set, beside the
evaluation's own numbers (its first 30 paper-subset images). Wall time: the two jobs share the
machine's cores with whatever else runs (the load average is recorded).
"""

from __future__ import annotations

import os
import tempfile
import time

#: The compares timed: the page's default (normal vs int) and the two adversarial families.
PAIRS = (("normal", "int"), ("pgd-at", "int2"))
#: The Train page's request for the classroom preset on the training set (its default fields).
CONFIG = {"dataset": "mnist", "arch": "smallgap", "preset": "classroom", "train_split": "train", "eval_n": 0}


def _compare(jobs, methods: tuple[str, str], test) -> list[dict]:
    from interp_core.metrics import accuracy
    from interp_core.models import load_checkpoint

    started = time.perf_counter()
    ids = jobs.start_compare(CONFIG, methods)
    while True:
        states = [jobs.job_status(i) for i in ids]
        if all(s["state"] not in jobs.ACTIVE for s in states):
            break
        time.sleep(1)
    wall = time.perf_counter() - started
    rows = []
    for method, status in zip(methods, states):
        if status["state"] != "finished" or status["evaluation"] is None:
            raise RuntimeError(f"the {method} job ended {status['state']}: {status['message']}")
        model, _ = load_checkpoint(status["checkpoint"])
        evaluation = status["evaluation"]
        at = {f"{r['eps']:g}": r for r in evaluation["accuracy"]}
        tau = {f"{r['eps']:g}": r["kendall_tau"] for r in evaluation["aai"]}
        rows.append({"compare": " vs ".join(methods), "method": method, "wall s (both, evaluation included)": wall,
                     "train s": status["metrics"]["train_seconds"],
                     "clean (test set, 10,000)": accuracy(model, test.images, test.labels),
                     f"clean ({evaluation['n']} eval images)": evaluation["clean_accuracy"],
                     "eps 0.1 reported": at["0.1"]["accuracy"], "eps 0.1 re-tested": at["0.1"]["retested"],
                     "AAI tau 0.1": tau["0.1"]})
    return rows


def run(quick: bool) -> dict:
    from interp_core.data import DatasetNotFound, load_dataset

    try:
        test = load_dataset("mnist", "test")
        load_dataset("mnist", "train", n=1)
    except DatasetNotFound as err:
        return {"title": "Classroom compare (Train page)", "settings": {}, "tables": {},
                "notes": [f"not measured: the MNIST training set is not here ({err})"]}
    previous = os.environ.get("INTERP_CORE_RUNS_DIR")
    rows = []
    with tempfile.TemporaryDirectory() as runs:
        os.environ["INTERP_CORE_RUNS_DIR"] = runs
        try:
            from interp_core.services import jobs

            for pair in PAIRS[:1] if quick else PAIRS:
                rows += _compare(jobs, pair, test)
        finally:
            if previous is None:
                os.environ.pop("INTERP_CORE_RUNS_DIR", None)
            else:
                os.environ["INTERP_CORE_RUNS_DIR"] = previous
    from interp_core.training import make_config

    cfg = make_config("int", "mnist", "smallgap", "classroom")
    return {"title": "Classroom compare (Train page)",
            "settings": {"preset": "classroom", "epochs": cfg.epochs, "images": cfg.subset, "batch": cfg.batch_size,
                         "training eps": cfg.eps, "inner attack": f"{cfg.steps} step of {cfg.step_size_eps:g} eps",
                         "jobs": "two at once, one torch thread each", "load_average_1min_after": round(os.getloadavg()[0], 2)},
            "tables": {"Two runs started together, as the Compare button does": rows},
            "notes": ["target: >= 0.9 clean accuracy for both runs of a compare within 2 minutes"]}
