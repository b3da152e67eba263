"""Accuracy under the unforeseen attacks (the paper's UAR evaluation, after Kang et al. 2019): fog,
Gabor, snow and JPEG (l-inf, l2, l1), each targeted at the authors' random wrong class."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from interp_core.attacks import UAR_ATTACKS, UARAttack, authors_targets
from interp_core.attacks.uar import AUTHORS_TARGET_SEED, TEST_SIZE
from interp_core.datasets import DATASETS
from interp_core.evaluate.robust import EvaluationRecord, Progress
from interp_core.metrics import correct


@dataclass
class UARResult(EvaluationRecord):
    """Accuracy under the unforeseen attacks (``uar_evaluation``) of ``n`` images: the clean
    accuracy and ``results`` = [{"attack", "eps" (its budget), "accuracy" (share classified as the
    true label), "target_rate" (share classified as the target), "seconds" (that attack's
    wall-clock time)}] in the order of the attacks asked for; shares in [0, 1]; the protocol, the
    evaluation subset and the wall-clock seconds."""

    clean_accuracy: float
    results: list[dict]
    seconds: float


def uar_evaluation(model: nn.Module, x: Tensor, y: Tensor, attacks: Sequence[str] = tuple(UAR_ATTACKS),
                   dataset: str = "cifar10", eps: Mapping[str, float] | None = None, steps: int = 200,
                   seed: int = AUTHORS_TARGET_SEED, batch_size: int = 100, subset: str = "",
                   progress: Progress | None = None) -> UARResult:
    """Accuracy of ``model`` under each unforeseen attack on x (N, C, H, W) in [0, 1], labels y (N,).

    The authors' protocol: targets t = (y + 1 + randint(K - 1)) % K from numpy RandomState(seed)
    after its permutation of the test set (``authors_targets(..., after_permutation=TEST_SIZE)``),
    one draw per image of x in order (the same targets for every attack; the authors' targets image
    by image when x is their seed-99 subset in order); ``steps`` steps of
    eps / sqrt(steps) from a random start (``UARAttack`` with ``seed``); budgets
    ``DATASETS[dataset].uar_budgets[attack]`` unless ``eps`` overrides them per attack. Accuracy is the
    share of attacked images whose argmax is the true label (an image misclassified when clean
    counts as it falls); ``target_rate`` the share classified as their target. Returns a ``UARResult``.
    """
    unknown = [a for a in attacks if a not in UAR_ATTACKS]
    if unknown or not attacks:
        raise ValueError(f"attacks must be a non-empty list of {list(UAR_ATTACKS)}, got {list(attacks)}")
    if dataset not in DATASETS:
        raise ValueError(f"no budgets for dataset {dataset!r}; known: {sorted(DATASETS)}")
    extra = set(eps or {}) - set(attacks)
    if extra:
        raise ValueError(f"eps given for attacks that are not run: {sorted(extra)}")
    if not (isinstance(batch_size, int) and batch_size >= 1):
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    if len(x) == 0 or len(x) != len(y):
        raise ValueError(f"x and y must hold the same number (>= 1) of images, got {len(x)} and {len(y)}")
    budgets = {a: float((eps or {}).get(a, DATASETS[dataset].uar_budgets[a])) for a in attacks}
    started = time.perf_counter()
    with torch.no_grad():
        clean = torch.cat([correct(model(x[s:s + batch_size]), y[s:s + batch_size])
                           for s in range(0, len(y), batch_size)])
    with torch.no_grad():
        target = authors_targets(y, model(x[:1]).shape[1], seed, after_permutation=TEST_SIZE)
    batches = -(-len(y) // batch_size)
    results = []
    for i, name in enumerate(attacks):
        attack = UARAttack(name, budgets[name], steps=steps, seed=seed)
        attack_started = time.perf_counter()
        hits, on_target = [], []
        for b, start in enumerate(range(0, len(y), batch_size)):
            part = slice(start, start + batch_size)
            x_adv = attack(model, x[part], y[part], target[part])
            with torch.no_grad():
                pred = model(x_adv).argmax(1)
            hits.append(pred == y[part])
            on_target.append(pred == target[part])
            if progress:
                progress(i * batches + b + 1, len(attacks) * batches)
        results.append({"attack": name, "eps": budgets[name], "accuracy": float(torch.cat(hits).float().mean()),
                        "target_rate": float(torch.cat(on_target).float().mean()),
                        "seconds": time.perf_counter() - attack_started})
    protocol = {"attack": "uar", "reference": "advex-uar 0.0.6.dev0 formulas (Kang et al. 2019)", "steps": steps,
                "step_size": "eps / sqrt(steps)", "random_start": True, "seed": seed, "budgets": dataset,
                "targets": f"numpy RandomState({seed}) after permutation({TEST_SIZE}): t = (y + 1 + randint(K - 1)) % K, "
                           "one draw per image",
                "accuracy": "argmax equals the true label"}
    return UARResult(protocol, len(y), subset, float(clean.float().mean()), results, time.perf_counter() - started)
