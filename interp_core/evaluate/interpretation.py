"""Evaluations of interpretations under attack (docs/method.md#evaluation): AAI Kendall tau, ISA
trade-off curves, and the tightness of the 2-class bound."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from interp_core.checks import check_eps_list, check_range
from interp_core.attacks import AAI, bound_points, isa_tradeoff, runner_up
from interp_core.attacks.isa import ISA_BUDGETS, SCALES, envelope
from interp_core.evaluate.robust import EvaluationRecord, Progress
from interp_core.interpret import get_explainer
from interp_core.metrics import correct, kendall_tau, topk_intersection

#: Relative tolerance of the bound check: float32 sums of 49-64 cells.
BOUND_TOL = 1e-4
#: A trade-off curve (a running minimum, so it never rises) "falls" when its mean at the largest
#: multiplier is below this share of its mean at the smallest; otherwise it "stays level".
LEVEL_BAND = 0.9


@dataclass
class AAIResult(EvaluationRecord):
    """The AAI top-k attack per eps (``aai_evaluation``): ``results`` = [{"eps", "kendall_tau" and
    "topk_intersection" (means over the images that kept their class, NaN where none did; tau in
    [-1, 1], intersection in [0, 1]), "kept" (how many images kept their class)}] in the order of
    the eps asked for; the protocol that produced them, the number of images, the evaluation
    subset and the wall-clock seconds."""

    results: list[dict]
    seconds: float


@dataclass
class BoundResult(EvaluationRecord):
    """The 2-class bound under minimum-eps targeted attacks (``bound_evaluation``): of ``n``
    images, ``attempted`` classified correctly and attacked; ``points`` = [{"index" (into x),
    "target", "eps" (the smallest eps found), "half_margin" ((Z_y - Z_t) / 2 at x), "d2" (D2 of
    CAM / (h w), l1)}], one per successful attack; ``violations``: points with d2 < half_margin
    (relative tolerance ``BOUND_TOL``); the protocol, the evaluation subset and the wall-clock
    seconds."""

    attempted: int
    violations: int
    points: list[dict]
    seconds: float


@dataclass
class ISAResult(EvaluationRecord):
    """ISA trade-off curves (``isa_evaluation``) of ``n`` images: ``images`` = [{"image" (index
    into x), "label", "target"}]; ``curves``, one per attack measure, = [{"measure", "eps_min" and
    "bound" (per image; bound None for other maps than CAM and distances than l1), "skipped" (per
    image, why it has no points; "" when it has some), "points": [{"image", "multiplier", "gamma", "eps",
    "linf", "raw", "range", "envelope_raw", "envelope_range", "raw_<m>" and "range_<m>" for m in
    1class, 2class, allclass}], "summary": [{"multiplier", "successes", "images", "mean_linf", "mean_raw",
    "mean_range", "mean_bound"}]}] (the keys as ``isa_evaluation`` explains them); the protocol,
    the evaluation subset and the wall-clock seconds.

    ``from_dict`` reads back a stored ``to_dict()`` (the reproduction's partial results)."""

    images: list[dict]
    curves: list[dict]
    seconds: float

    @classmethod
    def from_dict(cls, stored: dict) -> ISAResult:
        return cls(**stored)


def choose_targets(model: nn.Module, x: Tensor, y: Tensor, how: str = "runner-up", seed: int = 0) -> Tensor:
    """Attack targets (N,) of images x (N, C, H, W) with labels y (N,): the runner-up class, or
    (the authors' choice) a seeded uniformly random class other than y ("random", torch
    generator). The authors' own numpy stream is ``evaluate.data.resolve_targets``'s "authors"."""
    if how == "runner-up":
        return runner_up(model, x, y)
    if how != "random":
        raise ValueError(f"targets are 'runner-up' or 'random', got {how!r}")
    with torch.no_grad():
        k = model(x[:1]).shape[1]
    shift = torch.randint(1, k, y.shape, generator=torch.Generator().manual_seed(seed)).to(y.device)
    return (y + shift) % k


def _nanmean(values: Tensor) -> float:
    values = values[~torch.isnan(values)]
    return float(values.mean()) if values.numel() else math.nan


def aai_evaluation(model: nn.Module, x: Tensor, y: Tensor, eps: list[float], k: int = 8, steps: int = 200,
                   step_size: float = 0.01, seed: int = 0, explainer: str = "cam", explainer_options: dict | None = None,
                   batch_size: int = 100, subset: str = "", progress: Progress | None = None) -> AAIResult:
    """AAI top-k attack at each eps on x (N, C, H, W) in [0, 1]: mean Kendall tau (and top-k
    intersection) between clean and attacked maps of class y, over images whose prediction did
    not change. Higher = more robust interpretation. ``explainer_options`` configure the map (e.g.
    ``{"form": "authors"}`` for the authors' IG map); ``seed`` seeds the random start.
    Returns an ``AAIResult``.
    """
    check_eps_list(eps)
    check_range("batch_size", batch_size, integer=True)
    AAI(eps[0], steps=steps, step_size=step_size, k=k, seed=seed, explainer=explainer)  # checks the rest now
    started = time.perf_counter()
    explainer_options = dict(explainer_options or {})
    maps = get_explainer(explainer, **explainer_options)
    batches = -(-len(y) // batch_size)
    results = []
    for i, value in enumerate(eps):
        attack = AAI(value, steps=steps, step_size=step_size, k=k, seed=seed, explainer=explainer,
                     explainer_options=explainer_options)
        taus, tops = [], []
        for b, start in enumerate(range(0, len(y), batch_size)):
            xb, yb = x[start:start + batch_size], y[start:start + batch_size]
            x_adv = attack(model, xb, yb)
            with torch.no_grad():
                kept = model(x_adv).argmax(1) == model(xb).argmax(1)
            clean, adv = maps(model, xb, yb), maps(model, x_adv, yb)
            taus.append(kendall_tau(clean, adv)[kept])
            tops.append(topk_intersection(clean, adv, k)[kept])
            if progress:
                progress(i * batches + b + 1, len(eps) * batches)
        tau, top = torch.cat(taus), torch.cat(tops)
        results.append({"eps": value, "kendall_tau": _nanmean(tau), "topk_intersection": _nanmean(top),
                        "kept": int(tau.numel())})
    protocol = {"attack": "aai", "k": k, "steps": steps, "step_size": step_size, "random_start": True,
                "restarts": 1, "seed": seed, "explainer": explainer, "explainer_options": explainer_options, "norm": "linf"}
    return AAIResult(protocol, len(y), subset, results, time.perf_counter() - started)


def _targets(model: nn.Module, x: Tensor, y: Tensor, targets: str | Tensor, seed: int) -> tuple[Tensor, str]:
    """(targets (N,), how they were chosen): a tensor is used as given (e.g. the authors' stream)."""
    if isinstance(targets, Tensor):
        if targets.shape != y.shape:
            raise ValueError(f"targets must be (N,) classes for {len(y)} images, got shape {tuple(targets.shape)}")
        return targets.to(y.device).long(), "given"
    return choose_targets(model, x, y, targets, seed), targets if targets == "runner-up" else f"{targets}, seed {seed}"


def bound_evaluation(model: nn.Module, x: Tensor, y: Tensor, targets: str | Tensor = "random", rounds: int = 10,
                     steps: int = 10, step_scale: float = 0.2, seed: int = 0, batch_size: int = 100,
                     subset: str = "", targets_label: str | None = None,
                     progress: Progress | None = None) -> BoundResult:
    """The 2-class bound under minimum-eps targeted attacks (docs/method.md#bound), on images x
    (N, C, H, W) in [0, 1] that the model classifies correctly.

    ``targets``: "runner-up", "random" (seeded by ``seed``) or a tensor (N,) of targets for every
    image of x (e.g. ``evaluate.data.authors_set_targets``; ``targets_label`` names it in the
    protocol). The attack takes ``steps`` soft-sign steps of ``step_scale * eps``.
    Returns a ``BoundResult``.
    """
    check_range("rounds", rounds, integer=True)
    check_range("steps", steps, integer=True)
    check_range("batch_size", batch_size, integer=True)
    started = time.perf_counter()
    target, how = _targets(model, x, y, targets, seed)
    with torch.no_grad():
        ok = correct(model(x), y)
    index = ok.nonzero().squeeze(1)
    points, batches = [], -(-len(index) // batch_size)
    for b, start in enumerate(range(0, len(index), batch_size)):
        idx = index[start:start + batch_size]
        found = bound_points(model, x[idx], y[idx], target[idx], rounds, steps, step_scale)
        for j, i in enumerate(found["index"]):
            points.append({"index": int(idx[i]), "target": found["target"][j], "eps": found["eps"][j],
                           "half_margin": found["half_margin"][j], "d2": found["d2"][j]})
        if progress:
            progress(b + 1, batches)
    violations = sum(p["d2"] < p["half_margin"] - BOUND_TOL * max(1.0, abs(p["half_margin"])) for p in points)
    protocol = {"attack": "min-eps targeted margin (ISA, gamma=0)", "rounds": rounds, "steps": steps,
                "step_size": f"{step_scale:g} eps soft-sign", "start_eps": 0.05, "targets": targets_label or how,
                "kappa": 0.1}
    return BoundResult(protocol, len(y), subset, int(len(index)), int(violations), points,
                       time.perf_counter() - started)


def budget_name(steps: int, step_scale: float) -> str:
    """The name of an ISA budget in ``ISA_BUDGETS`` ("custom" for any other)."""
    return next((name for name, b in ISA_BUDGETS.items() if (b["steps"], b["step_scale"]) == (steps, step_scale)),
                "custom")


def isa_evaluation(model: nn.Module, x: Tensor, y: Tensor, measures: tuple[str, ...] = ("1class", "2class"),
                   distance: str = "l1", explainer: str = "cam", multipliers: tuple[float, ...] = (1.0, 1.5, 2.0, 3.0, 4.0),
                   targets: str | Tensor = "random", rounds: int = 10, explainer_options: dict | None = None,
                   steps: int = 10, step_scale: float = 0.2, seed: int = 0, subset: str = "",
                   targets_label: str | None = None, progress: Progress | None = None) -> ISAResult:
    """ISA trade-off curves on images x (N, C, H, W) in [0, 1], one per attack measure (each curve
    reports the discrepancy its attack minimized), with ``steps`` soft-sign steps of
    ``step_scale * eps`` in every search (``ISA_BUDGETS``: "authors" 10 x 0.2, "fine" 100 x 0.02).
    ``targets`` as in ``bound_evaluation``.

    Returns an ``ISAResult``. In its curves, ``raw`` / ``range``: the attack measure's discrepancy, raw in the attack's distance (the
    authors' trade-off figure, against the nominal ``eps``) or range-normalized (their ISA
    statistics, against the actual ``linf``); ``envelope_*`` the authors' running minimum over
    this and the smaller multipliers. ``bound`` per image: 1/2 h w (Z_y - Z_t), the floor of the
    raw 2-class l1 CAM discrepancy (None for other maps and distances). The summary at multiplier
    p averages, over the images with a success at eps <= p eps_min, the envelope at p
    (``successes``: images with a largest-gamma success at exactly p).
    """
    started = time.perf_counter()
    target, how = _targets(model, x, y, targets, seed)
    curves = []
    for i, measure in enumerate(measures):
        found = isa_tradeoff(model, x, y, target, multipliers, rounds, measure=measure, distance=distance,
                             explainer=explainer, explainer_options=explainer_options or {}, steps=steps,
                             step_scale=step_scale)
        points = []
        for img, per in enumerate(found.points):
            ordered = sorted(per, key=lambda q: q["multiplier"])
            lows = {scale: envelope(ordered, f"{scale}_{measure}") for scale in SCALES}
            for j, p in enumerate(ordered):
                points.append({"image": img, **p, **{scale: p[f"{scale}_{measure}"] for scale in SCALES},
                               **{f"envelope_{scale}": lows[scale][j] for scale in SCALES}})
        curves.append({"measure": measure, "eps_min": found.eps_min, "bound": found.bound, "skipped": found.skipped,
                       "points": points, "summary": _tradeoff_summary(points, multipliers, found.bound)})
        if progress:
            progress(i + 1, len(measures))
    protocol = {"attack": "isa", "distance": distance, "explainer": explainer,
                "explainer_options": dict(explainer_options or {}), "multipliers": list(multipliers),
                "rounds": rounds, "budget": budget_name(steps, step_scale), "steps": steps,
                "step_size": f"{step_scale:g} eps soft-sign (clip 1000 grad)", "step_scale": step_scale,
                "gamma_start": 5e-5, "eps_start": 0.05, "targets": targets_label or how}
    images = [{"image": i, "label": int(y[i]), "target": int(target[i])} for i in range(len(y))]
    return ISAResult(protocol, len(y), subset, images, curves, time.perf_counter() - started)


def _at_multiplier(points: list[dict], p: float) -> dict[int, dict]:
    """Per image, its last point with multiplier <= p (its envelope there: an example found within
    a smaller eps is one within eps = p eps_min too); points are in multiplier order per image."""
    best: dict[int, dict] = {}
    for q in points:
        if q["multiplier"] <= p:
            best[q["image"]] = q
    return best


def _tradeoff_summary(points: list[dict], multipliers: tuple[float, ...], bound: list[float | None]) -> list[dict]:
    rows = []
    for p in sorted(set(multipliers) | {1.0}):
        at = list(_at_multiplier(points, p).values())
        bounds = [bound[q["image"]] for q in at if bound[q["image"]] is not None]
        rows.append({"multiplier": p, "successes": sum(q["multiplier"] == p and q["gamma"] > 0 for q in points),
                     "images": len(at), "mean_linf": _mean([q["linf"] for q in at]),
                     "mean_raw": _mean([q["envelope_raw"] for q in at]),
                     "mean_range": _mean([q["envelope_range"] for q in at]),
                     "mean_bound": _mean(bounds) if bounds else None})
    return rows


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else math.nan


def tradeoff_findings(result: ISAResult, scale: str = "raw") -> dict:
    """What an ``isa_evaluation`` result shows, computed from its numbers, per attack measure:
    {measure: {"first", "last" (the smallest and largest multipliers), "start", "end" (the mean
    envelope there over the images with a success, as in the summary), "ratio" (end / start),
    "trend" ("falls" or "stays level", by ``LEVEL_BAND``), "images", and for a curve with
    a bound (2-class, raw) "over_bound_min" (the smallest discrepancy / bound over every point)
    and "over_bound_end" (the mean envelope / bound at the largest multiplier)}}.
    ``scale``: "raw" or "range" (the bound applies to "raw" only)."""
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {SCALES}, got {scale!r}")
    found = {}
    for curve in result.curves:
        first, last = curve["summary"][0]["multiplier"], curve["summary"][-1]["multiplier"]
        at_first, at_last = _at_multiplier(curve["points"], first), _at_multiplier(curve["points"], last)
        both = sorted(set(at_first) & set(at_last))
        key = f"envelope_{scale}"
        start, end = _mean([at_first[i][key] for i in both]), _mean([at_last[i][key] for i in both])
        ratio = end / start if both and start > 0 else math.nan
        trend = "not measured" if math.isnan(ratio) else "falls" if ratio < LEVEL_BAND else "stays level"
        entry = {"first": first, "last": last, "start": start, "end": end, "ratio": ratio, "trend": trend,
                 "images": len(both)}
        bound = curve["bound"]
        if scale == "raw" and curve["measure"] == "2class" and curve["points"] and all(
                bound[q["image"]] for q in curve["points"]):
            entry["over_bound_min"] = min(q["raw"] / bound[q["image"]] for q in curve["points"])
            entry["over_bound_end"] = _mean([q["envelope_raw"] / bound[i] for i, q in at_last.items()])
        found[curve["measure"]] = entry
    return found


def tradeoff_text(result: ISAResult, scale: str = "raw") -> str:
    """One sentence per attack measure stating what ``tradeoff_findings`` measured."""
    what = "raw discrepancy (running minimum)" if scale == "raw" else "range-normalized discrepancy (running minimum)"
    lines = []
    for measure, f in tradeoff_findings(result, scale).items():
        if f["trend"] == "not measured":
            lines.append(f"{measure}: no image reached the target at both {f['first']:g}x and {f['last']:g}x eps_min.")
            continue
        line = (f"{measure}: the mean {what} {f['trend']} from {f['start']:.4g} at {f['first']:g}x eps_min to "
                f"{f['end']:.4g} at {f['last']:g}x (ratio {f['ratio']:.2f}, {f['images']} images)")
        if "over_bound_min" in f:
            line += (f"; every 2-class point lies at or above the bound 1/2 h w (Z_y - Z_t): on average "
                     f"{f['over_bound_end']:.2f}x the bound at {f['last']:g}x, the closest point "
                     f"{f['over_bound_min']:.2f}x")
        lines.append(line + ".")
    return "\n".join(lines)
