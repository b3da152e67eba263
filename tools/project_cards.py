"""Ship a project-trained checkpoint: measure it and write its model card.

    python tools/project_cards.py --checkpoint RUN.safetensors --name mnist-smallgap-int-project \
        [--preset cpu] [--trained-by TEXT] [--machine TEXT]
    python tools/project_cards.py --table     # the shipped project cards' numbers, as markdown
    python tools/project_cards.py --markdown NAME ...   # rewrite .md files from the stored cards
    python tools/project_cards.py --retest NAME ...     # measure the re-test of shipped cards again

Measures the model with the evaluation every Train-page run gets
(:func:`interp_core.services.jobs.evaluate_model`: clean accuracy, the authors' PGD at the
dataset's eps grid beside its ``full`` re-test (random-start PGD, then AutoAttack) and the AAI
Kendall tau at two eps, on the paper's 200-image test subset), stores the numbers in the card
(``pgd_accuracy``, ``retested_accuracy``, ``aai_tau``), names the card ``--name`` and writes
``checkpoints/<name>.safetensors`` with the human-readable ``checkpoints/<name>.md``, whose first
lines say where the re-test contradicts the reported numbers.

The recipe command printed in the card is rebuilt from the checkpoint's own training settings
(:func:`interp_core.training.config_to_args`): ``train --preset PRESET`` plus a flag for every
setting that differs from that preset's schedule for the same run length.
"""

from __future__ import annotations

import argparse
import math
import platform
from dataclasses import replace
from pathlib import Path

import torch

from interp_core.data import DatasetNotFound, load_dataset
from interp_core.datasets import eps_text
from interp_core.evaluate import RETESTS, SIGN_WORDS
from interp_core.metrics import accuracy
from interp_core.models import load_checkpoint, save_checkpoint
from interp_core.runtime import configure_threads
from interp_core.services.jobs import evaluate_model, robust_evaluation
from interp_core.training import state_path
from interp_core.training.schedules import TrainConfig, config_to_args

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_MACHINE = f"the project's 2-core {platform.machine()} CPU sandbox, one torch thread"
#: The re-test every card's numbers stand beside (``interp_core.evaluate.RETESTS``).
CARD_RETEST = "full"


def schedule_text(cfg: TrainConfig, n_images: int, total_steps: int) -> str:
    """One line describing a config in steps (see ``TrainConfig.resolve``): batch, epochs, images,
    lr, eps ramp, inner attack, regularizer, initialization."""
    lr = f"lr {cfg.lr:g}" + "".join(f", then {value:g} from step {at:,}" for at, value in sorted(cfg.lr_steps))
    inner = ("no inner attack" if cfg.method == "normal"
             else f"eps {eps_text(cfg.dataset, cfg.eps)} ramped over steps {cfg.eps_ramp[0]:,}-{cfg.eps_ramp[1]:,}, "
                  + (f"{cfg.steps} inner step(s) of {cfg.step_size_eps:g} eps from a random start"
                     if cfg.step_size_eps else f"{cfg.steps} inner steps of {eps_text(cfg.dataset, cfg.step_size)}")
                  + (f", the catastrophic-overfitting check on {cfg.overfit_check} training images"
                     if cfg.overfit_check else ""))
    regularizer = f", regularizer weight {cfg.gamma:g}" if cfg.gamma else ""
    if cfg.gamma and cfg.gamma_start:
        regularizer += f" from step {cfg.gamma_start:,}"
    init = "the authors' initialization" if cfg.init == "authors" else "PyTorch's default initialization"
    activation = "" if cfg.activation == "relu" else f", {cfg.activation} activations"
    return (f"batch {cfg.batch_size}, {cfg.epochs} epochs on the first {n_images:,} `{cfg.train_split}` images "
            f"({total_steps:,} steps), {lr}, {inner}{regularizer}; Adam, {init}{activation}, seed {cfg.seed}.")


