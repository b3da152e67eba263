"""Training methods of docs/method.md#training, each a loss ``loss_fn(model, x, y, cfg) -> (loss, logs)``.

Every adversarial method finds x' with the one projected-gradient engine
(:class:`interp_core.attacks.PGD`): a random uniform start in the l-inf ball of radius
``cfg.eps``, then ``cfg.steps`` signed ascent steps of size ``cfg.step_size``, projected. Only
the objective that the inner attack maximizes changes from method to method:

============  ===============================  ====================================
name          minimized loss                   inner attack maximizes
============  ===============================  ====================================
normal        CE(x)                            --
pgd-at        CE(x')                           CE(x')
trades        CE(x) + gamma KL(p(x) || p(x'))  the KL term
ig-norm       CE(x) + gamma ||IG^CE(x, x')||1  the IG term
ig-sum-norm   CE(x') + gamma ||IG^CE||1        CE(x') + the IG term
int           CE(x) + gamma D~(x, x')          D~
int-adv       CE(x') + gamma D~                CE(x') + gamma D~
int-1class    CE(x) + gamma D~1                D~1
int2          CE(x) + gamma D~                 CE(x') (plain PGD)
int2-adv      CE(x') + gamma D~                CE(x')
============  ===============================  ====================================

``gamma`` is the weight of each method's regularizer: TRADES' beta (1), the IG weight lambda
(1; the project's choice, docs/method.md#training) and the Int weight (0.01). All terms are batch means of
per-example values (the intended forms). The authors' code differs in places; the differences
are documented at the functions below and are not reproduced.

Free adversarial training (``TrainConfig.free``, pgd-at only) has no inner attack of its own: the
trainer replays each batch and moves the perturbation that :class:`FreePerturbation` carries with
each step's input gradient, on the normal loss at x + delta.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from interp_core.attacks import PGD
from interp_core.metrics import correct
from interp_core.models import CAMNet, cam_from_features

IG_POINTS = 5  # Riemann points of IG^CE in the IG regularizers (docs/method.md#training)


@dataclass(frozen=True)
class MethodConfig:
    """What a loss needs at one training step: the (ramped) radius and the inner attack.

    eps: l-inf radius in [0, 1] for this step (0 during the warm-up of the eps ramp); steps and
    step_size: the inner attack; gamma: regularizer weight; seed: seeds the inner random start
    (the trainer passes a per-step seed so runs and resumed runs repeat exactly).
    """

    eps: float = 0.3
    steps: int = 40
    step_size: float = 0.01
    gamma: float = 0.01
    seed: int | None = None


LossFn = Callable[[nn.Module, Tensor, Tensor, MethodConfig], "tuple[Tensor, dict]"]


def inner_attack(model: nn.Module, x: Tensor, y: Tensor, cfg: MethodConfig, objective) -> Tensor:
    """x' maximizing ``objective`` (a name or ``(model, x_adv, x, y, target) -> (N,)``) in the
    eps-ball: random uniform start, ``cfg.steps`` signed steps. x: (N, C, H, W) in [0, 1]."""
    attack = PGD(cfg.eps, cfg.step_size, cfg.steps, norm="linf", random_start=True, objective=objective,
                 seed=cfg.seed, keep_best=False)
    return attack(model, x, y)


class FreePerturbation:
    """The perturbation delta (N, C, H, W) that free adversarial training (Shafahi et al. 2019)
    carries from replay to replay and from batch to batch (docs/method.md#training).

    Each optimizer step trains on x' = x + delta (:meth:`perturb`); the backward pass of that step
    gives the input gradient too, and :meth:`ascend` moves delta by one signed step of it. delta
    starts at zero (no random start) and restarts at zero when the batch shape changes; it always
    lies in the l-inf ball of the step's eps and keeps x + delta in [0, 1].
    """

    def __init__(self, delta: Tensor | None = None):
        self.delta = delta

    def perturb(self, x: Tensor, eps: float) -> Tensor:
        """x' = x + delta for a batch x (N, C, H, W) in [0, 1]: delta projected onto the eps ball and
        the [0, 1] box of this x, returned as a leaf that requires grad (its ``.grad`` feeds
        :meth:`ascend`)."""
        if self.delta is None or self.delta.shape != x.shape:
            self.delta = torch.zeros_like(x)
        self.delta = _project(self.delta, x, eps)
        return (x + self.delta).requires_grad_(True)

    def ascend(self, x: Tensor, x_adv: Tensor, eps: float, step_size: float) -> None:
        """After the step's backward pass: delta <- project(delta + step_size sign(grad of x_adv)),
        x the clean batch and x_adv the tensor the last :meth:`perturb` returned for it (both
        (N, C, H, W))."""
        if x_adv.grad is None:
            raise ValueError("free adversarial training: x_adv has no gradient; call backward on the loss first")
        self.delta = _project(self.delta + step_size * x_adv.grad.sign(), x, eps)


def _project(delta: Tensor, x: Tensor, eps: float) -> Tensor:
    """delta clipped to [-eps, eps], then so that x + delta lies in [0, 1]."""
    return (x + delta.clamp(-eps, eps)).clamp(0, 1) - x


def _cam_and_logits(model: nn.Module, x: Tensor) -> tuple[Tensor, Tensor]:
    """CAM of every class (N, K, h, w) and logits (N, K) from one pass (logit = grid mean of CAM)."""
    if not isinstance(model, CAMNet):
        raise ValueError("the Int methods need a CAM model (interp_core.models.CAMNet: features + head)")
    cam = cam_from_features(model.features(x), model.head.weight)
    return cam, cam.mean(dim=(2, 3))


def cam_discrepancy(cam_clean: Tensor, cam_adv: Tensor, logits_adv: Tensor, y: Tensor,
                    one_class: bool = False) -> Tensor:
    """D~(x, x') per example (N,) from CAMs (N, K, h, w) of x and x' and the logits (N, K) of x'.

    D~ = ||CAM_y(x') - CAM_y(x)||_1 + sum_{c != y} p~_c(x') ||CAM_c(x') - CAM_c(x)||_1 with p~ the
    softmax of Z(x') renormalized over c != y (gradients flow through p~); raw CAMs summed over
    the grid, no 1/(h w). ``one_class`` keeps the first term only (D~1). docs/method.md#training.
    """
    dist = (cam_adv - cam_clean).abs().flatten(2).sum(2)  # (N, K)
    true = dist.gather(1, y[:, None]).squeeze(1)
    if one_class:
        return true
    wrong = torch.ones_like(logits_adv, dtype=torch.bool).scatter_(1, y[:, None], False)
    p = torch.softmax(logits_adv.masked_fill(~wrong, float("-inf")), dim=1)  # softmax over c != y
    return true + (p * dist).masked_fill(~wrong, 0.0).sum(1)


def ig_ce(model: nn.Module, x: Tensor, x_adv: Tensor, y: Tensor, create_graph: bool) -> Tensor:
    """IG^CE(x, x'): Integrated Gradients of the per-example cross-entropy from baseline x to x',
    5-point right Riemann sum, (N, C, H, W). docs/method.md#training (Chen et al. 2019).

    The per-example loss is differentiated (the authors differentiate the batch mean, which scales
    the regularizer by 1/batch; not reproduced). The network keeps its ReLUs.
    """
    alphas = torch.arange(1, IG_POINTS + 1, device=x.device, dtype=x.dtype) / IG_POINTS
    z = (x + alphas.view(-1, *[1] * x.dim()) * (x_adv - x)).flatten(0, 1)  # all points in one batch
    if not z.requires_grad:
        z.requires_grad_(True)
    loss = F.cross_entropy(model(z), y.repeat(IG_POINTS), reduction="sum")
    (grad,) = torch.autograd.grad(loss, z, create_graph=create_graph)
    return (x_adv - x) * grad.view(IG_POINTS, *x.shape).mean(0)


def _ig_norm(model, x, x_adv, y, create_graph: bool) -> Tensor:
    return ig_ce(model, x, x_adv, y, create_graph).abs().flatten(1).sum(1)


def ce_objective(model: nn.Module, x: Tensor, y: Tensor, cfg: MethodConfig):
    """Plain PGD: the inner attack maximizes CE(x')."""
    return "ce"


def kl_objective(model: nn.Module, x: Tensor, y: Tensor, cfg: MethodConfig):
    """TRADES' inner objective KL(p(x) || p(x')) with p(x) fixed."""
    with torch.no_grad():
        log_p_clean = F.log_softmax(model(x), dim=1)
    return lambda m, x_adv, x0, y0, t: _kl(log_p_clean, F.log_softmax(m(x_adv), dim=1))


def ig_objective(model: nn.Module, x: Tensor, y: Tensor, cfg: MethodConfig):
    """ig-norm's inner objective ||IG^CE(x, x')||_1."""
    return lambda m, x_adv, x0, y0, t: _ig_norm(m, x0, x_adv, y0, create_graph=True)


def ce_ig_objective(model: nn.Module, x: Tensor, y: Tensor, cfg: MethodConfig):
    """ig-sum-norm's inner objective CE(x') + gamma ||IG^CE(x, x')||_1."""
    return lambda m, x_adv, x0, y0, t: (F.cross_entropy(m(x_adv), y0, reduction="none")
                                        + cfg.gamma * _ig_norm(m, x0, x_adv, y0, create_graph=True))


def _int_objective(with_ce: bool, one_class: bool):
    def build(model: nn.Module, x: Tensor, y: Tensor, cfg: MethodConfig):
        with torch.no_grad():
            cam_clean, _ = _cam_and_logits(model, x)

        def objective(m, x_adv, x0, y0, t):
            cam_adv, logits_adv = _cam_and_logits(m, x_adv)
            d = cam_discrepancy(cam_clean, cam_adv, logits_adv, y0, one_class)
            return F.cross_entropy(logits_adv, y0, reduction="none") + cfg.gamma * d if with_ce else d

        return objective

    kind = ("CE(x') + gamma " if with_ce else "") + ("D~1" if one_class else "D~")
    build.__doc__ = f"Int-family inner objective: {kind}(x, x') with the clean CAMs fixed."
    return build


d_objective = _int_objective(with_ce=False, one_class=False)
d1_objective = _int_objective(with_ce=False, one_class=True)
ce_d_objective = _int_objective(with_ce=True, one_class=False)

#: What each adversarial method's inner attack maximizes: a builder ``(model, x, y, cfg) ->``
#: objective name or callable ``(model, x_adv, x, y, target) -> (N,)`` (docs/method.md#training).
INNER_OBJECTIVES = {
    "pgd-at": ce_objective, "trades": kl_objective, "ig-norm": ig_objective, "ig-sum-norm": ce_ig_objective,
    "int": d_objective, "int-adv": ce_d_objective, "int-1class": d1_objective, "int2": ce_objective,
    "int2-adv": ce_objective,
}


def _x_adv(name: str, model, x, y, cfg) -> Tensor:
    return inner_attack(model, x, y, cfg, INNER_OBJECTIVES[name](model, x, y, cfg))


def normal(model: nn.Module, x: Tensor, y: Tensor, cfg: MethodConfig) -> tuple[Tensor, dict]:
    """CE(x). x: (N, C, H, W) in [0, 1], y: (N,)."""
    logits = model(x)
    loss = F.cross_entropy(logits, y)
    return loss, {"accuracy": _acc(logits, y)}


def pgd_at(model: nn.Module, x: Tensor, y: Tensor, cfg: MethodConfig) -> tuple[Tensor, dict]:
    """Madry et al.: CE(x') with x' the PGD maximizer of CE. Accuracy logged on x'."""
    logits = model(_x_adv("pgd-at", model, x, y, cfg))
    loss = F.cross_entropy(logits, y)
    return loss, {"accuracy": _acc(logits, y)}


def trades(model: nn.Module, x: Tensor, y: Tensor, cfg: MethodConfig) -> tuple[Tensor, dict]:
    """TRADES: CE(x) + gamma KL(p(x) || p(x')), the inner attack maximizing the KL term.

    The authors' code sums the per-example KL vector (loss scaled by the batch size); here it is
    the batch mean, as in Zhang et al.
    """
    x_adv = _x_adv("trades", model, x, y, cfg)
    logits = model(x)
    term = _kl(F.log_softmax(logits, dim=1), F.log_softmax(model(x_adv), dim=1)).mean()
    ce = F.cross_entropy(logits, y)
    return ce + cfg.gamma * term, {"accuracy": _acc(logits, y), "ce": ce.item(), "kl": term.item()}


def _kl(log_p: Tensor, log_q: Tensor) -> Tensor:
    """KL(p || q) per example (N,) from log-probabilities (N, K)."""
    return (log_p.exp() * (log_p - log_q)).sum(1)


def ig_norm(model: nn.Module, x: Tensor, y: Tensor, cfg: MethodConfig) -> tuple[Tensor, dict]:
    """Chen et al. 2019: CE(x) + gamma ||IG^CE(x, x')||_1, the inner attack maximizing the IG term.

    The authors' "Int with IG" variant collapses to this plain IG norm; only this form is offered.
    """
    x_adv = _x_adv("ig-norm", model, x, y, cfg)
    logits = model(x)
    ce = F.cross_entropy(logits, y)
    term = _ig_norm(model, x, x_adv, y, create_graph=True).mean()
    return ce + cfg.gamma * term, {"accuracy": _acc(logits, y), "ce": ce.item(), "ig": term.item()}


def ig_sum_norm(model: nn.Module, x: Tensor, y: Tensor, cfg: MethodConfig) -> tuple[Tensor, dict]:
    """CE(x') + gamma ||IG^CE(x, x')||_1, the inner attack maximizing the same sum."""
    x_adv = _x_adv("ig-sum-norm", model, x, y, cfg)
    logits = model(x_adv)
    ce = F.cross_entropy(logits, y)
    term = _ig_norm(model, x, x_adv, y, create_graph=True).mean()
    return ce + cfg.gamma * term, {"accuracy": _acc(logits, y), "adv_ce": ce.item(), "ig": term.item()}


def _int_family(name: str, adv_ce: bool, one_class: bool = False) -> LossFn:
    """Int-family loss: CE(x) (or CE(x') with ``adv_ce``) + gamma D~ (or D~1), x' from the
    method's inner objective."""

    def loss_fn(model: nn.Module, x: Tensor, y: Tensor, cfg: MethodConfig) -> tuple[Tensor, dict]:
        x_adv = _x_adv(name, model, x, y, cfg)
        cam, logits_all = _cam_and_logits(model, torch.cat([x, x_adv]))  # one pass over both
        (cam_clean, cam_adv), (logits_clean, logits_adv) = cam.chunk(2), logits_all.chunk(2)
        d = cam_discrepancy(cam_clean, cam_adv, logits_adv, y, one_class).mean()
        logits = logits_adv if adv_ce else logits_clean
        ce = F.cross_entropy(logits, y)
        return ce + cfg.gamma * d, {"accuracy": _acc(logits, y), "ce": ce.item(), "d": d.item()}

    return loss_fn


int_ = _int_family("int", adv_ce=False)
int_.__doc__ = "Int: CE(x) + gamma D~(x, x'), the inner attack maximizing D~ (docs/method.md#training)."
int_adv = _int_family("int-adv", adv_ce=True)
int_adv.__doc__ = "Int-adv: CE(x') + gamma D~, the inner attack maximizing CE(x') + gamma D~."
int_1class = _int_family("int-1class", adv_ce=False, one_class=True)
int_1class.__doc__ = "Int-1class: CE(x) + gamma D~1 (true-class CAM only), the inner attack maximizing D~1."
int2 = _int_family("int2", adv_ce=False)
int2.__doc__ = "Int2: CE(x) + gamma D~, x' from plain PGD on CE."
int2_adv = _int_family("int2-adv", adv_ce=True)
int2_adv.__doc__ = "Int2-adv: CE(x') + gamma D~, x' from plain PGD on CE."


def _acc(logits: Tensor, y: Tensor) -> float:
    return correct(logits, y).float().mean().item()


TRAINING_METHODS: dict[str, LossFn] = {
    "normal": normal, "pgd-at": pgd_at, "trades": trades, "ig-norm": ig_norm, "ig-sum-norm": ig_sum_norm,
    "int": int_, "int-adv": int_adv, "int-1class": int_1class, "int2": int2, "int2-adv": int2_adv,
}

#: The regularizer weight each method uses unless told otherwise (docs/method.md#training).
DEFAULT_GAMMA = {"normal": 0.0, "pgd-at": 0.0, "trades": 1.0, "ig-norm": 1.0, "ig-sum-norm": 1.0,
                 "int": 0.01, "int-adv": 0.01, "int-1class": 0.01, "int2": 0.01, "int2-adv": 0.01}

#: Methods that attack during training (normal ignores eps/steps/step_size).
ADVERSARIAL = tuple(INNER_OBJECTIVES)

#: Methods that free adversarial training (``TrainConfig.free``) applies to: it needs a loss whose
#: input gradient is the inner attack's ascent direction, CE(x') (normal ignores it, as it ignores eps).
FREE_METHODS = ("pgd-at",)


def get_method(name: str) -> LossFn:
    """The loss function of a training method by name."""
    if name not in TRAINING_METHODS:
        raise ValueError(f"unknown training method {name!r}; known: {sorted(TRAINING_METHODS)}")
    return TRAINING_METHODS[name]
