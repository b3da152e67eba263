"""``evaluate robust|aai|isa|bound|uar`` and ``reproduce`` (docs/method.md#evaluation).

JSON shapes (``--json``: the last stdout line):
- robust: {"protocol": {...}, "n", "results": [{"eps", "accuracy", "attacks"?}], "per_image", "warnings",
  "masking_signs", ...}
- aai:    {"protocol": {...}, "n", "results": [{"eps", "kendall_tau", "topk_intersection", "kept"}], ...}
- isa:    {"protocol": {...}, "n", "images": [...], "curves": [{"measure", "eps_min", "bound", "points": [...],
          "summary": [...]}], "findings": {"raw": {...}, "range": {...}}, ...}
- bound:  {"n", "attempted", "violations", "points": [{"half_margin", "d2", "index", "target", "eps"}], ...}
  (d2 on the CAM / (h w) scale)
- uar:    {"protocol": {...}, "n", "clean_accuracy", "results": [{"attack", "eps", "accuracy", "target_rate"}], ...}
- reproduce: {"out", "settings", "workers", "address", "seconds", "parts": {name: {"seconds", "unit_seconds",
  "files"}}, "warnings"}
Every result also carries "model", "dataset", "subset" (which images) and "seconds".
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

from interp_core.cli.common import CLIError, add_common, emit, model_for_dataset, number
from interp_core.attacks import ISA_BUDGETS, ISA_EXPLAINERS, UAR_ATTACKS
from interp_core.datasets import DATASETS
from interp_core.evaluate import SUBSETS, TARGETS, evaluation_set, resolve_targets
from interp_core.evaluate.reproduce import PARTS
from interp_core.evaluate import RETESTS
from interp_core.interpret import EXPLAINERS, IG_FORMS
from interp_core.metrics import DISTANCES, MEASURES
from interp_core.runtime import configure_threads, resolve_device

ROBUST_HELP = ('{"protocol": {name, attack, steps, step_size, random_start, restarts, ..., "retest": {...}}, '
               '"n": N, "results": [{"eps": e, "accuracy": a, "attacks": {attack: accuracy left after it and every '
               'attack before it} (strong only), "retested": a (paper with a re-test), "retest_attacks": {...}}], '
               '"per_image": [[robust per image] per eps], "warnings": [...], '
               '"masking_signs": [names of the gradient-masking signs that fired], '
               '"contradicted": [eps where the re-test takes more than 0.05 off the reported accuracy]}')


def parse_floats(text: str) -> list[float]:
    """'0,2/255,0.1' -> [0.0, 0.00784..., 0.1]."""
    try:
        return [number(part) for part in text.split(",") if part.strip()]
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers like 0,2/255,0.1: {err}") from None


class RenamedFlag(argparse.Action):
    """An old flag kept as an alias of its new name: stores the value and warns on stderr."""

    def __call__(self, parser, namespace, values, option_string=None):
        new = "--" + self.dest.replace("_", "-")
        print(f"warning: {option_string} is renamed {new}; the old name will go away", file=sys.stderr)
        setattr(namespace, self.dest, values)


def register(commands) -> None:
    evaluate = commands.add_parser("evaluate", help="robust accuracy, AAI, ISA and the 2-class bound")
    sub = evaluate.add_subparsers(dest="evaluation", required=True)

    def common(name: str, help_text: str, json_shape: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=f"{help_text}. --json prints {json_shape}")
        add_common(p)
        p.add_argument("--subset", default="paper", choices=SUBSETS,
                       help="paper: the authors' seed-99 subset (first N, default 200); tradeoff: their ISA "
                            "figure's images (seed 52, positions 37-41; --split test); isa: their CAM ISA statistics "
                            "(seed 123); first: the first N images")
        p.add_argument("--out", default=None, help="also write the result as JSON into this folder")
        p.add_argument("--batch-size", type=int, default=100)
        return p

    p = common("robust", "robust accuracy per eps", ROBUST_HELP)
    p.add_argument("--protocol", default="paper", choices=["paper", "strong"],
                   help="paper: the authors' PGD; strong: + random-start restarts, margin PGD, AutoAttack, each "
                        "stopping on an image at its first success")
    p.add_argument("--eps", type=parse_floats, default=None,
                   help="e.g. 0,0.1,0.3 or 0,2/255,8/255 (default: the paper's grid)")
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--step-size", type=float, default=0.01)
    p.add_argument("--restarts", type=int, default=5, help="strong: random restarts per extra PGD")
    p.add_argument("--no-autoattack", action="store_true", help="strong: skip AutoAttack (slow on a CPU)")
    p.add_argument("--retest", default="full", choices=[*RETESTS, "none"],
                   help="paper: the re-test printed beside each reported number (random-start PGD on the "
                        "cross-entropy and the margin, then Square; "
                        + "; ".join(f"{name}: {r['steps']} steps, {r['queries']} queries" for name, r in RETESTS.items())
                        + "; none: the authors' PGD alone). AutoAttack itself: --protocol strong")
    p.set_defaults(run=run_robust)

    p = common("aai", "AAI top-k attack on an interpretation map: Kendall tau between clean and attacked maps",
               '{"protocol": {...}, "n": N, "results": [{"eps", "kendall_tau", "topk_intersection", "kept"}]}')
    p.add_argument("--eps", type=parse_floats, default=None, help="default: 0.1,0.2,0.3 (MNIST), 2,4,8/255 (CIFAR)")
    p.add_argument("--k", type=int, default=8)
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--step-size", type=float, default=0.01)
    p.add_argument("--seed", type=int, default=0, help="seed of the random start")
    p.add_argument("--explainer", default="cam", choices=sorted(EXPLAINERS))
    add_ig_options(p)
    p.set_defaults(run=run_aai)

    p = common("isa", "ISA trade-off curves (discrepancy vs eps) per discrepancy measure",
               '{"protocol": {...}, "n": N, "subset", "images": [{"image", "label", "target"}], "curves": '
               '[{"measure", "eps_min": [...], "bound": [...], "skipped", "points": [{"image", "multiplier", '
               '"gamma", "eps", "linf", "raw", "range", "envelope_raw", "envelope_range", "raw_1class", '
               '"range_1class", ... per measure}], "summary": [{"multiplier", "successes", "images", "mean_linf", '
               '"mean_raw", "mean_range", "mean_bound"}]}], "findings": {"raw", "range"}, "model", "dataset", '
               '"seconds"}')
    p.add_argument("--measures", default="1class,2class", help=f"comma-separated, of {MEASURES}")
    p.add_argument("--distance", default="l1", choices=DISTANCES,
                   help="discrepancy distance the attack minimizes (reports use l1, or l2 for l2/sq_l2)")
    p.add_argument("--norm", dest="distance", choices=DISTANCES, action=RenamedFlag, help=argparse.SUPPRESS)
    p.add_argument("--explainer", default="cam", choices=list(ISA_EXPLAINERS))
    add_ig_options(p)
    p.add_argument("--multipliers", type=parse_floats, default=[1.0, 1.5, 2.0, 3.0, 4.0])
    add_target_and_budget_options(p, "ISA")
    p.add_argument("--rounds", type=int, default=10, help="bisection rounds of each search")
    p.set_defaults(run=run_isa)

    p = common("bound", "tightness of the 2-class bound under minimum-eps targeted attacks",
               '{"n": N, "attempted": M, "violations": V, "points": [{"half_margin", "d2", "index", "target", '
               '"eps"}]} with d2 = D2 of CAM / (h w)')
    add_target_and_budget_options(p, "minimum-eps attack")
    p.add_argument("--rounds", type=int, default=10)
    p.set_defaults(run=run_bound)

    p = common("uar", "accuracy under the unforeseen attacks (fog, gabor, snow, JPEG), targeted at random wrong classes",
               '{"protocol": {...}, "n": N, "clean_accuracy": a, "results": [{"attack", "eps", "accuracy", '
               '"target_rate", "seconds"}]}')
    p.add_argument("--attacks", default=",".join(UAR_ATTACKS),
                   help=f"comma-separated subset of {','.join(UAR_ATTACKS)} "
                        "(budgets: the dataset's record, DatasetInfo.uar_budgets; the authors' on CIFAR-10)")
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--seed", type=int, default=99, help="numpy seed of the target stream and seed of the random starts")
    p.set_defaults(run=run_uar)

    p = commands.add_parser(
        "reproduce", help="the paper's tables and figures on its networks (CSV, markdown, plotly HTML/PNG)",
        description="Regenerates the PGD accuracy tables, AAI Kendall-tau tables, the bound scatter, the ISA "
                    "trade-off (MNIST and CIFAR-10 smallgap, the authors' and the fine step budget) and the UAR "
                    "table for the networks in ../shared/paper-networks. The full run takes about 8 hours of one CPU "
                    "thread (estimated by python -m benchmarks reproduce); --quick "
                    "runs a few networks on a few images with fewer steps. --json prints "
                    '{"out", "settings", "workers", "address", "seconds", "parts": {name: {"seconds", "unit_seconds", '
                    '"files"}}, "warnings"}. --workers N or --address spread the units over Ray workers')
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--quick", action="store_true", help="few networks, images, steps and multipliers (minutes)")
    p.add_argument("--resume", action="store_true",
                   help="continue a stopped run in --out (serial or on workers): units it finished (out/partial/) are "
                        "not measured again")
    p.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated subset of {','.join(PARTS)}")
    p.add_argument("--device", default="auto")
    p.add_argument("--workers", type=int, default=1,
                   help="measure the units (a network of a table, a bound network, an ISA network and budget) on "
                        "a local Ray of this many processes, one torch thread each (default 1: one after another "
                        "here, no Ray)")
    p.add_argument("--address", default=None,
                   help="measure the units on the running Ray cluster at host:port, ray://host:port or auto; its "
                        "nodes need this checkout and ../shared at the same paths")
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=run_reproduce)


def add_target_and_budget_options(p: argparse.ArgumentParser, attack: str) -> None:
    """--targets, --seed and the step budget (--budget, --steps, --step-scale) of ``attack``: the
    options ISA and the bound's minimum-eps search share."""
    p.add_argument("--targets", default="authors", choices=TARGETS,
                   help="authors: the authors' numpy target stream of the --subset image set (image by image as "
                        "their code); random: a seeded random wrong class; runner-up: the clean runner-up class")
    p.add_argument("--seed", type=int, default=0, help="seed of --targets random")
    p.add_argument("--budget", default="authors", choices=sorted(ISA_BUDGETS),
                   help=f"{attack} step budget: authors = 10 soft-sign steps of 0.2 eps, fine = 100 steps of 0.02 eps")
    p.add_argument("--steps", type=int, default=None, help="override the budget's steps")
    p.add_argument("--step-scale", type=float, default=None, help="override the budget's step (share of eps)")


