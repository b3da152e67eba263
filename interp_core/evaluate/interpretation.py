"""Evaluations of interpretations under attack (PAPER.md sections 4-5): AAI Kendall tau, ISA
trade-off curves, and the tightness of the 2-class bound."""

from __future__ import annotations

import math
import time

import torch
from torch import Tensor, nn

from interp_core.checks import check_eps_list, check_range
from interp_core.attacks import AAI, authors_targets, bound_points, isa_tradeoff, runner_up
from interp_core.evaluate.robust import Progress
from interp_core.interpret import get_explainer
from interp_core.metrics import correct, kendall_tau, topk_intersection

#: Relative tolerance of the bound check: float32 sums of 49-64 cells.
BOUND_TOL = 1e-4


def choose_targets(model: nn.Module, x: Tensor, y: Tensor, how: str = "runner-up", seed: int = 0) -> Tensor:
    """Attack targets (N,): the runner-up class; (the authors' choice) a seeded uniformly random
    class other than y ("random", torch generator); or "authors", the authors' numpy stream
    (``authors_targets``; pass seed=99 for theirs)."""
    if how == "runner-up":
        return runner_up(model, x, y)
    if how not in ("random", "authors"):
        raise ValueError(f"targets are 'runner-up', 'random' or 'authors', got {how!r}")
    with torch.no_grad():
        k = model(x[:1]).shape[1]
    if how == "authors":
        return authors_targets(y, k, seed)
    shift = torch.randint(1, k, y.shape, generator=torch.Generator().manual_seed(seed)).to(y.device)
    return (y + shift) % k


def _nanmean(values: Tensor) -> float:
    values = values[~torch.isnan(values)]
    return float(values.mean()) if values.numel() else math.nan


def aai_evaluation(model: nn.Module, x: Tensor, y: Tensor, eps: list[float], k: int = 8, steps: int = 200,
                   step_size: float = 0.01, seed: int = 0, explainer: str = "cam", batch_size: int = 100,
                   subset: str = "", progress: Progress | None = None) -> dict:
    """AAI top-k attack at each eps on x (N, C, H, W) in [0, 1]: mean Kendall tau (and top-k
    intersection) between clean and attacked maps of class y, over images whose prediction did
    not change. Higher = more robust interpretation.

    Returns {"protocol", "n", "subset", "results": [{"eps", "kendall_tau", "topk_intersection",
    "kept"}], "seconds"}.
    """
    check_eps_list(eps)
    check_range("batch_size", batch_size, integer=True)
    AAI(eps[0], steps=steps, step_size=step_size, k=k, seed=seed, explainer=explainer)  # checks the rest now
    started = time.perf_counter()
    maps = get_explainer(explainer)
    batches = -(-len(y) // batch_size)
    results = []
    for i, value in enumerate(eps):
        attack = AAI(value, steps=steps, step_size=step_size, k=k, seed=seed, explainer=explainer)
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
                "restarts": 1, "seed": seed, "explainer": explainer, "norm": "linf"}
    return {"protocol": protocol, "n": len(y), "subset": subset, "results": results,
            "seconds": time.perf_counter() - started}


