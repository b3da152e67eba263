"""How long an evaluation will take, from a measured per-step cost: the app's Robustness page says
so before the user commits minutes of a shared machine.

An attack's cost grows with its gradient steps; the fixed part (start point, final scoring) is
small. ``step_seconds`` times one attack at two step counts on the very images to evaluate and
keeps the difference per step; ``robustness_seconds`` multiplies it by the steps the chosen
protocol runs (``interp_core.evaluate.robust_accuracy`` and ``aai_evaluation``).
"""

from __future__ import annotations

import time
from typing import Callable

import torch
from torch import Tensor, nn

from interp_core.attacks import AAI, PaperProtocol
from interp_core.evaluate import RETESTS


def step_seconds(make_attack: Callable[[int], Callable], model: nn.Module, x: Tensor, y: Tensor,
                 steps: tuple[int, int] = (1, 4)) -> float:
    """Seconds per gradient step of ``make_attack(steps)(model, x, y)`` on x (N, C, H, W) in [0, 1]:
    the time at ``steps[1]`` minus the time at ``steps[0]`` (each the faster of two runs), per step;
    never below 0."""
    def timed(k: int) -> float:
        attack, best = make_attack(k), float("inf")
        for _ in range(2):
            start = time.perf_counter()
            attack(model, x, y)
            best = min(best, time.perf_counter() - start)
        return best

    low, high = steps
    return max(timed(high) - timed(low), 0.0) / (high - low)


def measure_costs(model: nn.Module, x: Tensor, y: Tensor, eps: float) -> dict[str, float]:
    """Seconds per step of the authors' PGD ("pgd") and of AAI ("aai") for ``model`` on x, y at
    ``eps``, measured (see ``step_seconds``)."""
    with torch.no_grad():
        model(x[:1])  # first call's set-up is not a step
    return {"pgd": step_seconds(lambda k: PaperProtocol(steps=k).attack(eps), model, x, y),
            "aai": step_seconds(lambda k: AAI(eps, steps=k), model, x, y)}


def robustness_seconds(costs: dict[str, float], eps: list[float], protocol: str, steps: int, restarts: int,
                       aai: bool, aai_steps: int, retest: str | None = None) -> float:
    """Estimated seconds of one model's Robustness evaluation, at most (the extra attacks run only
    on what the earlier ones left standing, and stop at an image's first success): per eps > 0 (eps
    0 is the clean accuracy, never attacked) the authors' PGD (``steps``), under "strong" also PGD-CE
    and PGD-margin with ``restarts`` random starts each, with a ``retest`` (``interp_core.evaluate.RETESTS``) its two random-start
    PGD runs, and with ``aai`` the AAI attack (``aai_steps``); AutoAttack and
    the re-test's Square are not included. ``costs`` come from ``measure_costs`` on the same images."""
    attacked = [e for e in eps if e > 0]
    pgd_steps = len(attacked) * steps + (2 * restarts * steps * len(attacked) if protocol == "strong" else 0)
    if retest:
        pgd_steps += 2 * RETESTS[retest]["restarts"] * RETESTS[retest]["steps"] * len(attacked)
    return costs["pgd"] * pgd_steps + (costs["aai"] * aai_steps * len(attacked) if aai else 0.0)
