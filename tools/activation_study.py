"""Does the interpretation regularizer's robustness depend on the activation? (issue: small training
runs that give real models.) The paper's networks are ReLU networks; later work found gradient-norm
regularizers fail with ReLU and work with smooth activations. This study trains each method of
``METHODS`` on MNIST smallgap at the ``cpu`` preset with softplus (``--activation softplus``) beside
the shipped ReLU models of the same preset, ships each as a project card (``tools/project_cards.py``:
the authors' PGD beside its full re-test, the AAI tau), and tabulates both activations from the
cards in ``results/activation.md``. A method of ``SHORT_EPOCHS`` (IG-Norm) has no shipped ReLU model:
the study trains both activations with fewer epochs, about the compute of Int's 8.

    python tools/activation_study.py --train int2 [--data-dir DIR]   # one softplus model, resumable
    python tools/activation_study.py --train ig-norm --activation relu   # IG-Norm's ReLU model
    python tools/activation_study.py --train all                     # every one not shipped yet
    python tools/activation_study.py --report                        # writes results/activation.md

A run killed halfway resumes from its last checkpoint (``runs/activation/``) on the next call.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from interp_core.datasets import eps_text
from interp_core.models import ACTIVATIONS, read_card
from interp_core.runtime import configure_threads
from interp_core.training import train
from interp_core.training.schedules import make_config

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # tools/ is a package of the project root, also when this file runs as a script
from tools.project_cards import accuracy_cell, ship, tau_text  # noqa: E402
REPORT = ROOT / "results" / "activation.md"
#: Where the study keeps the cards (checkpoint and .md) of models it measured but does not ship: the
#: collapsed softplus IG-Norm network predicts one class, so the app's default image would be refused.
STUDIED = Path("results") / "activation-cards"
#: The methods compared.
METHODS = ("normal", "pgd-at", "int", "int2", "ig-norm")
#: Methods trained for fewer epochs than the preset's 8, both activations by this study: an IG-Norm
#: step costs about 90 normal steps, 10 times an Int step (benchmarks/RESULTS.md, step cost), so its
#: 8 epochs would take about 5 hours of one thread; 1 epoch (1,100 steps) is about Int's compute.
SHORT_EPOCHS = {"ig-norm": 1}
#: The eps the table shows (the cards measure the whole MNIST grid) and the AAI eps.
TABLE_EPS = ("0.1", "0.2", "0.3", "0.35")
TABLE_TAU = ("0.3",)
#: What the table showed when the four softplus models were measured (read from it; rewrite when it changes).
FINDINGS = """\
At this budget the smooth activation does not help any method, and it removes what Int had. Every
adversarially trained softplus network is far less robust than its ReLU twin under both protocols
(at eps 0.3, re-tested: pgd-at 0.880 -> 0.280, int 0.750 -> 0.055, int2 0.790 -> 0.025) and its AAI
tau at eps 0.3 falls from 0.85-0.91 to 0.43-0.51; clean accuracy drops by 0.02-0.04. Int and Int2
do not catch up with PGD-AT with softplus either: the ordering is the ReLU one (pgd-at ahead of int
and int2 at every eps). Int2's large-eps gap under the authors' PGD (0.610 at eps 0.35 with ReLU) is
gone with softplus (0.025), which fits the reading that the gap came from the attack stalling on a
ReLU network at the [0, 1] box, not from robustness. With softplus the authors' PGD and the re-test
part earlier (int2 at eps 0.3: 0.230 / 0.025), so a smooth network is not free of masking either.

