"""Every numeric parameter of the attacks, explainers and evaluations refuses absurd values
(negative, NaN, infinite, huge, fractional counts) with a ValueError naming the parameter and its
allowed range (interp_core.checks.check_range)."""

from __future__ import annotations

import math
import re

import pytest
import torch

from interp_core.attacks import AAI, ISA, PGD, UARAttack
from interp_core.attacks.engine import Margin
from interp_core.attacks.isa import MinimumEps
from interp_core.checks import BOUNDS
from interp_core.evaluate import aai_evaluation, robust_accuracy
from interp_core.evaluate.interpretation import bound_evaluation
from interp_core.interpret import IntegratedGradients, SmoothGrad
from interp_core.models import build_model
from interp_core.training import TrainConfig

NAN, INF, HUGE = math.nan, math.inf, 10**12
#: A tiny untrained MNIST-shaped model and two images: the evaluations' checks refuse before using
#: them, and the accepted values run on them in a blink.
torch.manual_seed(0)
TINY = (build_model("smallgap", 1, 10).eval(), torch.rand(2, 1, 28, 28), torch.tensor([3, 7]))
#: parameter -> (builder taking the value, absurd values, range shown in the message)
CASES = {
    "PGD eps (l-inf)": (lambda v: PGD(eps=v, step_size=0.01, steps=10), [-0.1, NAN, INF, HUGE, 255], "eps", "[0, 1]"),
    "PGD eps (l2)": (lambda v: PGD(eps=v, step_size=0.01, steps=10, norm="l2"), [-1, NAN, INF], "eps", "[0, inf]"),
    "PGD step_size": (lambda v: PGD(eps=0.3, step_size=v, steps=10), [-1, NAN, INF], "step_size", "[0, inf]"),
    "PGD steps": (lambda v: PGD(eps=0.3, step_size=0.01, steps=v), [-1, NAN, INF, HUGE, 2.5], "steps", "[0, 100000]"),
    "PGD restarts": (lambda v: PGD(0.3, 0.01, 10, random_start=True, restarts=v), [0, -1, NAN, HUGE], "restarts",
                     "[1, 1000]"),
    "PGD seed": (lambda v: PGD(0.3, 0.01, 10, seed=v), [-1, NAN, 0.5], "seed", "[0, "),
    "PGD kappa": (lambda v: PGD(0.3, 0.01, 10, objective="margin", kappa=v), [-1, NAN, INF], "kappa", "[0, inf]"),
    "margin kappa": (lambda v: Margin(kappa=v), [-1, NAN, INF], "kappa", "[0, inf]"),
    "AAI k": (lambda v: AAI(0.1, k=v), [0, -3, NAN, HUGE], "k", "[1, 100000]"),
    "AAI steps": (lambda v: AAI(0.1, steps=v), [-1, NAN, HUGE], "steps", "[0, 100000]"),
    "ISA gamma": (lambda v: ISA(0.1, gamma=v), [-1, NAN, INF], "gamma", "[0, inf]"),
    "ISA gamma (per image)": (lambda v: ISA(0.1, gamma=torch.tensor([1.0, v])), [-1, NAN, INF], "gamma", "[0, inf]"),
    "ISA eps": (lambda v: ISA(v), [-1, NAN, INF, HUGE], "eps", "[0, 1]"),
    "ISA steps": (lambda v: ISA(0.1, steps=v), [-1, NAN, HUGE], "steps", "[0, 100000]"),
    "ISA step_scale": (lambda v: ISA(0.1, step_scale=v), [-1, 0, NAN, INF, 2], "step_scale", "[0.001, 1]"),
    "minimum-eps rounds": (lambda v: MinimumEps(rounds=v), [0, NAN, HUGE], "rounds", "[1, 100]"),
    "UAR distortion": (lambda v: UARAttack("fog", v), [-1, NAN, INF], "distortion", "[0, inf]"),
    "UAR steps": (lambda v: UARAttack("fog", 2048.0, steps=v), [-1, NAN, HUGE, 2.5], "steps", "[0, 100000]"),
    "IG steps": (lambda v: IntegratedGradients(steps=v), [0, 1, NAN, INF, HUGE], "steps", "[2, 100000]"),
    "SmoothGrad samples": (lambda v: SmoothGrad(samples=v), [0, NAN, HUGE], "samples", "[1, 100000]"),
    "SmoothGrad noise": (lambda v: SmoothGrad(noise=v), [-1, NAN, INF], "noise", "[0, inf]"),
    "robust_accuracy eps": (lambda v: robust_accuracy(*TINY, [0.1, v], steps=2), [-1, NAN, INF, HUGE], "eps",
                            "[0, 1]"),
    "robust_accuracy batch_size": (lambda v: robust_accuracy(*TINY, [0.1], steps=2, batch_size=v), [0, NAN, HUGE],
                                   "batch_size", "[1, 1000000]"),
    "robust_accuracy restarts": (lambda v: robust_accuracy(*TINY, [0.1], steps=2, restarts=v), [0, NAN, HUGE],
                                 "restarts", "[1, 1000]"),
    "aai_evaluation eps": (lambda v: aai_evaluation(*TINY, [v], steps=2), [-1, NAN, INF, HUGE], "eps", "[0, 1]"),
    "aai_evaluation k": (lambda v: aai_evaluation(*TINY, [0.1], k=v, steps=2), [0, NAN, HUGE], "k", "[1, 100000]"),
    "aai_evaluation batch_size": (lambda v: aai_evaluation(*TINY, [0.1], steps=2, batch_size=v), [0, -5, NAN],
                                  "batch_size", "[1, 1000000]"),
    "TrainConfig lr": (lambda v: TrainConfig("normal", "mnist", lr=v), [0, -1, NAN, INF], "lr", "(0, inf)"),
    "TrainConfig gamma": (lambda v: TrainConfig("int", "mnist", gamma=v), [-1, NAN, INF], "gamma", "[0, inf]"),
    "TrainConfig step_size": (lambda v: TrainConfig("pgd-at", "mnist", step_size=v), [-1, NAN, INF], "step_size",
                              "[0, inf]"),
    "TrainConfig eps": (lambda v: TrainConfig("pgd-at", "mnist", eps=v), [-1, NAN, INF, HUGE], "eps", "[0, 1]"),
    "bound_evaluation rounds": (lambda v: bound_evaluation(*TINY, rounds=v, steps=2), [0, NAN, HUGE], "rounds",
                                "[1, 100]"),
}


