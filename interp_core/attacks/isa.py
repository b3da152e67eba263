"""Interpretability sneaking attacks (ISA) and the minimum-eps targeted attack (PAPER.md sections 4-5).

ISA minimizes ``margin_t(x') + gamma * D(x, x')`` over ``||x' - x||_inf <= eps``, x' in [0, 1]:
10 steps from x' = x of x' <- x' - 0.2 eps clip(1000 grad, -1, 1), then projection. Two
per-image searches: the minimum eps that reaches the target with gamma = 0, and, at eps = p *
eps_min, the largest gamma that still reaches it. The discrepancy-vs-eps points of the successful
examples are the trade-off curves: under the 1-class measure they fall toward 0 as eps grows,
under the 2-class measure they level off above the floor of section 4.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from interp_core.checks import check_range
from interp_core.attacks.engine import PGD, margin_loss
from interp_core.interpret import CAM, Explainer, explain_all_classes, explain_classes, get_explainer
from interp_core.metrics import DISTANCES, MEASURES, discrepancy, two_class_bound
from interp_core.models import smooth_copy

ISA_EXPLAINERS = ("cam", "gradcampp", "ig")


def runner_up(model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
    """The default attack target: the highest-scoring class other than y, (N,)."""
    with torch.no_grad():
        return model(x).scatter(1, y[:, None], float("-inf")).argmax(1)


def class_maps(explainer: Explainer, model: nn.Module, x: Tensor, classes: Tensor | None, num_classes: int,
               create_graph: bool = False) -> Tensor:
    """Maps of the given classes (N, M) -> (N, M, h, w), or of every class when ``classes`` is None.
    CAM computes every class in one pass, so it always does."""
    if classes is None or isinstance(explainer, CAM):
        maps = explain_all_classes(explainer, model, x, num_classes, create_graph)
        return maps if classes is None else maps.gather(1, classes[:, :, None, None].expand(-1, -1, *maps.shape[2:]))
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
    """One ISA run at a fixed eps and gamma (each a float or a per-example tensor (N,)).

    Args:
        eps: l-inf radius; gamma: weight of the discrepancy (0: a plain targeted margin attack).
        measure: "1class", "2class" or "allclass"; distance: "l1", "l2" or "sq_l2" (squared l2);
        normalization: "raw" (the paper's attack-time maps) or "range".
        explainer: "cam", "gradcampp" or "ig"; IG maps are taken on ``smooth_copy(model, beta)``
            (ReLU -> softplus) so that their gradient is not zero (PAPER.md section 3).
        explainer_options: passed to the explainer (e.g. ``{"steps": 20}`` for a cheaper IG).
        steps, step_scale, softsign_scale, kappa: the update x' <- x' - step_scale * eps *
            clip(softsign_scale * grad, -1, 1) of ``margin(x', kappa) + gamma D``.

    ``isa(model, x, y, target=None)``: x (N, C, H, W) in [0, 1]; target defaults to ``runner_up``.
    """

    targeted = True

    def __init__(self, eps, gamma=0.0, measure: str = "2class", distance: str = "l1", normalization: str = "raw",
                 explainer: str = "cam", explainer_options: dict | None = None, steps: int = 10,
                 step_scale: float = 0.2, softsign_scale: float = 1000.0, kappa: float = 0.1,
                 smooth_beta: float = 10.0):
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
        self.eps, self.gamma, self.measure, self.distance, self.normalization = eps, gamma, measure, distance, normalization
        self.explainer_name, self.explainer_options = explainer, dict(explainer_options or {})
        self.explainer = get_explainer(explainer, **self.explainer_options)
        self.steps, self.step_scale, self.softsign_scale = steps, step_scale, softsign_scale
        self.kappa, self.smooth_beta = kappa, smooth_beta

    def __repr__(self) -> str:
        return (f"ISA(measure={self.measure!r}, distance={self.distance!r}, explainer={self.explainer_name!r}, "
                f"steps={self.steps})")

    def __call__(self, model: nn.Module, x: Tensor, y: Tensor, target: Tensor | None = None,
                 callback=None) -> Tensor:
        """``callback(step, x_adv)`` sees every iterate, as in ``PGD.__call__``."""
        target = runner_up(model, x, y) if target is None else target
        step = self.step_scale * (self.eps if isinstance(self.eps, Tensor) else float(self.eps))
        gamma = torch.as_tensor(self.gamma, dtype=x.dtype, device=x.device)
        uses_maps = bool((gamma > 0).any())
        engine_kwargs = dict(norm="linf", targeted=True, update="softsign", softsign_scale=self.softsign_scale)
        if not uses_maps:
            objective = _MarginObjective(self.kappa)
            return PGD(self.eps, step, self.steps, objective=objective, **engine_kwargs)(model, x, y, target, callback)
        map_model = smooth_copy(model, self.smooth_beta) if self.explainer_name == "ig" else model
        num_classes = _num_classes(model, x)
        classes = _measure_classes(self.measure, y, target)
        clean = class_maps(self.explainer, map_model, x, classes, num_classes).detach()

        def objective(model_, x_adv, x_, y_, target_):
            adv = class_maps(self.explainer, map_model, x_adv, classes, num_classes, create_graph=True)
            d = measure_discrepancy(clean, adv, y_, target_, self.measure, self.distance, self.normalization)
            return -(margin_loss(model_(x_adv), target_, self.kappa) + gamma * d)

        return PGD(self.eps, step, self.steps, objective=objective, **engine_kwargs)(model, x, y, target, callback)


class _MarginObjective:
    """-margin_t(x') for the targeted searches (gamma = 0); named so that repr shows it."""

    def __init__(self, kappa: float):
        self.kappa = kappa

    def __call__(self, model, x_adv, x, y, target):
        return -margin_loss(model(x_adv), target, self.kappa)

    def __repr__(self) -> str:
        return f"-margin_t(kappa={self.kappa})"


def _num_classes(model: nn.Module, x: Tensor) -> int:
    with torch.no_grad():
        return model(x[:1]).shape[1]


def _reaches(model: nn.Module, x_adv: Tensor, target: Tensor) -> Tensor:
    with torch.no_grad():
        return model(x_adv).argmax(1) == target


def _search(run, n: int, like: Tensor, start: float, upper: float, rounds: int, grow_on_success: bool):
    """The authors' per-example doubling / bisection search over a value in [0, upper].

    ``run(value (N,)) -> (x_adv, success (N,))``. A round that should grow the value sets the lower
    end to it and doubles it while that stays below the midpoint; a round that should shrink it
    sets the upper end and moves to the midpoint. Returns the best successful value per example
    (smallest when success shrinks, largest when it grows), its x_adv, and whether any succeeded.
    """
    value = torch.full((n,), start, dtype=like.dtype, device=like.device)
    lo, hi = torch.zeros_like(value), torch.full_like(value, upper)
    best_value = torch.full_like(value, float("nan"))
    best_x, found = like.clone(), torch.zeros(n, dtype=torch.bool, device=like.device)
    for _ in range(rounds):
        x_adv, ok = run(value)
        improve = ok & (~found | (value > best_value if grow_on_success else value < best_value))
        best_value = torch.where(improve, value, best_value)
        best_x = torch.where(improve.view(-1, *[1] * (like.dim() - 1)), x_adv, best_x)
        found = found | ok
        grow = ok if grow_on_success else ~ok
        lo, hi = torch.where(grow, value, lo), torch.where(grow, hi, value)
        mid = (lo + hi) / 2
        value = torch.where(grow, torch.minimum(2 * value, mid), mid)
    return best_value, best_x, found


def minimum_eps(model: nn.Module, x: Tensor, y: Tensor, target: Tensor, max_eps: float = 1.0, start: float = 0.05,
                rounds: int = 10, steps: int = 10, kappa: float = 0.1) -> tuple[Tensor, Tensor, Tensor]:
    """Search (1) of PAPER.md section 5: the smallest l-inf eps at which a ``steps``-step targeted
    margin attack (ISA with gamma = 0) reaches ``target``, per example.

    Returns eps_min (N,) (NaN where no eps <= max_eps worked), x_adv (N, C, H, W) found at eps_min
    (x where none), success (N,) bool.
    """
    def run(eps):
        x_adv = ISA(eps, 0.0, steps=steps, kappa=kappa)(model, x, y, target)
        return x_adv, _reaches(model, x_adv, target)

    return _search(run, x.shape[0], x, min(start, max_eps), max_eps, rounds, grow_on_success=False)


def maximum_gamma(model: nn.Module, x: Tensor, y: Tensor, target: Tensor, eps: Tensor, attack_options: dict,
                  start: float = 5e-5, upper: float = 1.0, rounds: int = 10) -> tuple[Tensor, Tensor, Tensor]:
    """Search (2) of PAPER.md section 5: at per-example eps (N,), the largest gamma in [0, upper]
    for which ISA (``attack_options``: measure, distance, explainer, ...) still reaches the target.
    Returns gamma (N,) (NaN where none worked), its x_adv, success (N,)."""
    def run(gamma):
        x_adv = ISA(eps, gamma, **attack_options)(model, x, y, target)
        return x_adv, _reaches(model, x_adv, target)

    return _search(run, x.shape[0], x, start, upper, rounds, grow_on_success=True)


@dataclass
class TradeoffCurves:
    """ISA trade-off points of one attack configuration, per image (PAPER.md section 5).

    ``points[i]`` lists, for image i, dicts ``{"multiplier", "gamma", "eps", "linf", "1class",
    "2class", "allclass"}`` of its real successes: ``linf`` the actual ||x' - x||_inf and the
    three range-normalized discrepancies (the attack's norm) of the evaluation maps."""

    options: dict
    eps_min: list[float]
    target: list[int]
    points: list[list[dict]] = field(default_factory=list)


def isa_tradeoff(model: nn.Module, x: Tensor, y: Tensor, target: Tensor | None = None,
                 multipliers: tuple[float, ...] = (1.0, 1.5, 2.0, 3.0, 4.0), rounds: int = 10,
                 **attack_options) -> TradeoffCurves:
    """Trade-off curves of ISA on images x (N, C, H, W) in [0, 1]: eps_min from search (1), then
    for each eps = p * eps_min (capped at 1) the largest-gamma success of search (2), evaluated
    with the unsmoothed model's maps. ``attack_options`` configure ``ISA`` (measure, distance, explainer...);
    the reported discrepancies use l1 for an l1 attack and l2 (not squared) for l2 and sq_l2 attacks."""
    target = runner_up(model, x, y) if target is None else target
    options = {"measure": "2class", "distance": "l1", "explainer": "cam", **attack_options}
    reported = "l1" if options["distance"] == "l1" else "l2"
    eps_min, _, found = minimum_eps(model, x, y, target, rounds=rounds, steps=options.get("steps", 10),
                                    kappa=options.get("kappa", 0.1))
    explainer = get_explainer(options["explainer"], **options.get("explainer_options", {}))
    num_classes = _num_classes(model, x)
    clean = class_maps(explainer, model, x, None, num_classes)
    curves = TradeoffCurves(options, [float(v) for v in eps_min], [int(t) for t in target],
                            [[] for _ in range(x.shape[0])])
    if not found.any():
        return curves
    idx = found.nonzero().squeeze(1)
    xs, ys, ts = x[idx], y[idx], target[idx]
    for p in multipliers:
        eps = (p * eps_min[idx]).clamp(max=1.0)
        gamma, x_adv, ok = maximum_gamma(model, xs, ys, ts, eps, options, rounds=rounds)
        adv = class_maps(explainer, model, x_adv, None, num_classes)
        linf = (x_adv - xs).flatten(1).abs().amax(1)
        scores = {m: discrepancy(clean[idx], adv, ys, ts, m, reported, "range") for m in MEASURES}
        for j in ok.nonzero().squeeze(1).tolist():
            curves.points[int(idx[j])].append({
                "multiplier": p, "gamma": float(gamma[j]), "eps": float(eps[j]), "linf": float(linf[j]),
                **{m: float(scores[m][j]) for m in MEASURES}})
    return curves


class MinimumEps:
    """The minimum-eps targeted attack as a registered attack: ``minimum_eps`` within [0, eps];
    returns the example found at the smallest successful eps (x where none)."""

    targeted = True

    def __init__(self, eps: float = 1.0, rounds: int = 10, steps: int = 10, kappa: float = 0.1):
        PGD(eps, 0.0, 0)  # validates eps
        check_range("rounds", rounds, integer=True)
        check_range("steps", steps, integer=True)
        check_range("kappa", kappa)
        self.eps, self.rounds, self.steps, self.kappa = eps, rounds, steps, kappa

    def __repr__(self) -> str:
        return f"MinimumEps(eps={self.eps}, rounds={self.rounds}, steps={self.steps})"

    def __call__(self, model: nn.Module, x: Tensor, y: Tensor, target: Tensor | None = None) -> Tensor:
        if self.eps == 0:
            return x.detach().clone()
        target = runner_up(model, x, y) if target is None else target
        return minimum_eps(model, x, y, target, self.eps, rounds=self.rounds, steps=self.steps, kappa=self.kappa)[1]


def bound_points(model: nn.Module, x: Tensor, y: Tensor, target: Tensor | None = None, rounds: int = 10,
                 steps: int = 10) -> dict:
    """Tightness of the 2-class bound (PAPER.md section 4) under minimum-eps targeted attacks.

    For each image whose attack succeeded: ``d2`` = D2 of the l1 discrepancy of CAM / (h w)
    maps and ``half_margin`` = (Z_y(x) - Z_t(x)) / 2. The bound says d2 >= half_margin.
    Returns {"index", "target", "eps", "d2", "half_margin"} lists (successful images only).
    """
    target = runner_up(model, x, y) if target is None else target
    eps, x_adv, found = minimum_eps(model, x, y, target, rounds=rounds, steps=steps)
    with torch.no_grad():
        clean, adv = model.cam(x), model.cam(x_adv)
        grid = clean.shape[2] * clean.shape[3]
        d2 = discrepancy(clean / grid, adv / grid, y, target, "2class", "l1", "raw")
        half = two_class_bound(model(x), y, target)
    keep = found.nonzero().squeeze(1).tolist()
    return {"index": keep, "target": [int(target[i]) for i in keep], "eps": [float(eps[i]) for i in keep],
            "d2": [float(d2[i]) for i in keep], "half_margin": [float(half[i]) for i in keep]}
