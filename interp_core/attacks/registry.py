"""Every attack by name (docs/design.md): the app builds its selectboxes from ``ATTACKS`` and the
tests run the attack properties over it. Each entry builds an :class:`~interp_core.attacks.Attack`,
called as ``attack(model, x, y, target=None, *, callback=None) -> x_adv`` with x (N, C, H, W) in
[0, 1].

The builders own their parameters and defaults: ``build_attack`` checks the parameters it is
given by binding them to the builder's signature, and ``AttackSpec.defaults`` reads the defaults
of the parameters an app shows (``AttackSpec.params``) from that signature. Each attack has one
budget parameter (``AttackSpec.budget``): ``eps``, an l-inf or l2 radius in the pixels' [0, 1]
units, or, for the unforeseen attacks (registered under their kinds of ``UAR_ATTACKS``),
``distortion`` on the attack's own scale. The budget has no default except for the minimum-eps
search (its upper limit): the threat model depends on the dataset, so callers always choose it.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from functools import partial
from typing import Callable

from interp_core.attacks.aai import AAI
from interp_core.attacks.isa import ISA, MinimumEps
from interp_core.attacks.presets import fgsm, paper_pgd, pgd
from interp_core.attacks.uar import UARAttack
from interp_core.datasets import DATASETS


#: What an attack tries to do (``AttackSpec.goal``): change the prediction to a wrong class, make
#: the target t the prediction, or keep the clean prediction while moving the map (AAI).
GOALS = ("flip", "reach", "keep")


@dataclass(frozen=True)
class AttackSpec:
    """A registered attack: its builder, the parameters an app shows (in order, the budget first),
    whether it needs a target, a one-line description, the name of its budget parameter ("eps" or
    "distortion", see the module docstring), whether it tries to keep the label (AAI: it moves the
    map, not the class) and whether it runs on correctly classified images only (ISA, as the paper
    runs it)."""

    name: str
    label: str
    build: Callable
    params: tuple[str, ...]
    targeted: bool = False
    description: str = ""
    budget: str = "eps"
    keeps_label: bool = False
    needs_correct: bool = False

    @property
    def goal(self) -> str:
        """What the attack tries to do (one of ``GOALS``): "keep" the clean prediction while moving
        the map, "reach" the target t, or "flip" the prediction to a wrong class."""
        return "keep" if self.keeps_label else "reach" if self.targeted else "flip"

    @property
    def defaults(self) -> dict:
        """The builder's defaults of the shown parameters, in ``params`` order; a parameter without
        a default (the budget of most attacks) is left out."""
        signature = inspect.signature(self.build).parameters
        return {p: signature[p].default for p in self.params if signature[p].default is not inspect.Parameter.empty}

    def accepted(self) -> list[str]:
        """Every parameter the builder takes."""
        return [p.name for p in inspect.signature(self.build).parameters.values()
                if p.kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)]


_PGD_PARAMS = ("eps", "norm", "steps", "step_size", "random_start", "restarts", "seed")
_SPECS = (
    AttackSpec("fgsm", "FGSM", fgsm, ("eps", "norm"), False, "one signed-gradient step of size eps (cross-entropy)"),
    AttackSpec("pgd", "PGD (cross-entropy)", pgd, _PGD_PARAMS, False,
               "PGD on the cross-entropy (l-inf or l2); step size 2.5 eps / steps unless given"),
    AttackSpec("pgd-margin", "PGD (C&W margin)", partial(pgd, objective="margin"), _PGD_PARAMS + ("kappa",), False,
               "PGD on the C&W margin"),
    AttackSpec("pgd-targeted", "PGD targeted (C&W margin)", partial(pgd, objective="margin", targeted=True),
               _PGD_PARAMS + ("kappa",), True, "targeted PGD on the margin of the target class"),
    AttackSpec("paper-pgd", "PGD, the authors' protocol", paper_pgd, ("eps", "steps", "step_size"), False,
               "200 signed steps of 0.01 from x, no random start, one restart (docs/method.md, Attacks)"),
    AttackSpec("isa", "ISA (interpretability sneaking)", partial(ISA, search_gamma=True),
               ("eps", "search_gamma", "gamma", "measure", "distance", "explainer", "steps", "step_scale"), True,
               "targeted margin + gamma * discrepancy, gamma searched (the largest that still reaches the target, "
               "as the authors) or fixed; the authors' budget is 10 soft-sign steps of 0.2 eps, a finer one 100 "
               "steps of 0.02 eps", needs_correct=True),
    AttackSpec("aai", "AAI (top-k interpretation attack)", AAI,
               ("eps", "steps", "step_size", "k", "random_start", "seed"), False,
               "moves the true-class CAM off its clean top-k cells, keeping the class", keeps_label=True),
    AttackSpec("min-eps", "Minimum-eps targeted", MinimumEps,
               ("eps", "rounds", "steps", "step_scale", "random_start", "restarts", "seed"), True,
               "bisection for the smallest eps <= eps at which a targeted margin attack (soft-sign steps of "
               "step_scale * eps, from random starts) succeeds: the eps found bounds the minimum from above"),
)
#: What each unforeseen attack optimizes toward its target (docs/method.md#uar).
_UNFORESEEN = {
    "fog": ("Fog (unforeseen)", "a fractal fog whose random displacements are optimized; distortion: the fog's "
                                "weight on the 0-255 scale"),
    "gabor": ("Gabor noise (unforeseen)", "a sparse field convolved with a random Gabor kernel, added at the "
                                          "distortion on the 0-255 scale"),
    "snow": ("Snow (unforeseen)", "snowflake intensities on a grid, the flake layer added times the distortion "
                                  "to a discoloured image"),
    "jpeg-linf": ("JPEG l-inf (unforeseen)", "the image's quantized JPEG coefficients shifted by v/2 steps, "
                                             "||v||_inf <= distortion"),
    "jpeg-l2": ("JPEG l2 (unforeseen)", "the image's quantized JPEG coefficients shifted by v/2 steps, "
                                        "||v||_2 <= distortion"),
    "jpeg-l1": ("JPEG l1 (unforeseen)", "the image's quantized JPEG coefficients shifted by v/2 steps, "
                                        "||v||_1 <= distortion (Frank-Wolfe steps)"),
}
_SPECS += tuple(AttackSpec(kind, label, partial(UARAttack, kind), ("distortion", "steps", "seed"), True,
                           f"{what}; {DATASETS['cifar10'].uar_budgets[kind]:g} is the authors' CIFAR-10 budget",
                           budget="distortion")
                for kind, (label, what) in _UNFORESEEN.items())
ATTACKS: dict[str, AttackSpec] = {spec.name: spec for spec in _SPECS}


def build_attack(name: str, **params):
    """The attack ``name`` of ``ATTACKS`` built with ``params`` (the builder's defaults for the
    rest). Raises ValueError for an unknown name, or for parameters the builder does not take or
    misses (the message lists the ones it takes)."""
    if name not in ATTACKS:
        raise ValueError(f"unknown attack {name!r}; known: {sorted(ATTACKS)}")
    spec = ATTACKS[name]
    unknown = sorted(set(params) - set(spec.accepted()))
    if unknown:
        raise ValueError(f"attack {name!r} takes {spec.accepted()}, not {unknown}")
    try:
        inspect.signature(spec.build).bind(**params)
    except TypeError as err:  # a required parameter (eps) is missing
        raise ValueError(f"attack {name!r} takes {spec.accepted()}: {err}") from None
    return spec.build(**params)
