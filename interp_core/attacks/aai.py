"""Attack against interpretability, top-k (AAI; docs/method.md#aai): keep the image's class, move
the true-class CAM away from its clean top-k cells."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from interp_core.attacks.engine import PGD, StepCallback, check_settings
from interp_core.checks import check_range
from interp_core.interpret import get_explainer


class AAI:
    """Maximize -sum_{p in top-k of clean CAM_y} CAM_y(x')[p] by PGD (l-inf, sign steps, random
    uniform start): k = 8, 200 steps, step 0.01 in the paper. Returns the final iterate, as the
    paper does: evaluations keep only the images whose prediction did not change (a fallback to
    x would count them as perfectly robust). ``explainer``: any map of the registry, configured
    by ``explainer_options`` (e.g. ``{"form": "authors"}`` for the authors' IG map).

    ``aai(model, x, y, target=None)``: x (N, C, H, W) in [0, 1]; y the class whose map is attacked.
    """

    targeted = False

    def __init__(self, eps: float, steps: int = 200, step_size: float = 0.01, k: int = 8,
                 random_start: bool = True, seed: int | None = 0, explainer: str = "cam",
                 explainer_options: dict | None = None):
        check_range("k", k, integer=True)
        if seed is not None:
            check_range("seed", seed, integer=True)
        check_settings(eps, step_size, steps, random_start=random_start, keep_best=False)
        self.options = dict(random_start=random_start, seed=seed, keep_best=False)
        self.eps, self.steps, self.step_size, self.k = eps, steps, step_size, k
        self.explainer_name, self.explainer = explainer, get_explainer(explainer, **(explainer_options or {}))

    def __repr__(self) -> str:
        return f"AAI(eps={self.eps}, steps={self.steps}, step_size={self.step_size}, k={self.k})"

    def __call__(self, model: nn.Module, x: Tensor, y: Tensor, target: Tensor | None = None, *,
                 callback: StepCallback | None = None) -> Tensor:
        """``callback(step, x_adv)`` sees every iterate, as in ``PGD.__call__``."""
        clean = self.explainer(model, x, y).flatten(1)
        if self.k > clean.shape[1]:
            raise ValueError(f"k = {self.k} exceeds the {clean.shape[1]} cells of the map")
        mask = torch.zeros_like(clean).scatter_(1, clean.topk(self.k, dim=1).indices, 1.0)

        def objective(model_, x_adv, x_, y_, target_):
            return -(self.explainer(model_, x_adv, y_, create_graph=True).flatten(1) * mask).sum(1)

        return PGD(self.eps, self.step_size, self.steps, objective=objective, **self.options)(model, x, y,
                                                                                             callback=callback)