def card_markdown(name: str, cfg: TrainConfig, flags: list[str], metrics: dict) -> str:
    """The ``.md`` model card of a project checkpoint: ``cfg`` as trained (its preset the one the
    command starts from), ``flags`` its ``train`` flags, ``metrics`` the card's (see :func:`ship`)."""
    total = int(metrics["total_steps"])
    n_images = cfg.subset or total // cfg.epochs * cfg.batch_size
    command = " ".join(["INTERP_CORE_THREADS=1 python -m interp_core train", *flags, "--source project",
                        f"--out checkpoints/{name}.safetensors"])
    evaluate = (f"python -m interp_core evaluate robust --model {name} --dataset {cfg.dataset} --protocol paper "
                f"--eps {','.join(['0', *metrics['pgd_accuracy']])}")
    retested = metrics["retested_accuracy"]
    rows = [f"| {label} | {metrics['pgd_accuracy'][label]:.3f} | {retested[label]:.3f} |"
            for label in metrics["pgd_accuracy"]]
    taus = [f"| {label} | {tau_text(tau)} | {metrics['aai_kept'][label]} |" for label, tau in metrics["aai_tau"].items()]
    settings = RETESTS[metrics["retest"]]
    return "\n".join([
        f"# {name}", "", *retest_warning(metrics, cfg.dataset),
        f"smallgap{'' if cfg.activation == 'relu' else f' with {cfg.activation} activations'} trained with "
        f"`{cfg.method}` (docs/method.md#training) on {cfg.dataset} by this project on a "
        f"2-core CPU, from the `{cfg.preset}` preset (the command flags every setting that differs from it). It is not "
        f"the authors' network (that is "
        f"`{cfg.dataset}-{cfg.arch}-{cfg.method}-paper` where shipped).", "",
        "## Recipe (one command)", "```", command, "```",
        f"- schedule: {schedule_text(cfg.resolve(total), n_images, total)}",
        f"- trained by: {metrics['trained_by']}",
        f"- training time: {metrics['train_seconds']:.0f} s of training steps ({metrics.get('machine', 'CPU')}).",
        *([f"- overfitting check: its best random-start PGD accuracy was {metrics['overfit_probe_best']:.3f} at "
           f"eps {eps_text(cfg.dataset, cfg.eps)}; the run finished, so it never fell by more than 0.2"]
          if "overfit_probe_best" in metrics else []), "",
        "## Metrics",
        f"Measured by `{evaluate}` on the paper's 200 test images (numpy seed-99 subset); clean errors count "
        "as failures. Reported: the authors' PGD (200 signed steps of 0.01, no random start). Re-tested "
        f"(`{metrics['retest']}`): what is left after that attack and then PGD with a random start on the "
        f"cross-entropy and on the margin ({settings['restarts']} start(s) of {settings['steps']} steps each), then "
        f"Square ({settings['queries']} queries, AutoAttack's attack that uses no gradient), each run on the images "
        "the earlier attacks left standing.", "",
        "| eps | reported (authors' PGD) | re-tested |", "|---|---|---|",
        f"| 0 | {metrics['clean_accuracy']:.3f} | {metrics['clean_accuracy']:.3f} |", *rows, "",
        *([f"Clean accuracy on the whole {cfg.dataset} test set ({metrics['test_n']:,} images): "
           f"{metrics['test_accuracy']:.4f}.", ""] if "test_accuracy" in metrics else []),
        "AAI (attack against interpretability: keep the label, move the top-8 of the CAM; 200 steps of 0.01 "
        "from a random start) Kendall tau between clean and attacked CAM, over the images that kept their "
        "class:", "", "| eps | Kendall tau | images kept |", "|---|---|---|", *taus, ""])


def retest_warning(metrics: dict, dataset: str) -> list[str]:
    """The card's first lines when its re-test contradicts a reported number (more than
    ``CONTRADICTION`` lower), with the masking signs in plain words; [] when nothing is contradicted."""
    labels = metrics["contradicted"]
    if not labels:
        return []
    eps = " / ".join(eps_text(dataset, float(label)) for label in labels)
    reported = " / ".join(f"{metrics['pgd_accuracy'][label]:.3f}" for label in labels)
    retested = " / ".join(f"{metrics['retested_accuracy'][label]:.3f}" for label in labels)
    signs = "".join(f" Masking sign `{sign}`: {SIGN_WORDS[sign]}." for sign in metrics["masking_signs"])
    return [f"> **The re-test contradicts this card at eps {eps}.** The authors' PGD leaves {reported} accuracy there; "
            f"a random start and a stronger attack leave {retested}. Those reported numbers measure how weak the "
            f"attack is, not how robust the network is.{signs}", ""]


