"""Attacks (docs/method.md#attacks): one projected-gradient engine (``PGD``) and its configurations.

- ``fgsm``, ``pgd`` (cross-entropy or C&W margin, untargeted or targeted), ``paper_pgd`` and
  ``PaperProtocol`` (the authors' evaluation: 200 sign steps of 0.01, no random start), with their
  subset ``PAPER_SUBSET`` (the eps grids are the datasets' records, ``DatasetInfo.paper_eps``);
- ``ISA`` (interpretability sneaking) and its step budgets ``ISA_BUDGETS``, its searches ``minimum_eps`` / ``maximum_gamma`` and the
  trade-off curves ``isa_tradeoff``; ``MinimumEps`` and ``bound_points`` (section 4's bound);
- ``AAI`` (top-k attack on the interpretation);
- ``UARAttack``: the unforeseen attacks (fog, Gabor, snow, JPEG l-inf / l2 / l1) with the authors'
  kinds ``UAR_ATTACKS`` (budgets: ``DatasetInfo.uar_budgets``) and target stream ``authors_targets``;
- ``ATTACKS`` / ``build_attack``: every attack by name.

Every attack implements the ``Attack`` protocol: a ``targeted`` flag and
``attack(model, x, y, target=None, *, callback=None) -> x_adv``; ``check_settings`` validates the
settings of every attack built on the engine.
"""

from interp_core.attacks.aai import AAI
from interp_core.attacks.engine import (
    NORMS,
    OBJECTIVES,
    PGD,
    Attack,
    StepCallback,
    CrossEntropy,
    Margin,
    Objective,
    check_settings,
    margin_loss,
)
from interp_core.attacks.isa import (
    ISA,
    ISA_BUDGETS,
    ISA_EXPLAINERS,
    MinimumEps,
    TradeoffCurves,
    bound_points,
    isa_tradeoff,
    maximum_gamma,
    minimum_eps,
    runner_up,
)
from interp_core.attacks.presets import PAPER_SUBSET, PaperProtocol, fgsm, paper_pgd, pgd
from interp_core.attacks.registry import ATTACKS, GOALS, AttackSpec, build_attack
from interp_core.attacks.uar import UAR_ATTACKS, UARAttack, authors_targets

__all__ = [
    "AAI", "NORMS", "OBJECTIVES", "PGD", "Attack", "StepCallback", "CrossEntropy", "Margin", "Objective",
    "check_settings", "margin_loss", "ISA", "ISA_BUDGETS", "ISA_EXPLAINERS", "MinimumEps",
    "TradeoffCurves", "bound_points", "isa_tradeoff", "maximum_gamma", "minimum_eps", "runner_up",
    "PAPER_SUBSET", "PaperProtocol", "fgsm", "paper_pgd", "pgd", "ATTACKS", "GOALS", "AttackSpec",
    "build_attack", "UAR_ATTACKS", "UARAttack", "authors_targets",
]
