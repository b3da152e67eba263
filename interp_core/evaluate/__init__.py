"""Evaluation (docs/method.md#evaluation): robust-accuracy curves, interpretation robustness under
AAI and ISA, the 2-class bound, and the reproduction of the paper's tables on its networks.
Every result records the protocol that produced it (attack, steps, step size, restarts, targets,
subset)."""

from interp_core.evaluate.data import AUTHORS_SETS, SUBSETS, TARGETS, authors_set_targets, evaluation_set, resolve_targets
from interp_core.evaluate.interpretation import (
    AAIResult,
    BoundResult,
    ISAResult,
    aai_evaluation,
    bound_evaluation,
    choose_targets,
    isa_evaluation,
    tradeoff_findings,
    tradeoff_text,
)
from interp_core.evaluate.robust import (
    MASKING_SIGNS,
    PROTOCOLS,
    RETESTS,
    SIGN_WORDS,
    Progress,
    RobustResult,
    robust_accuracy,
    zero_gradient_share,
)
from interp_core.evaluate.uar import UARResult, uar_evaluation  # accuracy under the unforeseen attacks (UAR)

__all__ = [
    "AUTHORS_SETS", "SUBSETS", "TARGETS", "authors_set_targets", "evaluation_set", "resolve_targets",
    "AAIResult", "BoundResult", "ISAResult", "aai_evaluation", "bound_evaluation", "choose_targets", "isa_evaluation",
    "tradeoff_findings", "tradeoff_text",
    "MASKING_SIGNS", "PROTOCOLS", "RETESTS", "SIGN_WORDS", "Progress", "RobustResult", "robust_accuracy", "zero_gradient_share",
    "UARResult", "uar_evaluation",
]
