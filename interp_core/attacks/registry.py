"""Every attack by name (DESIGN.md contract 7): the app builds its selectboxes from ``ATTACKS``
and the tests run the attack properties over it. Each builds an object called as
``attack(model, x, y, target=None) -> x_adv`` with x (N, C, H, W) in [0, 1]."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from interp_core.attacks.aai import AAI
from interp_core.attacks.isa import ISA, MinimumEps
from interp_core.attacks.presets import fgsm, paper_pgd, pgd


@dataclass(frozen=True)
class AttackSpec:
    """A registered attack: how to build it, its defaults, and whether it needs a target."""

    name: str
    label: str
    build: Callable
    defaults: dict = field(default_factory=dict)
    targeted: bool = False
    description: str = ""


def _pgd_margin(eps: float, **options):
    return pgd(eps, objective="margin", **options)


def _pgd_targeted(eps: float, **options):
    return pgd(eps, objective="margin", targeted=True, **options)


_SPECS = (
    AttackSpec("fgsm", "FGSM", fgsm, {"eps": 0.1, "norm": "linf"}, False, "one signed-gradient step of size eps (cross-entropy)"),
    AttackSpec("pgd", "PGD (cross-entropy)", pgd,
               {"eps": 0.1, "norm": "linf", "steps": 40, "step_size": None, "random_start": True, "restarts": 1,
                "seed": 0}, False, "PGD on the cross-entropy (l-inf or l2); step size 2.5 eps / steps unless given"),
    AttackSpec("pgd-margin", "PGD (C&W margin)", _pgd_margin,
               {"eps": 0.1, "norm": "linf", "steps": 40, "step_size": None, "random_start": True, "restarts": 1, "seed": 0,
                "kappa": 0.1}, False, "l-inf PGD on the C&W margin"),
    AttackSpec("pgd-targeted", "PGD targeted (C&W margin)", _pgd_targeted,
               {"eps": 0.1, "norm": "linf", "steps": 40, "step_size": None, "random_start": True, "restarts": 1, "seed": 0,
                "kappa": 0.1}, True, "targeted l-inf PGD on the margin of the target class"),
    AttackSpec("paper-pgd", "PGD, the authors' protocol", paper_pgd, {"eps": 0.1, "steps": 200, "step_size": 0.01},
               False, "200 signed steps of 0.01 from x, no random start, one restart (PAPER.md section 5)"),
    AttackSpec("isa", "ISA (interpretability sneaking)", ISA,
               {"eps": 0.1, "gamma": 0.0, "measure": "2class", "distance": "l1", "explainer": "cam", "steps": 10,
                "step_scale": 0.2},
               True, "targeted margin + gamma * discrepancy; the authors' budget is 10 soft-sign steps of 0.2 eps, "
                     "a finer one 100 steps of 0.02 eps"),
    AttackSpec("aai", "AAI (top-k interpretation attack)", AAI,
               {"eps": 0.1, "steps": 200, "step_size": 0.01, "k": 8, "random_start": True, "seed": 0},
               False, "moves the true-class CAM off its clean top-k cells, keeping the class"),
    AttackSpec("min-eps", "Minimum-eps targeted", MinimumEps,
               {"eps": 1.0, "rounds": 10, "steps": 10, "step_scale": 0.2},
               True, "bisection for the smallest eps <= eps at which a targeted margin attack (soft-sign steps of "
                     "step_scale * eps) succeeds"),
)
ATTACKS: dict[str, AttackSpec] = {spec.name: spec for spec in _SPECS}


def build_attack(name: str, **params):
    """The attack ``name`` of ``ATTACKS`` with its defaults overridden by ``params``."""
    if name not in ATTACKS:
        raise ValueError(f"unknown attack {name!r}; known: {sorted(ATTACKS)}")
    spec = ATTACKS[name]
    unknown = set(params) - set(spec.defaults) - _EXTRA.get(name, set())
    if unknown:
        raise ValueError(f"attack {name!r} takes {sorted(set(spec.defaults) | _EXTRA.get(name, set()))}, "
                         f"not {sorted(unknown)}")
    return spec.build(**{**spec.defaults, **params})


_EXTRA = {
    "fgsm": {"objective"},
    "pgd": {"kappa", "objective", "targeted"},
    "isa": {"normalization", "explainer_options", "softsign_scale", "kappa", "smooth_beta"},
    "aai": {"explainer", "explainer_options"},
    "min-eps": {"kappa"},
}