def add_ig_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--ig-form", default="authors", choices=IG_FORMS,
                   help="IG map (with --explainer ig): authors = every channel, softplus (beta 1) copy to attack and "
                        "report; display = summed over channels, as the app shows it")
    p.add_argument("--ig-steps", type=int, default=100, help="IG Riemann steps (the attack differentiates through them)")


def _explainer_options(args) -> dict:
    return {"steps": args.ig_steps, "form": args.ig_form} if args.explainer == "ig" else {}


def _budget(args) -> tuple[int, float]:
    """(steps, step_scale) of --budget with --steps / --step-scale overrides."""
    budget = ISA_BUDGETS[args.budget]
    return (budget["steps"] if args.steps is None else args.steps,
            budget["step_scale"] if args.step_scale is None else args.step_scale)


def _targets(args, model, x, y):
    """--targets resolved for the loaded images: a tensor and the words that name it."""
    if args.targets == "authors" and args.split not in ("test", "demo"):
        raise ValueError("the authors' targets follow their image sets of the test set; use --split test or demo, "
                         "or --targets random / runner-up")
    target = resolve_targets(args.targets, args.subset, model, x, y, args.seed)
    label = {"authors": f"authors' stream of the {args.subset} set", "random": f"random, seed {args.seed}",
             "runner-up": "runner-up"}[args.targets]
    return target, label