def retest_metrics(model, dataset: str) -> dict:
    """The card's re-test fields, measured by :func:`robust_evaluation` with ``CARD_RETEST`` on the
    paper's 200 images: {"retested_accuracy": {eps label: accuracy}, "contradicted": [eps labels],
    "masking_signs", "retest"}."""
    result = robust_evaluation(model, dataset, retest=CARD_RETEST)
    rows = {f"{r['eps']:g}": r for r in result.accuracy if r["eps"] > 0}
    return {"retested_accuracy": {label: r["retested"] for label, r in rows.items()},
            "contradicted": [f"{eps:g}" for eps in result.contradicted],
            "masking_signs": result.masking_signs, "retest": CARD_RETEST}


def ship(checkpoint: Path, name: str, preset: str, trained_by: str, machine: str | None) -> Path:
    """Measure ``checkpoint`` and write ``checkpoints/<name>.safetensors`` and ``.md``."""
    model, card = load_checkpoint(checkpoint, "cpu")
    if not card.metrics.get("finished"):
        raise SystemExit(f"{checkpoint}: the run did not finish (step {card.metrics.get('steps')})")
    cfg = replace(TrainConfig.from_dict(card.hyperparameters), preset=preset)
    flags = config_to_args(cfg, int(card.metrics["total_steps"]))
    result = evaluate_model(model.eval().requires_grad_(False), cfg.dataset, retest=CARD_RETEST)
    state = state_path(checkpoint)
    if cfg.overfit_check and state.is_file():  # the run finished, so the check never saw a collapse
        card.metrics["overfit_probe_best"] = float(torch.load(state, weights_only=True).get("probe_best", 0.0))
    try:  # the whole test set, where it is here: the figure the paper networks' clean accuracy is given on
        test = load_dataset(cfg.dataset, "test")
        card.metrics.update(test_accuracy=accuracy(model, test.images, test.labels), test_n=len(test.labels))
    except DatasetNotFound:
        pass
    label = lambda eps: f"{eps:g}"  # noqa: E731
    card.name, card.source = name, "project"
    card.hyperparameters = {**card.hyperparameters, "preset": preset}
    card.metrics.update({
        "clean_accuracy": result.clean_accuracy,
        "pgd_accuracy": {label(r["eps"]): r["accuracy"] for r in result.accuracy if r["eps"] > 0},
        "retested_accuracy": {label(r["eps"]): r["retested"] for r in result.accuracy if r["eps"] > 0},
        "contradicted": [label(eps) for eps in result.contradicted],
        "masking_signs": result.masking_signs, "retest": CARD_RETEST,
        "aai_tau": {label(r["eps"]): r["kendall_tau"] for r in result.aai},
        "aai_kept": {label(r["eps"]): r["kept"] for r in result.aai},
        "evaluation": f"interp_core.services.jobs.evaluate_model on {result.n} images ({result.subset})",
        "machine": machine or card.metrics.get("machine") or DEFAULT_MACHINE,
    })
    card.description = f"{cfg.method} on {cfg.dataset}, trained by the project with the `{preset}` preset"
    card.metrics["trained_by"] = trained_by
    out = ROOT / "checkpoints" / f"{name}.safetensors"
    save_checkpoint(model, card, out)
    out.with_suffix(".md").write_text(card_markdown(name, cfg, flags, card.metrics))
    return out


def retest(name: str) -> Path:
    """Measure the re-test of the shipped card ``name`` again (``retest_metrics``), store it in the
    card and rewrite its ``.md``; the weights and every other number stay as they are."""
    path = ROOT / "checkpoints" / f"{name}.safetensors"
    model, card = load_checkpoint(path, "cpu")
    card.metrics.update(retest_metrics(model.eval().requires_grad_(False), card.dataset))
    save_checkpoint(model, card, path)
    return rewrite_markdown(name)


