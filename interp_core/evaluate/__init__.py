"""Evaluation (PAPER.md sections 4-5): robust-accuracy curves, interpretation robustness under
AAI and ISA, the 2-class bound, and the reproduction of the paper's tables on its networks.
Every result records the protocol that produced it (attack, steps, step size, restarts, subset)."""

from interp_core.evaluate.data import SUBSETS, evaluation_set
from interp_core.evaluate.interpretation import aai_evaluation, bound_evaluation, choose_targets, isa_evaluation
from interp_core.evaluate.robust import PROTOCOLS, Progress, RobustResult, robust_accuracy, zero_gradient_share
from interp_core.evaluate.uar import uar_evaluation  # accuracy under the unforeseen attacks (UAR)

__all__ = [
    "SUBSETS", "evaluation_set", "aai_evaluation", "bound_evaluation", "choose_targets", "isa_evaluation",
    "PROTOCOLS", "Progress", "RobustResult", "robust_accuracy", "zero_gradient_share", "uar_evaluation",
]
