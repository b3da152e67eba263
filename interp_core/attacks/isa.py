"""Interpretability sneaking attacks (ISA) and the minimum-eps targeted attack (docs/method.md#isa).

ISA minimizes ``margin_t(x') + gamma * D(x, x')`` over ``||x' - x||_inf <= eps``, x' in [0, 1]:
``steps`` soft-sign steps from x' = x of x' <- x' - step_scale eps clip(1000 grad, -1, 1), then
projection. ``ISA_BUDGETS`` names two budgets: the authors' (10 steps of 0.2 eps) and a finer one
(100 steps of 0.02 eps: the same total path, smaller steps). Two per-image searches: the minimum
eps that reaches the target with gamma = 0, and, at eps = p * eps_min, the largest gamma that
still reaches it (``ISA(search_gamma=True)`` is that search at a given eps, as one attack). The discrepancy-vs-eps points of the successful examples are the trade-off
curves (``isa_tradeoff``); under the 2-class l1 measure of CAM they cannot fall below the bound
1/2 h w (Z_y(x) - Z_t(x)).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from interp_core.attacks.engine import PGD, StepCallback, check_settings, margin_loss
from interp_core.checks import check_range
from interp_core.interpret import Explainer, explain_all_classes, explain_classes, get_explainer
from interp_core.metrics import DISTANCES, MEASURES, best_other_class, discrepancy, two_class_bound
from interp_core.models import smooth_copy

ISA_EXPLAINERS = ("cam", "gradcampp", "ig")
#: Named ISA step budgets: the authors' (10 soft-sign steps of 0.2 eps) and a finer one (100 steps
#: of 0.02 eps), used by every search of the attack (minimum eps and maximum gamma).
ISA_BUDGETS = {"authors": {"steps": 10, "step_scale": 0.2}, "fine": {"steps": 100, "step_scale": 0.02}}


def runner_up(model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
    """The default attack target: the highest-scoring class other than y, (N,)."""
    with torch.no_grad():
        return best_other_class(model(x), y).indices


def class_maps(explainer: Explainer, model: nn.Module, x: Tensor, classes: Tensor | None, num_classes: int,
               create_graph: bool = False) -> Tensor:
    """Maps of the given classes (N, M) -> (N, M, h, w), or of every class when ``classes`` is None."""
    if classes is None:
        return explain_all_classes(explainer, model, x, num_classes, create_graph)
    return explain_classes(explainer, model, x, classes, create_graph)


def _measure_classes(measure: str, y: Tensor, target: Tensor) -> Tensor | None:
    """Classes whose maps a measure needs, (N, M); None for every class."""
    if measure == "1class":
        return y[:, None]
    if measure == "2class":
        return torch.stack([y, target], 1)
    return None


def measure_discrepancy(clean: Tensor, adv: Tensor, y: Tensor, target: Tensor, measure: str, distance: str,
                        normalization: str) -> Tensor:
    """``metrics.discrepancy`` on maps laid out by ``_measure_classes`` (y first, then t), (N,)."""
    if measure == "allclass":
        return discrepancy(clean, adv, y, target, measure, distance, normalization)
    zeros = torch.zeros_like(y)
    return discrepancy(clean, adv, zeros, zeros + 1 if measure == "2class" else None, measure, distance, normalization)


class ISA:
    """ISA at a fixed eps (a float or a per-example tensor (N,)): one run at a given gamma, or the
    authors' search for the largest gamma that still reaches the target.

    Args:
        eps: l-inf radius; gamma: weight of the discrepancy (0: a plain targeted margin attack), a
            float or a per-example tensor (N,).
        search_gamma: instead of a given gamma, use per image the largest gamma in [0, 1] at which
            the run still reaches the target (search (2) of docs/method.md#isa, ``maximum_gamma``:
            ``rounds`` doubling / bisection rounds from 5e-5); gamma must then stay 0. An image
            that no gamma tried brings to the target is returned unchanged. After each such call
            ``found_gamma`` (N,) holds the gamma of each returned example (NaN: none); it stays
            None without the search.
        measure: "1class", "2class" or "allclass"; distance: "l1", "l2" or "sq_l2" (squared l2);
        normalization: "raw" (the paper's attack-time maps) or "range".
        explainer: "cam", "gradcampp" or "ig".
        explainer_options: passed to the explainer (e.g. ``{"steps": 20}`` for a cheaper IG, or
            ``{"form": "authors"}`` for the authors' IG map, which is attacked and reported on the
            network's softplus (beta = 1) copy; see ``interpret.IntegratedGradients``).
        smooth_beta: the IG map in its display form is attacked on ``smooth_copy(model,
            smooth_beta)`` (ReLU -> softplus) so that its gradient is not zero; unused otherwise.
        steps, step_scale, softsign_scale, kappa: the update x' <- x' - step_scale * eps *
            clip(softsign_scale * grad, -1, 1) of ``margin(x', kappa) + gamma D`` (``ISA_BUDGETS``:
            steps 10, step_scale 0.2 for the authors' budget; 100, 0.02 for the fine one).

    ``isa(model, x, y, target=None, *, callback=None)``: x (N, C, H, W) in [0, 1]; target defaults
    to ``runner_up``. ``callback(step, x_adv)`` sees every iterate of a run, or with search_gamma
    the best examples after each round (round 0: x), as ``MinimumEps``.
    """

    targeted = True

    def __init__(self, eps, gamma=0.0, measure: str = "2class", distance: str = "l1", normalization: str = "raw",
                 explainer: str = "cam", explainer_options: dict | None = None, steps: int = 10,
                 step_scale: float = 0.2, softsign_scale: float = 1000.0, kappa: float = 0.1,
                 smooth_beta: float = 10.0, search_gamma: bool = False, rounds: int = 10):
        if measure not in MEASURES:
            raise ValueError(f"measure must be one of {MEASURES}, got {measure!r}")
        if explainer not in ISA_EXPLAINERS:
            raise ValueError(f"ISA explainer must be one of {ISA_EXPLAINERS}, got {explainer!r}")
        check_range("gamma", gamma)
        check_range("eps", eps, 0.0, 1.0)
        check_range("steps", steps, integer=True)
        for name, value in (("step_scale", step_scale), ("softsign_scale", softsign_scale), ("kappa", kappa)):
            check_range(name, value)
        check_range("smooth_beta", smooth_beta, 1e-3, math.inf)
        if distance not in DISTANCES:
            raise ValueError(f"distance must be one of {DISTANCES}, got {distance!r}")
        check_settings(eps, steps=steps)
        _check_budget(steps, step_scale)
        check_range("rounds", rounds, integer=True)
        if search_gamma and not (isinstance(gamma, (int, float)) and gamma == 0):
            raise ValueError(f"gamma is searched (search_gamma=True): leave it at 0, got {gamma!r}")
        self.eps, self.gamma, self.measure, self.distance, self.normalization = eps, gamma, measure, distance, normalization
        self.explainer_name, self.explainer_options = explainer, dict(explainer_options or {})
        self.explainer = get_explainer(explainer, **self.explainer_options)
        self.steps, self.step_scale, self.softsign_scale = steps, step_scale, softsign_scale
        self.kappa, self.smooth_beta = kappa, smooth_beta
        self.search_gamma, self.rounds = search_gamma, rounds
        self.found_gamma: Tensor | None = None

    def __repr__(self) -> str:
        searched = f", search_gamma=True, rounds={self.rounds}" if self.search_gamma else ""
        return (f"ISA(measure={self.measure!r}, distance={self.distance!r}, explainer={self.explainer_name!r}, "
                f"steps={self.steps}, step_scale={self.step_scale:g}{searched})")

    def __call__(self, model: nn.Module, x: Tensor, y: Tensor, target: Tensor | None = None, *,
                 callback: StepCallback | None = None) -> Tensor:
        target = runner_up(model, x, y) if target is None else target
        if self.search_gamma:
            options = dict(measure=self.measure, distance=self.distance, normalization=self.normalization,
                           explainer=self.explainer_name, explainer_options=self.explainer_options, steps=self.steps,
                           step_scale=self.step_scale, softsign_scale=self.softsign_scale, kappa=self.kappa,
                           smooth_beta=self.smooth_beta)
            self.found_gamma, x_adv, _ = maximum_gamma(model, x, y, target, self.eps, options, rounds=self.rounds,
                                                       callback=callback)
            return x_adv
        step = self.step_scale * (self.eps if isinstance(self.eps, Tensor) else float(self.eps))
        gamma = torch.as_tensor(self.gamma, dtype=x.dtype, device=x.device)
        uses_maps = bool((gamma > 0).any())
        engine_kwargs = dict(norm="linf", targeted=True, update="softsign", softsign_scale=self.softsign_scale)
        if not uses_maps:
            return PGD(self.eps, step, self.steps, objective="margin", kappa=self.kappa,
                       **engine_kwargs)(model, x, y, target, callback=callback)
        display_ig = self.explainer_name == "ig" and self.explainer.form == "display"
        map_model = smooth_copy(model, self.smooth_beta) if display_ig else model
        num_classes = _num_classes(model, x)
        classes = _measure_classes(self.measure, y, target)
        clean = class_maps(self.explainer, map_model, x, classes, num_classes).detach()

        def objective(model_, x_adv, x_, y_, target_):
            adv = class_maps(self.explainer, map_model, x_adv, classes, num_classes, create_graph=True)
            d = measure_discrepancy(clean, adv, y_, target_, self.measure, self.distance, self.normalization)
            return -(margin_loss(model_(x_adv), target_, self.kappa) + gamma * d)

        return PGD(self.eps, step, self.steps, objective=objective, **engine_kwargs)(model, x, y, target,
                                                                                     callback=callback)


def _check_budget(steps: int, step_scale: float) -> None:
    """ISA's step budget: steps in [0, 100000], each step a share step_scale in [0.001, 1] of eps."""
    check_range("steps", steps, integer=True)
    check_range("step_scale", step_scale, hint=" (the step as a share of eps)")


def budget_options(budget: str) -> dict:
    """``{"steps", "step_scale"}`` of a named budget of ``ISA_BUDGETS``."""
    if budget not in ISA_BUDGETS:
        raise ValueError(f"ISA budget must be one of {sorted(ISA_BUDGETS)}, got {budget!r}")
    return dict(ISA_BUDGETS[budget])



def _num_classes(model: nn.Module, x: Tensor) -> int:
    with torch.no_grad():
        return model(x[:1]).shape[1]


def _reaches(model: nn.Module, x_adv: Tensor, target: Tensor) -> Tensor:
    with torch.no_grad():
        return model(x_adv).argmax(1) == target


def _search(run, n: int, like: Tensor, start: float, upper: float, rounds: int, grow_on_success: bool,
            callback: StepCallback | None = None):
    """The authors' per-example doubling / bisection search over a value in [0, upper].

    ``run(value (N,)) -> (x_adv, success (N,))``. A round that should grow the value sets the lower
    end to it and doubles it while that stays below the midpoint; a round that should shrink it
    sets the upper end and moves to the midpoint. Returns the best successful value per example
    (smallest when success shrinks, largest when it grows), its x_adv, and whether any succeeded.
    ``callback(round, best_x)`` sees the best examples so far: ``like`` at round 0, then each round's.
    """
    value = torch.full((n,), start, dtype=like.dtype, device=like.device)
    lo, hi = torch.zeros_like(value), torch.full_like(value, upper)
    best_value = torch.full_like(value, float("nan"))
    best_x, found = like.clone(), torch.zeros(n, dtype=torch.bool, device=like.device)
    if callback:
        callback(0, best_x)
    for round_ in range(1, rounds + 1):
        x_adv, ok = run(value)
        improve = ok & (~found | (value > best_value if grow_on_success else value < best_value))
        best_value = torch.where(improve, value, best_value)
        best_x = torch.where(improve.view(-1, *[1] * (like.dim() - 1)), x_adv, best_x)
        found = found | ok
        grow = ok if grow_on_success else ~ok
        lo, hi = torch.where(grow, value, lo), torch.where(grow, hi, value)
        mid = (lo + hi) / 2
        value = torch.where(grow, torch.minimum(2 * value, mid), mid)
        if callback:
            callback(round_, best_x)
    return best_value, best_x, found


def minimum_eps(model: nn.Module, x: Tensor, y: Tensor, target: Tensor, max_eps: float = 1.0, start: float = 0.05,
                rounds: int = 10, steps: int = 10, step_scale: float = 0.2, kappa: float = 0.1,
                random_start: bool = False, restarts: int = 1, seed: int | None = None,
                callback: StepCallback | None = None) -> tuple[Tensor, Tensor, Tensor]:
    """Search (1) of docs/method.md#isa: the smallest l-inf eps at which a targeted margin attack
    (ISA with gamma = 0: ``steps`` soft-sign steps of ``step_scale * eps``) reaches ``target``,
    per example; x (N, C, H, W) in [0, 1], y and target (N,). The authors' attack starts at x;
    ``random_start`` starts it uniformly in the ball instead, ``restarts`` times (seeded by
    ``seed``), keeping the best run: ten steps from x can stall on a robust network and read as
    robustness (docs/method.md#min-eps). Either way eps_min bounds the smallest eps from above.

    Returns eps_min (N,) (NaN where no eps <= max_eps worked; 0 where x already predicts the
    target), x_adv (N, C, H, W) found at eps_min (x where none), success (N,) bool.
    ``callback(round, x_adv)`` sees the best examples after each bisection round (round 0: x).
    """
    _check_budget(steps, step_scale)
    check_settings(max_eps, steps=steps, restarts=restarts, random_start=random_start)

    def run(eps):
        x_adv = PGD(eps, step_scale * eps, steps, random_start=random_start, restarts=restarts, seed=seed,
                    objective="margin", kappa=kappa, targeted=True, update="softsign")(model, x, y, target)
        return x_adv, _reaches(model, x_adv, target)

    eps, x_adv, found = _search(run, x.shape[0], x, min(start, max_eps), max_eps, rounds, grow_on_success=False,
                                callback=callback)
    already = _reaches(model, x, target)
    return (torch.where(already, 0.0, eps), torch.where(already.view(-1, *[1] * (x.dim() - 1)), x, x_adv),
            found | already)


def maximum_gamma(model: nn.Module, x: Tensor, y: Tensor, target: Tensor, eps: Tensor | float, attack_options: dict,
                  start: float = 5e-5, upper: float = 1.0, rounds: int = 10,
                  callback: StepCallback | None = None) -> tuple[Tensor, Tensor, Tensor]:
    """Search (2) of docs/method.md#isa: at eps (a float or per example (N,)), the largest gamma in
    [0, upper] for which ISA (``attack_options``: measure, distance, explainer, steps, step_scale,
    ...) still reaches the target; x (N, C, H, W) in [0, 1], y and target (N,). Returns gamma (N,)
    (NaN where none worked), its x_adv (x where none), success (N,). ``callback(round, x_adv)``
    sees the best examples after each round (round 0: x)."""
    def run(gamma):
        x_adv = ISA(eps, gamma, **attack_options)(model, x, y, target)
        return x_adv, _reaches(model, x_adv, target)

    return _search(run, x.shape[0], x, start, upper, rounds, grow_on_success=True, callback=callback)


#: How a trade-off point's discrepancy is scaled: "raw" (the attack's own distance on raw maps, as
#: the authors' trade-off figure) or "range" (l1, or l2 for l2 / sq_l2 attacks, each class's term
#: divided by its clean map's range, as the authors' ISA statistics).
SCALES = ("raw", "range")


@dataclass
class TradeoffCurves:
    """ISA trade-off points of one attack configuration, per image (docs/method.md#isa).

    ``points[i]`` lists, for image i, dicts ``{"multiplier", "gamma", "eps", "linf", "raw_<m>",
    "range_<m>"}`` (m in 1class, 2class, allclass) of its real successes (the target wins): the
    first is the minimum-eps example itself (multiplier 1, gamma 0), as in the authors' curves,
    then the largest-gamma example at each eps = multiplier * eps_min. ``eps`` is the nominal
    radius, ``linf`` the actual ||x' - x||_inf; ``raw_<m>`` the measure in the attack's own
    distance on raw maps, ``range_<m>`` range-normalized (see ``SCALES``).
    ``bound[i]`` = 1/2 h w (Z_y(x) - Z_t(x)), the floor of raw_2class for CAM maps and the l1
    distance (None for other maps or distances). ``skipped[i]`` says why image i has no points
    ("" when it has some): its clean logits already prefer the target, or no eps <= 1 reached it.
    """

    options: dict
    eps_min: list[float]
    target: list[int]
    points: list[list[dict]] = field(default_factory=list)
    bound: list[float | None] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def isa_tradeoff(model: nn.Module, x: Tensor, y: Tensor, target: Tensor | None = None,
                 multipliers: tuple[float, ...] = (1.0, 1.5, 2.0, 3.0, 4.0), rounds: int = 10,
                 **attack_options) -> TradeoffCurves:
    """Trade-off curves of ISA on images x (N, C, H, W) in [0, 1] with labels y and targets (N,)
    (default ``runner_up``): eps_min from search (1), then for each eps = p * eps_min (capped at 1)
    the largest-gamma success of search (2). ``attack_options`` configure ``ISA`` (measure,
    distance, explainer, explainer_options, steps, step_scale, ...); both searches use its
    ``steps`` and ``step_scale``. Images whose clean logits already prefer the target (Z_t >= Z_y)
    are skipped, as the authors do. Discrepancies are reported with the unsmoothed model's maps
    (IG in the authors' form: with its softplus copy, as it is attacked)."""
    target = runner_up(model, x, y) if target is None else target
    options = {"measure": "2class", "distance": "l1", "explainer": "cam", **attack_options}
    budget = {"steps": options.get("steps", 10), "step_scale": options.get("step_scale", 0.2)}
    reported = {"raw": options["distance"], "range": "l1" if options["distance"] == "l1" else "l2"}
    explainer = get_explainer(options["explainer"], **options.get("explainer_options", {}))
    num_classes = _num_classes(model, x)
    with torch.no_grad():
        logits = model(x)
        grid = model.cam(x[:1]).shape[2:].numel() if options["explainer"] == "cam" else 0
    eligible = logits.gather(1, y[:, None]).squeeze(1) > logits.gather(1, target[:, None]).squeeze(1)
    has_bound = options["explainer"] == "cam" and options["distance"] == "l1"
    half = two_class_bound(logits, y, target)
    n = x.shape[0]
    curves = TradeoffCurves(options, [math.nan] * n, [int(t) for t in target], [[] for _ in range(n)],
                            [float(grid * h) if has_bound else None for h in half.tolist()],
                            ["" if e else "the clean image already prefers the target" for e in eligible.tolist()])
    idx = eligible.nonzero().squeeze(1)
    if idx.numel() == 0:
        return curves
    xs, ys, ts = x[idx], y[idx], target[idx]
    eps_min, x_min, found = minimum_eps(model, xs, ys, ts, rounds=rounds, kappa=options.get("kappa", 0.1), **budget)
    for j, i in enumerate(idx.tolist()):
        curves.eps_min[i] = float(eps_min[j])
        if not found[j]:
            curves.skipped[i] = "no eps <= 1 reached the target"
    keep = found.nonzero().squeeze(1)
    if keep.numel() == 0:
        return curves
    idx, xs, ys, ts, eps_min, x_min = idx[keep], xs[keep], ys[keep], ts[keep], eps_min[keep], x_min[keep]
    clean = class_maps(explainer, model, xs, None, num_classes)

    def record(multiplier: float, eps: Tensor, gamma: Tensor, x_adv: Tensor, ok: Tensor) -> None:
        adv = class_maps(explainer, model, x_adv, None, num_classes)
        linf = (x_adv - xs).flatten(1).abs().amax(1)
        scores = {f"{scale}_{m}": discrepancy(clean, adv, ys, ts, m, reported[scale], scale)
                  for scale in SCALES for m in MEASURES}
        for j in ok.nonzero().squeeze(1).tolist():
            curves.points[int(idx[j])].append({
                "multiplier": multiplier, "gamma": float(gamma[j]), "eps": float(eps[j]), "linf": float(linf[j]),
                **{key: float(value[j]) for key, value in scores.items()}})

    record(1.0, eps_min, torch.zeros_like(eps_min), x_min, torch.ones_like(keep, dtype=torch.bool))
    for p in multipliers:
        eps = (p * eps_min).clamp(max=1.0)
        gamma, x_adv, ok = maximum_gamma(model, xs, ys, ts, eps, options, rounds=rounds)
        record(p, eps, gamma, x_adv, ok)
    return curves


def envelope(points: list[dict], key: str) -> list[float]:
    """The authors' running minimum of ``key`` over one image's points in multiplier order (an
    example found within a smaller eps is one within every larger eps); same order as
    ``sorted(points, key=multiplier)``, stable for the minimum-eps point first."""
    best, out = math.inf, []
    for p in sorted(points, key=lambda q: q["multiplier"]):
        best = min(best, p[key])
        out.append(best)
    return out


class MinimumEps:
    """The minimum-eps targeted attack as a registered attack: ``minimum_eps`` within [0, eps],
    by default from random starts (3 restarts, seed 0; ``random_start=False, restarts=1``: the
    authors' start at x); returns the example found at the smallest successful eps (x where
    none): its eps bounds the minimum from above. ``callback(round, x_adv)`` sees the best
    examples after each bisection round."""

    targeted = True

    def __init__(self, eps: float = 1.0, rounds: int = 10, steps: int = 10, step_scale: float = 0.2,
                 kappa: float = 0.1, random_start: bool = True, restarts: int = 3, seed: int = 0):
        check_settings(eps, steps=steps, restarts=restarts, random_start=random_start)
        _check_budget(steps, step_scale)
        check_range("rounds", rounds, integer=True)
        check_range("kappa", kappa)
        check_range("seed", seed, integer=True)
        self.eps, self.rounds, self.steps, self.step_scale, self.kappa = eps, rounds, steps, step_scale, kappa
        self.random_start, self.restarts, self.seed = random_start, restarts, seed

    def __repr__(self) -> str:
        return (f"MinimumEps(eps={self.eps}, rounds={self.rounds}, steps={self.steps}, step_scale={self.step_scale:g}, "
                f"random_start={self.random_start}, restarts={self.restarts}, seed={self.seed})")

    def __call__(self, model: nn.Module, x: Tensor, y: Tensor, target: Tensor | None = None, *,
                 callback: StepCallback | None = None) -> Tensor:
        if self.eps == 0:
            return x.detach().clone()
        target = runner_up(model, x, y) if target is None else target
        return minimum_eps(model, x, y, target, self.eps, rounds=self.rounds, steps=self.steps,
                           step_scale=self.step_scale, kappa=self.kappa, random_start=self.random_start,
                           restarts=self.restarts, seed=self.seed, callback=callback)[1]


def bound_points(model: nn.Module, x: Tensor, y: Tensor, target: Tensor | None = None, rounds: int = 10,
                 steps: int = 10, step_scale: float = 0.2) -> dict:
    """Tightness of the 2-class bound (docs/method.md#bound) under minimum-eps targeted attacks
    (``steps`` soft-sign steps of ``step_scale * eps``) on x (N, C, H, W) in [0, 1].

    For each image whose attack succeeded: ``d2`` = D2 of the l1 discrepancy of CAM / (h w)
    maps and ``half_margin`` = (Z_y(x) - Z_t(x)) / 2. The bound says d2 >= half_margin.
    Returns {"index", "target", "eps", "d2", "half_margin"} lists (successful images only).
    """
    target = runner_up(model, x, y) if target is None else target
    eps, x_adv, found = minimum_eps(model, x, y, target, rounds=rounds, steps=steps, step_scale=step_scale)
    with torch.no_grad():
        clean, adv = model.cam(x), model.cam(x_adv)
        grid = clean.shape[2] * clean.shape[3]
        d2 = discrepancy(clean / grid, adv / grid, y, target, "2class", "l1", "raw")
        half = two_class_bound(model(x), y, target)
    keep = found.nonzero().squeeze(1).tolist()
    return {"index": keep, "target": [int(target[i]) for i in keep], "eps": [float(eps[i]) for i in keep],
            "d2": [float(d2[i]) for i in keep], "half_margin": [float(half[i]) for i in keep]}
