"""Robust accuracy per eps (PAPER.md section 5), under the authors' protocol or a stronger one.

``paper``: the authors' PGD (200 signed steps of 0.01 from x, one restart) on the seed-99 subset.
``strong`` (the project's addition): the per-image worst case over the authors' PGD, PGD on the
cross-entropy and on the C&W margin with random starts and restarts, and AutoAttack
(torchattacks' standard version: APGD-CE, APGD-T, FAB-T, Square). It flags gradient masking:
a stronger attack doing much better than the authors' PGD, or input gradients that vanish.
Clean errors count as failures in every accuracy.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from interp_core.checks import check_eps_list, check_range
from interp_core.attacks import PaperProtocol, pgd
from interp_core.metrics import correct

#: progress(done, total): called by long evaluations after each unit of work.
Progress = Callable[[int, int], None]
PROTOCOLS = ("paper", "strong")
#: A stronger attack beating the authors' PGD by more than this (accuracy points) flags masking.
MASKING_GAP = 0.05
#: More than this share of images with an all-zero input gradient flags vanishing gradients.
ZERO_GRADIENT_SHARE = 0.1


@dataclass
class RobustResult:
    """Robust accuracy per eps: ``results`` = [{"eps", "accuracy", ...}], the protocol that produced
    it, the evaluation subset, warnings (gradient masking) and the wall-clock seconds."""

    protocol: dict
    n: int
    subset: str
    results: list[dict]
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)


def _batched(attack, model: nn.Module, x: Tensor, y: Tensor, batch_size: int, on_batch=None) -> Tensor:
    """Per-example robust correctness (N,) bool of model under ``attack`` (clean errors fail)."""
    hits = []
    for start in range(0, len(y), batch_size):
        xb, yb = x[start:start + batch_size], y[start:start + batch_size]
        with torch.no_grad():
            clean_ok = correct(model(xb), yb)
        x_adv = attack(model, xb, yb)
        with torch.no_grad():
            hits.append(clean_ok & correct(model(x_adv), yb))
        if on_batch:
            on_batch()
    return torch.cat(hits)


def zero_gradient_share(model: nn.Module, x: Tensor, y: Tensor) -> float:
    """Share of images whose cross-entropy input gradient is exactly zero (a masking symptom)."""
    was_training = model.training
    model.eval()
    try:
        with torch.enable_grad():
            x_req = x.detach().requires_grad_(True)
            (grad,) = torch.autograd.grad(F.cross_entropy(model(x_req), y, reduction="sum"), x_req)
    finally:
        model.train(was_training)
    return float((grad.flatten(1).abs().amax(1) == 0).float().mean())


class _AutoAttack:
    """torchattacks' AutoAttack (standard) as ``attack(model, x, y)``, model modes restored."""

    def __init__(self, eps: float, seed: int = 0):
        self.eps, self.seed = eps, seed

    def __call__(self, model, x, y, target=None):
        import torchattacks

        with torch.no_grad():
            num_classes = model(x[:1]).shape[1]
        modes = [(m, m.training) for m in model.modules()]
        try:
            x_adv = torchattacks.AutoAttack(model, norm="Linf", eps=self.eps, version="standard",
                                            n_classes=num_classes, seed=self.seed)(x, y)
        finally:
            for module, mode in modes:
                module.training = mode
        if (x_adv - x).abs().max() > self.eps + 1e-5 or x_adv.min() < 0 or x_adv.max() > 1:
            raise RuntimeError("torchattacks AutoAttack left the eps-ball or the [0, 1] box")
        return x_adv.detach()


def robust_accuracy(model: nn.Module, x: Tensor, y: Tensor, eps: list[float], protocol: str = "paper",
                    steps: int = 200, step_size: float = 0.01, restarts: int = 5, autoattack: bool = True,
                    batch_size: int = 200, subset: str = "", progress: Progress | None = None) -> RobustResult:
    """Robust accuracy of ``model`` on x (N, C, H, W) in [0, 1], labels y (N,), at each eps.

    protocol "paper": the authors' PGD with ``steps`` and ``step_size``. "strong": per image, the
    worst case over the authors' PGD, ``restarts`` random-start PGD runs on the cross-entropy and
    on the margin (``steps`` steps of 2.5 eps / steps), and (``autoattack``) AutoAttack; each
    result row then also lists every attack's accuracy. ``subset`` describes which images x are.
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {PROTOCOLS}, got {protocol!r}")
    check_eps_list(eps)
    check_range("steps", steps, integer=True)
    check_range("step_size", step_size)
    check_range("restarts", restarts, integer=True)
    check_range("batch_size", batch_size, integer=True)
    started = time.perf_counter()
    paper = PaperProtocol(steps=steps, step_size=step_size)
    record = {"name": protocol, **{k: v for k, v in paper.record().items() if not k.startswith("subset")}}
    if protocol == "strong":
        record.update(extra_attacks=[f"pgd-ce random start x{restarts}", f"pgd-margin random start x{restarts}"]
                      + (["autoattack-standard (torchattacks)"] if autoattack else []),
                      extra_step_size="2.5 eps / steps", restarts=restarts)
    batches = -(-len(y) // batch_size)
    per_eps = 1 if protocol == "paper" else 3 + int(autoattack)
    total, done = len(eps) * batches * per_eps, 0

    def tick():
        nonlocal done
        done += 1
        if progress:
            progress(done, total)

    results, warnings = [], []
    for value in eps:
        ok = _batched(paper.attack(value), model, x, y, batch_size, tick)
        row = {"eps": value, "accuracy": float(ok.float().mean())}
        if protocol == "strong" and value > 0:
            row["attacks"] = {"paper-pgd": row["accuracy"]}
            for name, attack in (
                ("pgd-ce-restarts", pgd(value, steps, restarts=restarts, seed=0)),
                ("pgd-margin-restarts", pgd(value, steps, restarts=restarts, seed=0, objective="margin")),
                *([("autoattack", _AutoAttack(value))] if autoattack else []),
            ):
                hit = _batched(attack, model, x, y, batch_size, tick)
                row["attacks"][name] = float(hit.float().mean())
                ok &= hit
            row["accuracy"] = float(ok.float().mean())
            if row["attacks"]["paper-pgd"] - row["accuracy"] > MASKING_GAP:
                best = min(row["attacks"], key=row["attacks"].get)
                warnings.append(f"eps={value:.4g}: {best} leaves {row['attacks'][best]:.3f} against the authors' "
                                f"PGD's {row['attacks']['paper-pgd']:.3f}: possible gradient masking")
        elif protocol == "strong":
            total -= batches * (per_eps - 1)
        results.append(row)
    share = zero_gradient_share(model, x[:batch_size], y[:batch_size])
    if share > ZERO_GRADIENT_SHARE:
        warnings.append(f"{share:.0%} of images have an all-zero input gradient: vanishing gradients mask attacks")
    accs = [r["accuracy"] for r in results]
    if any(later > earlier + 1e-9 for earlier, later in zip(accs, accs[1:])) and sorted(eps) == list(eps):
        warnings.append("robust accuracy rises with eps somewhere: the attack is not converging")
    return RobustResult(record, len(y), subset, results, warnings, time.perf_counter() - started)
