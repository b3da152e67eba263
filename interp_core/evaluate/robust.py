"""Robust accuracy per eps (the paper's section 5), under the authors' protocol or a stronger one,
with the gradient-masking signs of the literature.

``paper``: the authors' PGD (``PaperProtocol``: 200 signed steps of 0.01 from x, one restart,
the final iterate counts). Every eps of the grid is evaluated in one pass: each clean-correct image
is stacked once per eps > 0, each row with its own radius. The engine ascends the per-example
cross-entropy summed over the batch, so a row's gradient does not depend on the other rows (the
authors' batch-mean loss differs by a constant factor, which the sign removes); the stacked pass
gives, image by image, the result of one batch per eps (bit for bit where the kernels compute a
row independently of the batch size, as the CPU ones do; a GPU library may pick other algorithms
for other batch sizes, which changes the rounding).

``strong`` (the project's addition): the per-image worst case over a sequence of attacks, each
run only on the (eps, image) pairs that every earlier attack left standing, and each stopping on
an image at its first misclassified iterate (``PGD(early_stop=True)``): the authors' PGD, PGD on
the cross-entropy and on the C&W margin with random starts and restarts, then (``autoattack``)
AutoAttack (torchattacks' standard version: APGD-CE, APGD-T, FAB-T, Square).

The re-test (``retest``, one of ``RETESTS``; the project's rule: no robustness number is shown
without it): the ``paper`` protocol's number (the *reported* one) stands beside the per-image
worst case of that attack's final iterate and the strong protocol's later attacks run on what it
left standing (the *re-tested* one). "full" (cards, README, reproduce tables, the CLI) ends with
Square, the black-box attack of AutoAttack that needs no gradient, at AutoAttack's query budget;
"quick" (pages a user waits for) has fewer steps and queries. ``contradictions`` lists the eps where the re-test takes
more than ``CONTRADICTION`` off the reported number; ``SIGN_WORDS`` says each masking sign in words
a student understands.

Clean errors count as failures at every eps and are never attacked.

Gradient-masking signs (``MASKING_SIGNS``; Athalye, Carlini and Wagner 2018; Carlini et al. 2019,
"On evaluating adversarial robustness"), checked on every evaluation at a cost of seconds, each
reported by name in ``RobustResult.masking_signs`` with a warning that starts with that name. They
only diagnose: they never change the accuracies.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from interp_core.attacks import PGD, PaperProtocol, pgd
from interp_core.checks import check_eps_list, check_range
from interp_core.metrics import correct
from interp_core.models import eval_mode

#: progress(done, total): called by long evaluations after each unit of work.
Progress = Callable[[int, int], None]
PROTOCOLS = ("paper", "strong")
#: Images the black-box and unbounded checks attack (the first ones that qualify).
SIGN_IMAGES = 10
#: Queries of the black-box check's Square attack (torchattacks.Square, margin loss, seed 0).
SQUARE_QUERIES = 200
#: The unbounded check: PGD at eps = 1 (the whole [0, 1] box), this many signed steps of 0.1 from x.
UNBOUNDED_STEPS = 20
#: More than this share of the unbounded check's images surviving flags masking.
UNBOUNDED_SURVIVORS = 0.1
#: More than this share of images with an all-zero input gradient flags vanishing gradients.
ZERO_GRADIENT_SHARE = 0.1
#: The re-test settings: random starts of each extra PGD and its steps, then Square (torchattacks,
#: margin loss, seed 0), AutoAttack's black-box part, with this many queries ("quick": for pages a
#: user waits for). Measured on the 2-core CPU, one thread, MNIST smallgap: AutoAttack costs about
#: 1.4 s per image it cannot break and Square about 25 s per 1000 queries on 100 such images, so
#: AutoAttack stays with ``protocol="strong"`` and Square gets a fifth of AutoAttack's 5000 queries.
RETESTS = {"full": {"restarts": 1, "steps": 100, "queries": 1000},
           "quick": {"restarts": 1, "steps": 50, "queries": 500}}
#: A re-tested accuracy this much below the reported one (10 of 200 images) contradicts it.
CONTRADICTION = 0.05
MASKING_SIGNS = {
    "black-box-wins": f"Square ({SQUARE_QUERIES} queries), which needs no gradient, breaks some of the first "
                      f"{SIGN_IMAGES} images that every gradient attack left standing at the largest eps where "
                      "any stands (the PGD variants under the strong protocol, before AutoAttack)",
    "unbounded-survives": f"more than {UNBOUNDED_SURVIVORS:.0%} of the first {SIGN_IMAGES} clean-correct images "
                          f"survive {UNBOUNDED_STEPS} signed PGD steps of 0.1 at eps = 1, where any image can be "
                          "turned into any other",
    "accuracy-rises": "robust accuracy rises with eps, or (paper protocol) is higher after all steps than after "
                      "a quarter of them (under the strong protocol a success at any iterate counts, so more "
                      "steps cannot raise it)",
    "vanishing-gradients": f"more than {ZERO_GRADIENT_SHARE:.0%} of images have an all-zero cross-entropy input "
                           "gradient",
}

#: Each masking sign in words a student understands: what was seen and what it means.
SIGN_WORDS = {
    "black-box-wins": "an attack that only looks at the network's answers, never at its gradients, fooled it on "
                      "images the gradient attacks could not: the gradients point the wrong way, so the gradient "
                      "attack's accuracy is too high",
    "unbounded-survives": "even when the attack may change the whole image, the gradient attack could not fool the "
                          "network: its gradients lead nowhere, so its accuracy at small eps proves nothing",
    "accuracy-rises": "accuracy went up with a larger eps or with more steps, which a working attack never allows: "
                      "the attack did not finish its job",
    "vanishing-gradients": "on many images the network's input gradient is exactly zero, so a gradient attack "
                           "cannot even start to move",
}


@dataclass
class EvaluationRecord:
    """What every evaluation's result carries first: the protocol that produced it (a dict of its
    settings), the number of images and the evaluation subset. ``to_dict()`` gives the fields in
    their order (the stored and printed JSON); each record adds its own results and ends with its
    wall-clock seconds."""

    protocol: dict
    n: int
    subset: str

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class RobustResult(EvaluationRecord):
    """Robust accuracy per eps: ``results`` = [{"eps", "accuracy", "attacks" (strong), "retested"
    and "retest_attacks" (with a re-test)}] in the order of the eps asked for, ``per_image[i][j]``:
    image j robust at ``results[i]["eps"]`` (under the reported protocol), the protocol that
    produced it (with the re-test's settings under "retest"), the evaluation subset, warnings, the
    names of the gradient-masking signs that fired (``MASKING_SIGNS``) and the wall-clock seconds."""

    results: list[dict]
    per_image: list[list[bool]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    masking_signs: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def contradictions(self) -> list[dict]:
        """The rows whose re-tested accuracy is more than ``CONTRADICTION`` below the reported one
        (none without a re-test)."""
        return [r for r in self.results if "retested" in r and r["accuracy"] - r["retested"] > CONTRADICTION + 1e-9]


def zero_gradient_share(model: nn.Module, x: Tensor, y: Tensor) -> float:
    """Share in [0, 1] of images x (N, C, H, W) in [0, 1] whose cross-entropy input gradient is
    exactly zero (a masking symptom)."""
    with eval_mode(model), torch.enable_grad():
        x_req = x.detach().requires_grad_(True)
        (grad,) = torch.autograd.grad(F.cross_entropy(model(x_req), y, reduction="sum"), x_req)
    return float((grad.flatten(1).abs().amax(1) == 0).float().mean())


class _TorchAttack:
    """A torchattacks l-inf attack by class name (``AutoAttack``, ``Square``) as
    ``attack(model, x, y) -> x_adv``; model modes and torch's global random state (torchattacks
    seeds it) restored, the result checked against the ball."""

    def __init__(self, name: str, eps: float, **options):
        self.name, self.eps, self.options = name, eps, options

    def __call__(self, model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
        try:
            import torchattacks
        except ImportError as err:  # installed apart from the requirements (see pyproject.toml)
            raise ImportError(f"{self.name} (the re-test and the strong protocol) needs torchattacks: "
                              "pip install --no-deps 'torchattacks>=3.5' (make run/test install it)") from err

        options = dict(self.options)
        if self.name == "AutoAttack":
            with torch.no_grad():
                options["n_classes"] = model(x[:1]).shape[1]
        with eval_mode(model), torch.random.fork_rng(devices=[x.device] if x.is_cuda else []):
            x_adv = getattr(torchattacks, self.name)(model, norm="Linf", eps=self.eps, **options)(x, y)
        if (x_adv - x).abs().max() > self.eps + 1e-5 or x_adv.min() < 0 or x_adv.max() > 1:
            raise RuntimeError(f"torchattacks {self.name} left the eps-ball or the [0, 1] box")
        return x_adv.detach()


def robust_accuracy(model: nn.Module, x: Tensor, y: Tensor, eps: list[float], protocol: str = "paper",
                    steps: int = 200, step_size: float = 0.01, restarts: int = 5, autoattack: bool = True,
                    retest: str | None = None, batch_size: int = 200, subset: str = "",
                    progress: Progress | None = None) -> RobustResult:
    """Robust accuracy in [0, 1] of ``model`` on x (N, C, H, W) in [0, 1], labels y (N,), at each
    eps (l-inf radii in [0, 1]; 0 gives the clean accuracy).

    protocol "paper": the authors' PGD with ``steps`` and ``step_size``, final iterate. "strong":
    per image, the worst case over the authors' PGD, ``restarts`` random-start PGD runs on the
    cross-entropy and on the C&W margin (``steps`` steps of 2.5 eps / steps) and (``autoattack``)
    AutoAttack, each attack stopping on an image at its first misclassified iterate and attacking
    only what the earlier ones left standing. Each strong row lists ``attacks``: for each attack in
    that order, the accuracy left after it and every attack before it (a number per attack of an
    exhaustive evaluation cannot be had without running every attack on every image); consecutive
    differences are the shares each attack broke first, and the last equals ``accuracy``.
    retest (protocol "paper" only; one of ``RETESTS``): each row also gets "retested", the
    accuracy left after the authors' PGD and the re-test's attacks run on what it left standing,
    and "retest_attacks", the accuracy left after each of those (as "attacks" above).
    ``batch_size`` rows (image, eps) are attacked at a time; ``subset`` describes which images x are.
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {PROTOCOLS}, got {protocol!r}")
    if retest is not None and (retest not in RETESTS or protocol != "paper"):
        raise ValueError(f"retest must be one of {sorted(RETESTS)} with the paper protocol, got {retest!r} "
                         f"with {protocol!r}")
    check_eps_list(eps)
    check_range("steps", steps, integer=True)
    check_range("step_size", step_size)
    check_range("restarts", restarts, integer=True)
    check_range("batch_size", batch_size, integer=True)
    started = time.perf_counter()
    paper = PaperProtocol(steps=steps, step_size=step_size)
    paper.attack(torch.tensor([float(e) for e in eps]))  # refuses bad radii, steps and step sizes
    record = {"name": protocol, **{k: v for k, v in paper.record().items() if not k.startswith("subset")}}
    if protocol == "strong":
        record.update(extra_attacks=_extra_attacks(restarts, "autoattack" if autoattack else None),
                      extra_step_size="2.5 eps / steps", restarts=restarts,
                      early_stop="each attack stops on an image at its first misclassified iterate and runs only "
                                 "on the images every earlier attack left standing")
    if retest:
        settings = RETESTS[retest]
        record["retest"] = {"name": retest, "after": "the authors' PGD (its final iterate)",
                            "attacks": _extra_attacks(settings["restarts"], "square", settings["queries"]),
                            "steps": settings["steps"], "step_size": "2.5 eps / steps",
                            "restarts": settings["restarts"]}
    with eval_mode(model):
        run = _Evaluation(model, x, y, [float(e) for e in eps], batch_size, progress)
        retested: dict[str, Tensor] = {}
        if protocol == "paper":
            quarter, attacks = run.paper(paper), {}
            reported = gradient_standing = run.standing.clone()
            if retest:
                retested, gradient_standing = run.strong(None, settings["steps"], settings["restarts"],
                                                         "square", settings["queries"])
        else:
            quarter = None
            attacks, gradient_standing = run.strong(paper, steps, restarts, "autoattack" if autoattack else None)
            reported = run.standing
        results, per_image = [], []
        for value in run.eps:
            robust = run.flags(reported, value)
            row = {"eps": value, "accuracy": float(robust.float().mean())}
            if protocol == "strong" and value > 0:
                row["attacks"] = {name: float(run.flags(s, value).float().mean()) for name, s in attacks.items()}
            if retest:
                row["retested"] = float(run.flags(run.standing, value).float().mean())
                if value > 0:
                    row["retest_attacks"] = {name: float(run.flags(s, value).float().mean())
                                             for name, s in retested.items()}
            results.append(row)
            per_image.append(robust.tolist())
        curve = [{"eps": r["eps"], "accuracy": r.get("retested", r["accuracy"])} for r in results]
        who = "the authors' PGD" if protocol == "paper" and not retest else "every PGD variant"
        signs = _masking_signs(run, curve, gradient_standing, quarter, reported, steps, who)
    return RobustResult(record, len(y), subset, results, per_image, [message for _, message in signs],
                        list(dict.fromkeys(name for name, _ in signs)), time.perf_counter() - started)