class _Bar:
    """tqdm on stderr, driven by progress(done, total) callbacks."""

    def __init__(self, label: str):
        from tqdm import tqdm

        self.bar = tqdm(total=1, desc=label, file=sys.stderr, leave=False, dynamic_ncols=True)

    def __call__(self, done: int, total: int) -> None:
        self.bar.total = total
        self.bar.n = done
        self.bar.refresh()

    def close(self) -> None:
        self.bar.close()


def _setup(args):
    model, card, device = model_for_dataset(args)
    data, what = evaluation_set(args.dataset, args.split, n=args.n, subset=args.subset, data_dir=args.data_dir)
    return model, card, data.images.to(device), data.labels.to(device), what


def _json_safe(value):
    """NaN (no image left to average) -> null, so that --json prints strict JSON."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def _finish(args, name: str, result: dict, text: str) -> None:
    result = _json_safe(result)
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / f"{name}_{result['model']}.json").write_text(json.dumps(result, indent=2))
    emit(args, result, text)


def run_robust(args) -> None:
    from interp_core.evaluate import robust_accuracy

    model, card, x, y, what = _setup(args)
    eps = args.eps if args.eps is not None else list(DATASETS[args.dataset].paper_eps)
    retest = None if args.protocol == "strong" or args.retest == "none" else args.retest
    bar = _Bar(f"robust ({args.protocol}" + (f", {retest} re-test)" if retest else ")"))
    try:
        result = robust_accuracy(model, x, y, eps, args.protocol, steps=args.steps, step_size=args.step_size,
                                 restarts=args.restarts, autoattack=not args.no_autoattack, retest=retest,
                                 batch_size=args.batch_size, subset=what, progress=bar)
    finally:
        bar.close()
    contradicted = [r["eps"] for r in result.contradictions()]
    out = {**result.to_dict(), "model": card.name, "dataset": args.dataset, "contradicted": contradicted}
    _finish(args, "robust", out, robustness_text(card.name, result, what))


def robustness_text(name: str, result, what: str) -> str:
    """The lines ``evaluate robust`` prints: a reported / re-tested table when there is a re-test,
    what contradicts what, and each masking sign with its meaning in plain words."""
    from interp_core.evaluate import SIGN_WORDS

    protocol = result.protocol
    lines = [f"{name}, {protocol['name']} protocol, {what}"]
    retest = protocol.get("retest")
    if retest:
        lines.append(f"  reported: the authors' PGD ({protocol['steps']} signed steps of {protocol['step_size']:g} "
                     f"from x, final iterate); re-tested: that, then {', '.join(retest['attacks'])} "
                     f"({retest['steps']} steps each), on what the earlier attacks left standing")
        lines.append(f"  {'eps':>8} {'reported':>9} {'re-tested':>9}")
        lines += [f"  {r['eps']:>8.4g} {r['accuracy']:>9.3f} {r['retested']:>9.3f}"
                  + ("  " + " ".join(f"{k}={v:.3f}" for k, v in r["retest_attacks"].items())
                     if "retest_attacks" in r else "") for r in result.results]
    else:
        lines += [f"  eps {r['eps']:.4g}: robust accuracy {r['accuracy']:.4f}"
                  + ("  " + " ".join(f"{k}={v:.3f}" for k, v in r["attacks"].items()) if "attacks" in r else "")
                  for r in result.results]
    for r in result.contradictions():
        lines.append(f"contradicted: at eps {r['eps']:.4g} the re-test leaves {r['retested']:.3f} of the reported "
                     f"{r['accuracy']:.3f}: the reported number overstates robustness")
    lines += [f"warning: {w}" for w in result.warnings]
    lines += [f"in plain words, {sign}: {SIGN_WORDS[sign]}" for sign in result.masking_signs]
    return "\n".join(lines + [f"({result.seconds:.1f} s)"])


def run_aai(args) -> None:
    from interp_core.evaluate import aai_evaluation

    model, card, x, y, what = _setup(args)
    eps = args.eps if args.eps is not None else list(DATASETS[args.dataset].aai_eps)
    bar = _Bar("aai")
    try:
        result = aai_evaluation(model, x, y, eps, k=args.k, steps=args.steps, step_size=args.step_size,
                                seed=args.seed, explainer=args.explainer, explainer_options=_explainer_options(args),
                                batch_size=args.batch_size, subset=what, progress=bar)
    finally:
        bar.close()
    out = {**result.to_dict(), "model": card.name, "dataset": args.dataset}
    lines = [f"{card.name}, AAI top-{args.k} on {args.explainer}, {args.steps} steps, {what}"]
    lines += [f"  eps {r['eps']:.4g}: Kendall tau {r['kendall_tau']:.4f}, top-{args.k} intersection "
              f"{r['topk_intersection']:.4f} over {r['kept']} images that kept their class" for r in result.results]
    _finish(args, "aai", out, "\n".join(lines))


def run_isa(args) -> None:
    from interp_core.evaluate import isa_evaluation, tradeoff_findings, tradeoff_text

    measures = tuple(m.strip() for m in args.measures.split(",") if m.strip())
    if not measures or set(measures) - set(MEASURES):
        raise ValueError(f"--measures takes a comma-separated subset of {MEASURES}, got {args.measures!r}")
    model, card, x, y, what = _setup(args)
    target, label = _targets(args, model, x, y)
    steps, step_scale = _budget(args)
    bar = _Bar("isa")
    try:
        result = isa_evaluation(model, x, y, measures, args.distance, args.explainer, tuple(args.multipliers),
                                target, args.rounds, _explainer_options(args), steps, step_scale, subset=what,
                                targets_label=label, progress=bar)
    finally:
        bar.close()
    findings = {scale: tradeoff_findings(result, scale) for scale in ("raw", "range")}
    out = {**result.to_dict(), "findings": findings, "model": card.name, "dataset": args.dataset}
    lines = [f"{card.name}, ISA ({args.explainer}, {args.distance}), {steps} steps of {step_scale:g} eps, "
             f"targets: {label}, {what}"]
    for curve in result.curves:
        lines.append(f"  attack measure {curve['measure']}:")
        lines += [f"    x{s['multiplier']:g} eps_min: {s['images']} images ({s['successes']} new successes), mean linf "
                  f"{s['mean_linf']:.4f}, mean raw D {s['mean_raw']:.4g}, mean range-normalized D {s['mean_range']:.4f}"
                  + (f", mean bound {s['mean_bound']:.4g}" if s["mean_bound"] is not None else "")
                  for s in curve["summary"]]
    lines += ["", tradeoff_text(result, "raw"), tradeoff_text(result, "range")]
    _finish(args, "isa", out, "\n".join(lines))


def run_bound(args) -> None:
    from interp_core.evaluate import bound_evaluation

    model, card, x, y, what = _setup(args)
    target, label = _targets(args, model, x, y)
    steps, step_scale = _budget(args)
    bar = _Bar("bound")
    try:
        result = bound_evaluation(model, x, y, target, args.rounds, steps, step_scale, batch_size=args.batch_size,
                                  subset=what, targets_label=label, progress=bar)
    finally:
        bar.close()
    out = {**result.to_dict(), "model": card.name, "dataset": args.dataset}
    gaps = [p["d2"] - p["half_margin"] for p in result.points]
    text = (f"{card.name}: {len(result.points)} successful minimum-eps attacks of {result.attempted} correctly "
            f"classified images ({what}; targets: {label}); bound violations: {result.violations}"
            + (f"; min d2 - half margin {min(gaps):.4f}" if gaps else ""))
    _finish(args, "bound", out, text)


def run_uar(args) -> None:
    from interp_core.evaluate import uar_evaluation

    attacks = tuple(a.strip() for a in args.attacks.split(",") if a.strip())  # uar_evaluation checks them
    model, card, x, y, what = _setup(args)
    bar = _Bar("uar")
    try:
        result = uar_evaluation(model, x, y, attacks, args.dataset, steps=args.steps, seed=args.seed,
                                batch_size=args.batch_size, subset=what, progress=bar)
    finally:
        bar.close()
    out = {**result.to_dict(), "model": card.name, "dataset": args.dataset}
    lines = [f"{card.name}, unforeseen attacks ({args.steps} steps, targets numpy seed {args.seed}), {what}",
             f"  clean accuracy {result.clean_accuracy:.4f}"]
    lines += [f"  {r['attack']} (eps {r['eps']:g}): accuracy {r['accuracy']:.4f}, on target {r['target_rate']:.4f}"
              for r in result.results]
    _finish(args, "uar", out, "\n".join(lines + [f"({result.seconds:.1f} s)"]))


def run_reproduce(args) -> None:
    from interp_core.evaluate.reproduce import reproduce, workers_text

    if args.address and args.workers != 1:
        raise CLIError("--workers sizes a local Ray; a cluster (--address) runs as many units at once as it has CPUs")
    configure_threads(shared=False)
    parts = tuple(p.strip() for p in args.parts.split(",") if p.strip())
    bars: dict = {}

    def progress(part: str, done: int, total: int) -> None:
        if part not in bars:
            bars[part] = _Bar(part)
        bars[part](done, total)

    try:
        summary = reproduce(args.out, args.quick, parts, resolve_device(args.device), progress, resume=args.resume,
                            workers=args.workers, address=args.address)
    finally:
        for bar in bars.values():
            bar.close()
    for warning in summary["warnings"]:
        print(f"warning: {warning}", file=sys.stderr)
    lines = [f"wrote {args.out}/README.md in {summary['seconds']} s, the units measured "
             f"{workers_text(args.workers, args.address)}"]
    lines += [f"  {name}: {p['unit_seconds']} s of work, {', '.join(p['files'])}"
              for name, p in summary["parts"].items()]
    emit(args, _json_safe({"out": str(args.out), **summary}), "\n".join(lines))