def rewrite_markdown(name: str) -> Path:
    """Write ``checkpoints/<name>.md`` again from the shipped card, without measuring anything."""
    path = ROOT / "checkpoints" / f"{name}.safetensors"
    _, card = load_checkpoint(path, "cpu")
    cfg = TrainConfig.from_dict(card.hyperparameters)
    path.with_suffix(".md").write_text(card_markdown(name, cfg, config_to_args(cfg, int(card.metrics["total_steps"])),
                                                     card.metrics))
    return path.with_suffix(".md")


def accuracy_cell(metrics: dict, label: str) -> str:
    """A card's accuracy at eps ``label`` as "reported / re-tested" (three decimals each)."""
    return f"{metrics['pgd_accuracy'][label]:.3f} / {metrics['retested_accuracy'][label]:.3f}"


def tau_text(tau: float) -> str:
    """A Kendall tau to three decimals, or "—" when no image kept its class (tau is then undefined)."""
    return "—" if math.isnan(tau) else f"{tau:.3f}"


def shipped_cards(dataset: str) -> list:
    """The measured cards (``ModelCard``) of the ``*-project`` checkpoints of ``dataset`` shipped in
    checkpoints/."""
    from interp_core.models import available_models

    return [e.card for e in available_models() if e.card.source == "project" and e.card.dataset == dataset
            and e.path.parent == ROOT / "checkpoints" and "aai_tau" in e.card.metrics]


def cards_table(dataset: str) -> str:
    """A markdown table of the shipped ``*-project`` cards of ``dataset`` (a row per method, and per
    activation other than ReLU): clean accuracy, per eps
    the authors' PGD accuracy and its re-test as "reported / re-tested", AAI Kendall tau per eps,
    as stored by :func:`ship`."""
    cards = shipped_cards(dataset)
    if not cards:
        return ""
    eps, taus = list(cards[0].metrics["pgd_accuracy"]), list(cards[0].metrics["aai_tau"])
    show = lambda label: eps_text(dataset, float(label))  # noqa: E731
    lines = [f"| {dataset} | clean | " + " | ".join(map(show, eps)) + " | "
             + " | ".join(f"tau {show(t)}" for t in taus) + " |",
             "|---" * (2 + len(eps) + len(taus)) + "|"]
    for card in sorted(cards, key=lambda c: (c.method, c.activation)):
        m = card.metrics
        label = card.method if card.activation == "relu" else f"{card.method} ({card.activation})"
        lines.append(f"| {label} | {m['clean_accuracy']:.3f} | "
                     + " | ".join(accuracy_cell(m, e) for e in eps) + " | "
                     + " | ".join(tau_text(m['aai_tau'][t]) for t in taus) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", type=Path)
    parser.add_argument("--name")
    parser.add_argument("--table", action="store_true", help="print the shipped project cards' numbers")
    parser.add_argument("--markdown", nargs="+", metavar="NAME", help="rewrite these cards' .md from their stored card")
    parser.add_argument("--retest", nargs="+", metavar="NAME", help="measure these shipped cards' re-test again")
    parser.add_argument("--preset", default="cpu")
    parser.add_argument("--trained-by", default="the command above")
    parser.add_argument("--machine", help="where the training ran (default: what the card says, else this machine)")
    args = parser.parse_args()
    if args.table:
        print("\n\n".join(t for t in (cards_table("mnist"), cards_table("cifar10")) if t))
        return
    if args.markdown:
        for name in args.markdown:
            print(rewrite_markdown(name))
        return
    if args.retest:
        configure_threads(shared=True)
        for name in args.retest:
            print(retest(name), flush=True)
        return
    if not (args.checkpoint and args.name):
        parser.error("--checkpoint and --name are required (or --table)")
    configure_threads(shared=True)
    print(ship(args.checkpoint, args.name, args.preset, args.trained_by, args.machine))


if __name__ == "__main__":
    main()