IG-Norm at 1 epoch (about Int's compute; the collapsed softplus model is not shipped in checkpoints/,
since the app's default image would be refused by it: its card and checkpoint are in
results/activation-cards/, where this table reads them) gives a weak ReLU network (clean 0.600; at eps 0.3 0.205
under the authors' PGD, 0.175 re-tested) and, with softplus, a collapsed one: 0.130 at every eps
and clean, the share of one class, so it predicts a single class whatever the input and its
"robustness" and AAI tau (0.918) mean nothing. At equal compute the IG-based gradient-norm
regularizer is far behind Int, Int2 and PGD-AT here with either activation; the smooth activation
did not rescue it.

What this does not show: softplus with beta 1 is a large change (a ReLU network's activations shift
by up to log 2); the schedule (the `cpu` preset, schedule s3) was searched for ReLU networks; one
seed; 200 test images; IG-Norm had 1 epoch, not 8 (its step costs about 90 normal steps), and its
gamma (1) was not searched. A softplus beta near 10, or GELU, with a schedule searched for it, is
the next experiment."""


def card_name(method: str, activation: str) -> str:
    """The shipped card of one cell: the ReLU models are the ``cpu``-preset project cards."""
    suffix = "" if activation == "relu" else f"-{activation}"
    return f"mnist-smallgap-{method}{suffix}-project"


def card_path(method: str, activation: str) -> Path:
    """The checkpoint holding the card of ``method`` with ``activation``: a shipped one in checkpoints/,
    or else one kept for this study only in ``STUDIED`` (a model the app should not list)."""
    name = f"{card_name(method, activation)}.safetensors"
    shipped = ROOT / "checkpoints" / name
    return shipped if shipped.is_file() else ROOT / STUDIED / name


def train_model(method: str, activation: str, data_dir: str | None) -> Path:
    """Train (or resume) the ``activation`` model of ``method`` at the ``cpu`` preset (with its
    ``SHORT_EPOCHS``) and ship its card."""
    if activation == "relu" and method not in SHORT_EPOCHS:
        raise SystemExit(f"the ReLU model of {method} is the shipped cpu-preset card {card_name(method, 'relu')}")
    cfg = make_config(method, "mnist", "smallgap", "cpu", activation=activation, eval_n=0,
                      epochs=SHORT_EPOCHS.get(method))
    name = card_name(method, activation)
    out = ROOT / "runs" / "activation" / f"{name}.safetensors"
    print(f"training {out.name} ({'resuming' if out.is_file() else 'from the start'})", flush=True)
    train(cfg, out, resume=out.is_file(), name=name, source="project", data_dir=data_dir)
    return ship(out, name, "cpu", "the command above", None)


def report() -> str:
    """results/activation.md from the shipped cards (a missing softplus card shows as not trained)."""
    cards = {(m, a): read_card(card_path(m, a)) if card_path(m, a).is_file() else None
             for m in METHODS for a in ACTIVATIONS}
    header = ("| method | activation | clean | " + " | ".join(f"eps {eps_text('mnist', float(e))}" for e in TABLE_EPS)
              + " | " + " | ".join(f"AAI tau {t}" for t in TABLE_TAU) + " | training |")
    lines = [header, "|---" * (5 + len(TABLE_EPS) + len(TABLE_TAU) - 1) + "|"]
    for method in METHODS:
        for activation in ACTIVATIONS:
            card = cards[method, activation]
            if card is None:
                lines.append(f"| {method} | {activation} | not trained |" + " |" * (len(TABLE_EPS) + len(TABLE_TAU) + 1))
                continue
            m = card.metrics
            taus = " | ".join(tau_text(m["aai_tau"][t]) for t in TABLE_TAU)
            lines.append(f"| {method} | {activation} | {m['clean_accuracy']:.3f} | "
                         + " | ".join(accuracy_cell(m, e) for e in TABLE_EPS)
                         + f" | {taus} | {m['train_seconds'] / 60:.0f} min{training_note(method)} |")
    return "\n".join(lines)


def training_note(method: str) -> str:
    """What the training cell adds for a method trained with fewer epochs."""
    return f", {SHORT_EPOCHS[method]} epoch{'s' * (SHORT_EPOCHS[method] != 1)}" if method in SHORT_EPOCHS else ""


def page() -> str:
    """results/activation.md: what was trained and measured, the table, what it shows."""
    return "\n".join([
        "# Does Int's robustness depend on the activation?", "",
        "Generated by `python tools/activation_study.py --report` from the shipped cards; each model's card in "
        "`checkpoints/` gives its command (`train --preset cpu ... --activation softplus` for the softplus ones) and "
        "all its numbers.", "",
        "MNIST smallgap, the `cpu` preset (8 epochs of 55,000 images, 10 inner steps of 0.04, the authors' "
        "initialization; docs/method.md#training), trained once with ReLU (the shipped project models) and once "
        "with softplus (beta 1), one thread of the project's 2-core CPU each. IG-Norm (the IG-based gradient-norm "
        "regularizer, gamma 1) is trained with both activations for 1 epoch instead of 8: its step costs about "
        "90 normal steps, so 1 epoch is about the compute of Int's 8 (8 epochs would take some 5 hours here). "
        "Each cell: the authors' PGD (200 "
        "signed steps of 0.01 from the image) / the full re-test (that, then random-start PGD on the cross-entropy "
        "and on the margin, then Square), accuracy on the paper's 200 seed-99 test images; AAI tau: Kendall tau "
        "between clean and attacked CAM over the images that kept their class (—: none did).", "",
        report(), "", FINDINGS, ""])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--train", choices=[*METHODS, "all"], help="train and ship model(s)")
    parser.add_argument("--activation", choices=ACTIVATIONS, default="softplus",
                        help="with --train METHOD: the activation (ReLU only for the methods trained with fewer "
                             "epochs; the others' ReLU models are the shipped cpu-preset cards)")
    parser.add_argument("--report", action="store_true", help="print the table of both activations")
    parser.add_argument("--data-dir")
    args = parser.parse_args()
    if args.report:
        REPORT.write_text(page())
        print(REPORT)
        return
    if not args.train:
        parser.error("--train METHOD|all or --report")
    configure_threads(shared=True)
    if args.train != "all":
        print(train_model(args.train, args.activation, args.data_dir), flush=True)
        return
    for method in METHODS:
        for activation in ACTIVATIONS if method in SHORT_EPOCHS else ("softplus",):
            if not card_path(method, activation).is_file():
                print(train_model(method, activation, args.data_dir), flush=True)


if __name__ == "__main__":
    main()
