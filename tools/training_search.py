"""The CPU training-recipe search behind the ``cpu`` preset (issue: project-trained models that
carry the paper's finding). One call trains one (schedule, method) pair, resumably, then measures
it exactly as the checks do: the authors' PGD protocol on the paper's 200-image MNIST subset at
eps 0, 0.3, 0.35, 0.4 and the AAI Kendall tau at eps 0.3. Each finished pair appends one JSON line
to ``results/training-search.jsonl``; ``--report`` turns that file into
``results/training-search.md``.

    python tools/training_search.py --schedule s1 --method pgd-at [--data-dir DIR]
    python tools/training_search.py --schedule s3,s4 --method int,int2 --workers 4
    python tools/training_search.py --report

Several schedules and methods make one run per pair; ``--workers N`` (a local Ray) or ``--address``
(a Ray cluster sharing this checkout's paths) trains them at once, one task and one torch thread
each (``interp_core.parallel``), and each row is logged as its run finishes.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch

from interp_core.evaluate import evaluation_set
from interp_core.evaluate.interpretation import aai_evaluation
from interp_core.evaluate.robust import robust_accuracy
from interp_core.parallel import run_tasks
from interp_core.runtime import configure_threads
from interp_core.training import TrainConfig, train

ROOT = Path(__file__).resolve().parents[1]
LOG = ROOT / "results" / "training-search.jsonl"
REPORT = ROOT / "results" / "training-search.md"
EVAL_EPS = [0.0, 0.3, 0.35, 0.4]
AAI_EPS = [0.3]

#: Schedules tried, as TrainConfig settings for MNIST smallgap (method added per run); s3 is the `cpu` preset.
SCHEDULES: dict[str, dict] = {
    "s1": dict(epochs=5, batch_size=50, lr=1e-3, lr_steps=[[4400, 1e-4]], eps=0.3, eps_ramp=[300, 2500],
               steps=10, step_size=0.04, init="authors"),
}
SCHEDULES["s2"] = dict(SCHEDULES["s1"], gamma=0.05)
SCHEDULES["s3"] = dict(SCHEDULES["s1"], epochs=8, lr_steps=[[7000, 1e-4]])
SCHEDULES["s4"] = dict(SCHEDULES["s3"], steps=20, step_size=0.02)
#: Why each schedule was tried.
PURPOSE = {"s1": "the authors' initialization and the full training set at a CPU budget",
           "s2": "s1 with five times the Int weight (gamma 0.05), for Int's accuracy at eps 0.35 / 0.4",
           "s3": "s1 lengthened to 8 epochs (8,800 steps, lr 1e-4 for the last 1,800), for PGD-AT at eps 0.3",
           "s4": "s3 with a finer inner attack (20 steps of 0.02, towards the authors' 40 of 0.01; about twice the "
                 "step cost), for Int's accuracy at eps 0.35 / 0.4"}
#: What each finished schedule showed (read from the table above).
FINDINGS = {"s1": "meets the clean, tau and time targets; Int2 shows the large-eps gap under the authors' PGD (not under the re-test), Int does not; PGD-AT "
                  "is 0.02 short at eps 0.3",
            "s2": "five times the Int weight moves Int towards interpretation robustness (tau 0.975) at a large "
                  "cost in accuracy (0.61 clean) and brings no large-eps gap: the weight is not the lever",
            "s3": "three more epochs bring PGD-AT to 0.905 at eps 0.3 (target 0.85) at 0.975 clean in 26 minutes "
                  "of one thread, and keep Int2's gap under the authors' PGD (0.61 / 0.465 at eps 0.35 / 0.4; 0 / 0 re-tested) and Int's higher tau; Int "
                  "still has no gap. Now the `cpu` preset",
            "s4": "twice the inner steps at half the size leave Int where s3 had it (0.945 clean, 0.795 at eps 0.3, "
                  "0 at eps 0.35 / 0.4, tau 0.908) at twice the time (60 minutes): the step count of Int's inner "
                  "attack is not the lever either"}


def run(schedule: str, method: str, data_dir: str | None) -> dict:
    """Train (or resume) one (schedule, method) pair into runs/search/ and measure it: its log row."""
    settings = dict(SCHEDULES[schedule], method=method, dataset="mnist", arch="smallgap",
                    preset=f"search-{schedule}", eval_n=0)
    cfg = TrainConfig.from_dict(settings)
    out = ROOT / "runs" / "search" / schedule / f"{method}.safetensors"
    started = time.time()
    result = train(cfg, out, resume=out.is_file(), name=f"search-{schedule}-{method}", source="project",
                   data_dir=data_dir)
    model = result_model(out)
    data, subset = evaluation_set("mnist", "test", n=200, subset="paper", data_dir=data_dir)
    robust = robust_accuracy(model, data.images, data.labels, EVAL_EPS, protocol="paper", subset=subset)
    aai = aai_evaluation(model, data.images, data.labels, AAI_EPS, subset=subset)
    row = {"schedule": schedule, "method": method, "settings": SCHEDULES[schedule],
           "train_seconds": result.metrics["train_seconds"], "steps": result.metrics["steps"],
           "wall_seconds_this_call": round(time.time() - started, 1),
           "accuracy": {f"{r['eps']:g}": r["accuracy"] for r in robust.results},
           "aai_tau": {f"{r['eps']:g}": r["kendall_tau"] for r in aai.results},
           "aai_kept": {f"{r['eps']:g}": r["kept"] for r in aai.results},
           "machine": f"{platform.machine()}, {torch.get_num_threads()} torch thread(s)",
           "date": time.strftime("%Y-%m-%d")}
    return row


def log_row(index: int, row: dict, seconds: float) -> None:
    """Append a finished run's row to the log and print it (``run_tasks``'s callback)."""
    with LOG.open("a") as f:
        f.write(json.dumps(row) + "\n")
    print(json.dumps(row), flush=True)


def result_model(path: Path):
    from interp_core.models import load_checkpoint

    model, _ = load_checkpoint(path, "cpu")
    return model.eval()


def report() -> str:
    rows = [json.loads(line) for line in LOG.read_text().splitlines() if line.strip()] if LOG.exists() else []
    lines = ["# Training search: CPU recipes for MNIST smallgap", "",
             "Generated by `python tools/training_search.py --report` from `training-search.jsonl`. Each row: one",
             "model trained on this project's 2-core CPU machine (one torch thread), evaluated with the",
             "authors' PGD (200 steps of 0.01, no random start) on the paper's 200-image MNIST test subset,",
             "and the AAI Kendall tau (top-8 CAM attack, 200 steps) at eps 0.3 over images that kept their class.",
             "", "| schedule | method | train min | clean | eps 0.3 | eps 0.35 | eps 0.4 | AAI tau 0.3 |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        a = r["accuracy"]
        lines.append(f"| {r['schedule']} | {r['method']} | {r['train_seconds'] / 60:.1f} | {a['0']:.3f} | "
                     f"{a['0.3']:.3f} | {a['0.35']:.3f} | {a['0.4']:.3f} | {r['aai_tau']['0.3']:.3f} |")
    from project_cards import cards_table, shipped_cards  # a sibling script: tools/ is sys.path[0] here

    cards = {c.method: c.metrics for c in shipped_cards("mnist")}
    int2, pgd = cards["int2"], cards["pgd-at"]
    lines += ["", "Under the re-test the large-eps gap goes. The shipped s3 runs' model cards put the re-test beside",
              "the authors' PGD (full re-test, on what the authors' attack left standing: PGD with a random start",
              "on the cross-entropy and on the margin, 100 steps each, then Square with 1000 queries; 200 images):",
              f"s3 int2 reports {int2['pgd_accuracy']['0.35']:.3f} / {int2['pgd_accuracy']['0.4']:.3f} at eps 0.35 / "
              f"0.4 and keeps {int2['retested_accuracy']['0.35']:.3f} / {int2['retested_accuracy']['0.4']:.3f};",
              f"pgd-at keeps {pgd['retested_accuracy']['0.35']:.3f} / {pgd['retested_accuracy']['0.4']:.3f}. At eps 0.3 "
              f"pgd-at leads under both ({pgd['pgd_accuracy']['0.3']:.3f} / {pgd['retested_accuracy']['0.3']:.3f}, "
              f"int2 {int2['pgd_accuracy']['0.3']:.3f} / {int2['retested_accuracy']['0.3']:.3f}).",
              "The finding as the paper states it is reproduced under the paper's protocol; it is not robustness:",
              "the authors' attack starts at the image and stalls at the [0, 1] box (the app's Random start page",
              "shows it on one image).",
              "Reported / re-tested, from the cards (`python tools/project_cards.py --table`):", "",
              cards_table("mnist"), "",
              "An earlier check agrees (`evaluate robust --protocol strong --eps 0.35 --n 50`: the authors' PGD, then",
              "5 random-start PGD runs on the cross-entropy and on the margin, then AutoAttack; first 50 paper-subset",
              "images, 2 torch threads, 2026-11-29): s1 int2 0.58 -> 0.00; the authors' int2 network 0.54 -> 0.00,",
              "their int network 0.22 -> 0.00, their PGD-AT 0.00.",
              "", "Wall time: 'train min' is the trainer's own clock on a machine shared with other work (load",
              "average 5 to 18 on 2 cores during the s1 runs), so it overstates the cost. On the idle machine, one",
              "thread, batch 50, 10 inner steps, one step measured 0.23 s (pgd-at) and 0.26 s (int): about 21",
              "and 24 minutes for s1's 5,500 steps.",
              "", "Targets (issue: project-trained models that carry the paper's finding): pgd-at clean >= 0.95 and",
              "eps 0.3 >= 0.85; int and int2 clean >= 0.92 and at eps 0.35 and 0.4 at least 0.10 above pgd-at;",
              "AAI tau at 0.3: int >= pgd-at; at most 45 minutes of wall clock per model.", "",
              "Before the search, the `cpu` preset (3 epochs of 10,000 images, 10 inner steps of 0.04,",
              "lr 1e-3, 600 steps) gave, per the model cards of that time: pgd-at 0.71 clean, 0.275 / 0.055 / 0.005",
              "at eps 0.3 / 0.35 / 0.4; int 0.84, 0.16 / 0.01 / 0.005; int2 0.845, 0.175 / 0.01 / 0.",
              "s3 is now the `cpu` preset for MNIST; the shipped pgd-at, int and int2 `*-project` checkpoints are",
              "its runs, normal and trades are trained with `train --preset cpu` (results/README.md).",
              "", "## Schedules", ""]
    for name, settings in SCHEDULES.items():
        lines.append(f"- `{name}` ({PURPOSE[name]}): `{json.dumps(settings)}`"
                     + (f". Found: {FINDINGS[name]}." if name in FINDINGS else ""))
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--schedule", help=f"comma-separated, of {', '.join(SCHEDULES)}")
    parser.add_argument("--method", help="comma-separated training methods")
    parser.add_argument("--data-dir")
    parser.add_argument("--workers", type=int, default=1, help="runs at once on a local Ray (default 1: no Ray)")
    parser.add_argument("--address", help="run on the Ray cluster at host:port, ray://host:port or auto")
    parser.add_argument("--report", action="store_true")
    args = parser.parse_args()
    configure_threads(shared=True)
    if args.schedule and args.method:
        schedules, methods = args.schedule.split(","), args.method.split(",")
        unknown = sorted(set(schedules) - set(SCHEDULES))
        if unknown:
            parser.error(f"unknown schedules {unknown}; known: {', '.join(SCHEDULES)}")
        tasks = [(run, (schedule, method, args.data_dir)) for schedule in schedules for method in methods]
        run_tasks(tasks, log_row, args.workers, args.address)
    REPORT.write_text(report())


if __name__ == "__main__":
    main()
