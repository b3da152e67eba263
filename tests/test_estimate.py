"""interp_core.services.estimate: the Robustness page's time estimate from measured step costs."""

from __future__ import annotations

import time

import pytest

from interp_core.services.estimate import measure_costs, robustness_seconds, step_seconds


def test_robustness_seconds_counts_the_protocols_steps():
    costs = {"pgd": 0.01, "aai": 0.1}
    eps = [0.0, 0.1, 0.3]
    # eps 0 is the clean accuracy: no attack runs there
    assert robustness_seconds(costs, eps, "paper", 200, 2, False, 200) == pytest.approx(0.01 * 2 * 200)
    assert robustness_seconds(costs, [0.0], "paper", 200, 2, True, 200) == 0
    # strong: + PGD-CE and PGD-margin, 2 restarts each, on the two eps > 0; AAI on those two
    assert robustness_seconds(costs, eps, "strong", 40, 2, True, 50) == pytest.approx(
        0.01 * (2 * 40 + 2 * 2 * 40 * 2) + 0.1 * 50 * 2)


def test_step_seconds_measures_the_cost_per_step_not_the_fixed_part():
    def make(steps):
        def attack(model, x, y):
            time.sleep(0.05 + 0.02 * steps)  # 50 ms fixed, 20 ms per step
        return attack

    assert step_seconds(make, None, None, None) == pytest.approx(0.02, abs=0.01)


def test_measured_costs_predict_a_real_run(mnist_normal, mnist_demo):
    from interp_core.attacks import PaperProtocol

    x, y = mnist_demo.images[:20], mnist_demo.labels[:20]
    costs = measure_costs(mnist_normal, x, y, 0.3)
    assert costs["pgd"] > 0 and costs["aai"] > 0
    start = time.perf_counter()
    PaperProtocol(steps=40).attack(0.3)(mnist_normal, x, y)
    actual = time.perf_counter() - start
    predicted = robustness_seconds(costs, [0.3], "paper", 40, 1, False, 0)
    assert predicted / 3 < actual < predicted * 3  # a shared machine: the right order of magnitude