def _extra_attacks(restarts: int, final: str | None, queries: int = 0) -> list[str]:
    """The names, as records show them, of the strong protocol's attacks after the authors' PGD."""
    return ([f"pgd-ce random start x{restarts}", f"pgd-margin random start x{restarts}"]
            + {"autoattack": ["autoattack-standard (torchattacks)"],
               "square": [f"square {queries} queries (torchattacks)"], None: []}[final])


class _Evaluation:
    """The stacked rows of one evaluation: each clean-correct image once per eps > 0 (eps-major),
    ``image`` (R,) indices into x and ``radius`` (R,) its eps; attacks run over rows in batches."""

    def __init__(self, model: nn.Module, x: Tensor, y: Tensor, eps: list[float], batch_size: int,
                 progress: Progress | None):
        self.model, self.x, self.y, self.eps, self.batch_size = model, x, y, eps, batch_size
        self.progress, self.done, self.total = progress, 0, 0
        with torch.no_grad():
            self.clean = torch.cat([correct(model(x[s:s + batch_size]), y[s:s + batch_size])
                                    for s in range(0, len(y), batch_size)]
                                   or [torch.zeros(0, dtype=torch.bool, device=x.device)])
        self.radii = list(dict.fromkeys(e for e in eps if e > 0))
        images = self.clean.nonzero().squeeze(1)
        self.image = images.repeat(len(self.radii))
        self.radius = torch.tensor(self.radii, dtype=x.dtype, device=x.device).repeat_interleave(len(images))
        self.standing = torch.ones(len(self.image), dtype=torch.bool, device=x.device)

    def flags(self, standing: Tensor, value: float) -> Tensor:
        """Per-image robustness (N,) bool at eps ``value`` from per-row flags (R,)."""
        if value <= 0:
            return self.clean.clone()
        robust = torch.zeros_like(self.clean)
        column = self.radius == value
        robust[self.image[column]] = standing[column]
        return robust

    def plan(self, rows: int, stages: int) -> None:
        """Progress total: what is done plus ``stages`` passes over ``rows`` rows."""
        self.total = self.done + stages * -(-rows // self.batch_size)

    def attack_rows(self, rows: Tensor, attack: Callable[[Tensor, Tensor, Tensor], Tensor]) -> Tensor:
        """Still correctly classified (len(rows),) bool after ``attack(x, y, radius) -> x_adv`` on ``rows``."""
        ok = torch.zeros(len(rows), dtype=torch.bool, device=self.x.device)
        for s in range(0, len(rows), self.batch_size):
            chunk = rows[s:s + self.batch_size]
            xb, yb = self.x[self.image[chunk]], self.y[self.image[chunk]]
            x_adv = attack(xb, yb, self.radius[chunk])
            with torch.no_grad():
                ok[s:s + self.batch_size] = correct(self.model(x_adv), yb)
            self.done += 1
            if self.progress:
                self.progress(self.done, max(self.total, self.done))
        return ok

    def paper(self, paper: PaperProtocol) -> Tensor | None:
        """The authors' PGD on every row: ``standing`` becomes the final iterate's correctness;
        returns the correctness (R,) after steps // 4 steps (None under 4 steps)."""
        quarter_step, seen = paper.steps // 4, []

        def attack(xb: Tensor, yb: Tensor, radius: Tensor) -> Tensor:
            def look(step: int, x_adv: Tensor) -> None:
                if step == quarter_step:
                    with torch.no_grad():
                        seen.append(correct(self.model(x_adv), yb))

            return paper.attack(radius)(self.model, xb, yb, callback=look if quarter_step else None)

        rows = torch.arange(len(self.image), device=self.x.device)
        self.plan(len(rows), 1)
        self.standing = self.attack_rows(rows, attack)
        return torch.cat(seen) if quarter_step and seen else None

    def strong(self, paper: PaperProtocol | None, steps: int, restarts: int, final: str | None,
               queries: int = 0) -> tuple[dict[str, Tensor], Tensor]:
        """The strong protocol's attacks in turn on the rows still standing: the authors' PGD
        stopping early (``paper``; None: skipped, as in a re-test after the paper protocol), PGD on
        the cross-entropy and on the margin with ``restarts`` random starts of ``steps`` steps, then
        ``final`` ("autoattack", "square" with ``queries`` or None). Returns each attack's standing flags after it
        (R,) and the flags after the gradient (PGD) attacks."""
        model = self.model
        stages = [] if paper is None else [
            ("paper-pgd", lambda xb, yb, r: paper.attack(r, early_stop=True)(model, xb, yb))]
        stages += [
            ("pgd-ce-restarts", lambda xb, yb, r: pgd(r, steps, restarts=restarts, seed=0,
                                                      early_stop=True)(model, xb, yb)),
            ("pgd-margin-restarts", lambda xb, yb, r: pgd(r, steps, restarts=restarts, seed=0, objective="margin",
                                                          early_stop=True)(model, xb, yb)),
        ]
        after: dict[str, Tensor] = {}
        for k, (name, attack) in enumerate(stages):
            rows = self.standing.nonzero().squeeze(1)
            self.plan(len(rows), len(stages) - k + int(final is not None))
            self.standing[rows] = self.attack_rows(rows, attack)
            after[name] = self.standing.clone()
        gradient_standing = self.standing.clone()
        if final is not None:
            self.plan(int(self.standing.sum()), 1)
            for value in self.radii:
                rows = (self.standing & (self.radius == value)).nonzero().squeeze(1)
                black_box = (_TorchAttack("AutoAttack", value, version="standard", seed=0) if final == "autoattack"
                             else _TorchAttack("Square", value, n_queries=queries, seed=0))
                self.standing[rows] = self.attack_rows(rows, lambda xb, yb, r: black_box(model, xb, yb))
            after[final] = self.standing.clone()
        return after, gradient_standing


def _masking_signs(run: _Evaluation, results: list[dict], gradient_standing: Tensor, quarter: Tensor | None,
                   paper_standing: Tensor, steps: int, who: str) -> list[tuple[str, str]]:
    """(name, warning) of every gradient-masking sign of ``MASKING_SIGNS`` that fires: ``results``
    the accuracy curve [{"eps", "accuracy"}], ``gradient_standing`` (R,) the rows every gradient
    attack (``who``) left standing, ``quarter`` and ``paper_standing`` (R,) the rows the authors'
    PGD left after a quarter of its ``steps`` and after all of them."""
    model, x, y = run.model, run.x, run.y
    signs = []
    for value in sorted(run.radii, reverse=True):  # black box: the largest eps where images stand
        rows = (gradient_standing & (run.radius == value)).nonzero().squeeze(1)[:SIGN_IMAGES]
        if len(rows):
            images = run.image[rows]
            square = _TorchAttack("Square", value, n_queries=SQUARE_QUERIES, seed=0)
            with torch.no_grad():
                broken = int((~correct(model(square(model, x[images], y[images])), y[images])).sum())
            if broken:
                signs.append(("black-box-wins", f"black-box-wins: Square ({SQUARE_QUERIES} queries, no gradient) "
                              f"broke {broken} of {len(rows)} images at eps={value:.4g} that {who} left standing: "
                              "the gradient attacks miss adversarial examples, robust accuracy is overestimated"))
            break
    images = run.clean.nonzero().squeeze(1)[:SIGN_IMAGES]
    if len(images):
        unbounded = PGD(1.0, 0.1, UNBOUNDED_STEPS)(model, x[images], y[images])
        with torch.no_grad():
            survivors = int(correct(model(unbounded), y[images]).sum())
        if survivors > UNBOUNDED_SURVIVORS * len(images):
            signs.append(("unbounded-survives", f"unbounded-survives: {survivors} of {len(images)} images survive "
                          f"{UNBOUNDED_STEPS}-step PGD at eps=1 (the whole [0, 1] box): the attack's gradients "
                          "do not lead anywhere"))
    ordered = sorted((r["eps"], r["accuracy"]) for r in results)
    for (e1, a1), (e2, a2) in zip(ordered, ordered[1:]):
        if a2 > a1 + 1e-9:
            signs.append(("accuracy-rises", f"accuracy-rises: robust accuracy rises from {a1:.3f} at eps={e1:.4g} "
                          f"to {a2:.3f} at eps={e2:.4g}: the attack does not converge"))
            break
    if quarter is not None:
        for value in run.radii:
            column = run.radius == value
            early, late = int(quarter[column].sum()), int(paper_standing[column].sum())
            if late > early:
                signs.append(("accuracy-rises", f"accuracy-rises: at eps={value:.4g}, {late} images stand after "
                              f"{steps} steps against {early} after {steps // 4}: the attack does not converge"))
                break
    if len(y):
        share = zero_gradient_share(model, x[:run.batch_size], y[:run.batch_size])
        if share > ZERO_GRADIENT_SHARE:
            signs.append(("vanishing-gradients", f"vanishing-gradients: {share:.0%} of images have an all-zero input "
                          "gradient: gradient attacks cannot move them"))
    return signs