@pytest.mark.parametrize("case,value", [(c, v) for c, (_, values, _, _) in CASES.items() for v in values],
                         ids=lambda p: str(p))
def test_absurd_values_are_refused_naming_the_range(case, value):
    build, _, name, shown = CASES[case]
    with pytest.raises(ValueError) as err:
        build(value)
    message = str(err.value)
    assert re.match(rf"(a per-example )?{name} must be ", message) and shown in message, message


def test_empty_eps_lists_are_refused():
    with pytest.raises(ValueError, match=r"eps must be a non-empty list of radii in \[0, 1\]"):
        robust_accuracy(None, None, None, [])


@pytest.mark.parametrize("case", list(CASES))
def test_the_defaults_and_the_range_ends_are_accepted(case):
    """The range shown is the range checked: its finite ends pass where they make sense."""
    build, _, name, _ = CASES[case]
    low, high = BOUNDS.get(name, (0, 1))
    values = [2] if case == "IG steps" else [0.001, 1.0] if case == "ISA step_scale" else {"eps": [0.0, 0.3], "gamma": [0.0, 5.0], "kappa": [0.0, 2.0]}.get(
        name, [low + 1])  # IG's Riemann sum needs two points
    for value in values:
        build(value)


@pytest.mark.parametrize("attack", ["pgd", "pgd-margin", "paper-pgd", "isa", "aai", "min-eps", "fog", "jpeg-linf"])
def test_the_app_widgets_range_is_the_library_range(attack):
    """Explore's number widgets span what the library accepts (capped where a click must stay
    affordable), and their lower end is the library's: one step below is refused."""
    import sys

    from interp_core import paths

    sys.path.insert(0, str(paths.PROJECT_ROOT))
    from app_support.attack_controls import SHOWN_WHEN, param_defaults, widget_range
    from interp_core.attacks import build_attack

    norm = param_defaults(attack, "mnist").get("norm", "linf")
    for param, default in param_defaults(attack, "mnist").items():
        if isinstance(default, (bool, str)) or default is None:
            continue
        defaults = param_defaults(attack, "mnist")
        if param in SHOWN_WHEN:  # the settings as they are when the widget is shown (γ: not searched)
            control, shown_value = SHOWN_WHEN[param]
            defaults[control] = shown_value
        low, high = widget_range(attack, param, norm)
        assert high is not None or BOUNDS[param][1] == math.inf, param
        as_type = int if isinstance(default, int) else float
        for value in (low, high):
            if param == "step_size" and value == 0:  # allowed only without steps: the page shows this message
                with pytest.raises(ValueError, match="step_size must be > 0 when steps > 0"):
                    build_attack(attack, **{**defaults, param: 0.0})
            elif value is not None:
                build_attack(attack, **{**defaults, param: as_type(value)})
        with pytest.raises(ValueError, match=param):
            build_attack(attack, **{**defaults, param: as_type(low - 1)})