def bound_evaluation(model: nn.Module, x: Tensor, y: Tensor, targets: str = "random", rounds: int = 10,
                     steps: int = 10, batch_size: int = 100, subset: str = "",
                     progress: Progress | None = None) -> dict:
    """The 2-class bound under minimum-eps targeted attacks (PAPER.md section 4), on images x
    (N, C, H, W) in [0, 1] that the model classifies correctly.

    Returns {"protocol", "n", "attempted", "violations", "points": [{"index", "target", "eps",
    "half_margin", "d2"}], "seconds"}: d2 = D2 of CAM / (h w) (l1), half_margin = (Z_y - Z_t) / 2
    at x; a violation is d2 < half_margin (relative tolerance ``BOUND_TOL``).
    """
    check_range("rounds", rounds, integer=True)
    check_range("steps", steps, integer=True)
    check_range("batch_size", batch_size, integer=True)
    started = time.perf_counter()
    with torch.no_grad():
        ok = correct(model(x), y)
    index = ok.nonzero().squeeze(1)
    points, batches = [], -(-len(index) // batch_size)
    for b, start in enumerate(range(0, len(index), batch_size)):
        idx = index[start:start + batch_size]
        xb, yb = x[idx], y[idx]
        found = bound_points(model, xb, yb, choose_targets(model, xb, yb, targets, seed=b), rounds, steps)
        for j, i in enumerate(found["index"]):
            points.append({"index": int(idx[i]), "target": found["target"][j], "eps": found["eps"][j],
                           "half_margin": found["half_margin"][j], "d2": found["d2"][j]})
        if progress:
            progress(b + 1, batches)
    violations = sum(p["d2"] < p["half_margin"] - BOUND_TOL * max(1.0, abs(p["half_margin"])) for p in points)
    protocol = {"attack": "min-eps targeted margin (ISA, gamma=0)", "rounds": rounds, "steps": steps,
                "step_size": "0.2 eps soft-sign", "start_eps": 0.05, "targets": targets, "kappa": 0.1}
    return {"protocol": protocol, "n": len(y), "subset": subset, "attempted": int(len(index)),
            "violations": int(violations), "points": points, "seconds": time.perf_counter() - started}


def isa_evaluation(model: nn.Module, x: Tensor, y: Tensor, measures: tuple[str, ...] = ("1class", "2class"),
                   distance: str = "l1", explainer: str = "cam", multipliers: tuple[float, ...] = (1.0, 1.5, 2.0, 3.0, 4.0),
                   targets: str = "random", rounds: int = 10, explainer_options: dict | None = None,
                   subset: str = "", progress: Progress | None = None) -> dict:
    """ISA trade-off curves on images x (N, C, H, W) in [0, 1], one per attack measure.

    Returns {"protocol", "n", "subset", "curves": [{"measure", "eps_min", "points": [{"image",
    "multiplier", "gamma", "eps", "linf", "discrepancy", "best_so_far", "1class", "2class", "allclass"}],
    "summary": [{"multiplier", "successes", "mean_linf", "mean_discrepancy"}]}], "seconds"}.
    ``discrepancy`` is the range-normalized discrepancy of the measure the attack used;
    ``best_so_far`` its minimum over this and the smaller multipliers (an example within a smaller
    eps is one within a larger eps too, as in the authors' plots); the summary averages it.
    """
    started = time.perf_counter()
    target = choose_targets(model, x, y, targets)
    curves = []
    for i, measure in enumerate(measures):
        found = isa_tradeoff(model, x, y, target, multipliers, rounds, measure=measure, distance=distance,
                             explainer=explainer, explainer_options=explainer_options or {})
        points = []
        for img, per in enumerate(found.points):
            best = math.inf
            for p in sorted(per, key=lambda q: q["multiplier"]):
                # an example found within a smaller eps is also one within a larger eps
                best = min(best, p[measure])
                points.append({"image": img, **p, "discrepancy": p[measure], "best_so_far": best})
        summary = []
        for p in multipliers:
            at = [q for q in points if q["multiplier"] == p]
            summary.append({"multiplier": p, "successes": len(at),
                            "mean_linf": sum(q["linf"] for q in at) / len(at) if at else math.nan,
                            "mean_discrepancy": sum(q["best_so_far"] for q in at) / len(at) if at else math.nan})
        curves.append({"measure": measure, "eps_min": found.eps_min, "points": points, "summary": summary})
        if progress:
            progress(i + 1, len(measures))
    protocol = {"attack": "isa", "distance": distance, "explainer": explainer, "multipliers": list(multipliers),
                "rounds": rounds, "steps": 10, "step_size": "0.2 eps soft-sign (clip 1000 grad)",
                "gamma_start": 5e-5, "eps_start": 0.05, "targets": targets, "normalization": "range"}
    return {"protocol": protocol, "n": len(y), "subset": subset, "curves": curves,
            "seconds": time.perf_counter() - started}
