"""The one projected-gradient engine (PAPER.md section 5). FGSM, PGD, the authors' evaluation
protocol, ISA, AAI and the training methods' inner maximizations are configurations of ``PGD``.

An objective is a per-example loss that the attack *maximizes*::

    objective(model, x_adv, x, y, target) -> (N,)

It may differentiate through interpretation maps (``create_graph=True`` inside), because the
engine only asks autograd for d objective / d x_adv. Gradients are taken with
``torch.autograd.grad``, so parameter ``.grad`` and ``requires_grad`` are never touched.
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from typing import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from interp_core.checks import LINF_HINT, check_range

Objective = Callable[[nn.Module, Tensor, Tensor, Tensor, "Tensor | None"], Tensor]

NORMS = ("linf", "l2")
UPDATES = ("sign", "normalized", "softsign")
_TOL = 1e-5


class CrossEntropy:
    """Untargeted: CE(Z(x'), y), ascended. Targeted: -CE(Z(x'), t), so the attack descends the
    target's cross-entropy."""

    def __init__(self, targeted: bool = False):
        self.targeted = targeted

    def __call__(self, model, x_adv, x, y, target=None):
        return self.from_logits(model(x_adv), y, target)

    def from_logits(self, logits: Tensor, y: Tensor, target: Tensor | None) -> Tensor:
        if self.targeted:
            return -F.cross_entropy(logits, target, reduction="none")
        return F.cross_entropy(logits, y, reduction="none")

    def __repr__(self) -> str:
        return f"CrossEntropy(targeted={self.targeted})"


def margin_loss(logits: Tensor, cls: Tensor, kappa: float) -> Tensor:
    """C&W margin of class ``cls`` (PAPER.md section 5): max(max_{j != c} Z_j - Z_c, -kappa), (N,).

    Below zero once c wins; clipped at -kappa so that a margin of kappa is enough."""
    own = logits.gather(1, cls[:, None]).squeeze(1)
    others = logits.scatter(1, cls[:, None], float("-inf")).amax(1)
    return (others - own).clamp_min(-kappa)


class Margin:
    """C&W margin with confidence ``kappa``. Targeted: maximizes -margin(x', t) (t must win by
    kappa); untargeted: maximizes -margin(x', y) clipped the other way, i.e. min(max_{j != y} Z_j
    - Z_y, kappa)."""

    def __init__(self, kappa: float = 0.1, targeted: bool = False):
        check_range("kappa", kappa)
        self.kappa, self.targeted = kappa, targeted

    def __call__(self, model, x_adv, x, y, target=None):
        return self.from_logits(model(x_adv), y, target)

    def from_logits(self, logits: Tensor, y: Tensor, target: Tensor | None) -> Tensor:
        if self.targeted:
            return -margin_loss(logits, target, self.kappa)
        own = logits.gather(1, y[:, None]).squeeze(1)
        others = logits.scatter(1, y[:, None], float("-inf")).amax(1)
        return (others - own).clamp_max(self.kappa)

    def __repr__(self) -> str:
        return f"Margin(kappa={self.kappa}, targeted={self.targeted})"


OBJECTIVES = {"ce": CrossEntropy, "margin": Margin}


def check_data(x: Tensor, y: Tensor, target: Tensor | None, targeted: bool) -> tuple[Tensor, Tensor | None]:
    """Validate an attack's data: x (N, C, H, W) float in [0, 1], y (N,) integer labels, target (N,)
    integer classes (required when ``targeted``). Returns (y, target) as int64 on x's device;
    raises ValueError naming what is wrong."""
    if x.dim() < 2:
        raise ValueError(f"x must be batched (N, C, H, W), got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise ValueError(f"x must be a float tensor in [0, 1], got dtype {x.dtype}")
    if x.numel() and (not torch.isfinite(x).all() or x.min() < 0 or x.max() > 1):
        raise ValueError("x must hold finite values in [0, 1] (inputs are not normalized)")
    y = torch.as_tensor(y, device=x.device)
    if y.shape != (x.shape[0],) or y.is_floating_point():
        raise ValueError(f"y must be integer labels of shape ({x.shape[0]},), got {tuple(y.shape)} {y.dtype}")
    if targeted and target is None:
        raise ValueError("a targeted attack needs target (N,) classes")
    if target is not None:
        target = torch.as_tensor(target, device=x.device)
        if target.shape != (x.shape[0],) or target.is_floating_point():
            raise ValueError(f"target must be integer classes of shape ({x.shape[0]},), got {tuple(target.shape)}")
        target = target.long()
    return y.long(), target


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Every module of ``model`` in eval mode inside the block; each module's own mode is restored
    afterwards, also on errors (a model may mix modes, e.g. frozen batch norm)."""
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for module, mode in modes:
            module.training = mode


class PGD:
    """Projected gradient ascent of a per-example objective within an l-inf or l2 ball.

    Args:
        eps: radius of the threat model (l-inf: per pixel, in [0, 1]; l2: over the whole image);
            a float, or a tensor (N,) of one radius per example (the minimum-eps searches).
        step_size: step length (l-inf with the sign update: per-pixel step; l2: step in l2 norm;
            softsign: the multiplier of clip(scale * grad, -1, 1)); a float or a tensor (N,).
        steps: number of gradient steps (0: only the start point).
        norm: "linf" or "l2".
        random_start: start uniformly in the ball (l-inf: per pixel; l2: uniform in the ball),
            else at x.
        restarts: independent runs (>1 needs random_start).
        keep_best: return, per input, the best of x and the restarts' final iterates: an attack
            success first, then the highest objective (so accuracy never rises). False returns the
            final iterate without the extra scoring passes (training's inner maximization;
            restarts must be 1).
        objective: "ce", "margin", or a callable ``(model, x_adv, x, y, target) -> (N,)``.
        targeted: success means predicting ``target`` (else: not predicting y); the built-in
            objectives also switch to their targeted forms.
        seed: seeds the random start (same seed, same result); None uses torch's global RNG.
        kappa: confidence of the "margin" objective.
        update: "sign" (l-inf default), "normalized" (l2 default: step along grad / ||grad||_2),
            or "softsign": x' + step_size * clip(softsign_scale * grad, -1, 1), the ISA update.
        softsign_scale: the scale of the softsign update (the authors use 1000).

    Calling ``attack(model, x, y, target=None, callback=None)`` with x (N, C, H, W) in [0, 1]
    returns x_adv of the same shape, device and dtype, in [0, 1] and inside the ball. The model is
    put in eval mode for the attack and its modes are restored afterwards. ``callback(step, x_adv)``,
    if given, sees every iterate of every restart (step 0 = the start point), for step-by-step views.
    """

    def __init__(self, eps: float, step_size: float, steps: int, norm: str = "linf", random_start: bool = False,
                 restarts: int = 1, objective: Objective | str = "ce", targeted: bool = False,
                 seed: int | None = None, kappa: float = 0.1, update: str | None = None,
                 softsign_scale: float = 1000.0, keep_best: bool = True):
        if norm not in NORMS:
            raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")
        check_range("eps", eps, 0.0, 1.0 if norm == "linf" else math.inf, hint=LINF_HINT if norm == "linf" else "")
        check_range("step_size", step_size)
        check_range("steps", steps, integer=True)
        if steps > 0 and not isinstance(step_size, Tensor) and step_size == 0 and (isinstance(eps, Tensor) or eps > 0):
            raise ValueError("step_size must be > 0 when steps > 0")
        check_range("restarts", restarts, integer=True)
        if seed is not None:
            check_range("seed", seed, integer=True)
        check_range("softsign_scale", softsign_scale)
        check_range("kappa", kappa)
        if restarts > 1 and not random_start:
            raise ValueError("restarts > 1 repeat the same deterministic run unless random_start=True")
        if restarts > 1 and not keep_best:
            raise ValueError("restarts > 1 need keep_best=True to choose between the runs")
        update = update or ("sign" if norm == "linf" else "normalized")
        if update not in UPDATES:
            raise ValueError(f"update must be one of {UPDATES}, got {update!r}")
        if isinstance(objective, str):
            if objective not in OBJECTIVES:
                raise ValueError(f"unknown objective {objective!r}; known: {sorted(OBJECTIVES)} or a callable")
            objective = Margin(kappa, targeted) if objective == "margin" else CrossEntropy(targeted)
        elif not callable(objective):
            raise ValueError("objective must be a name or a callable (model, x_adv, x, y, target) -> (N,)")
        self.eps, self.step_size, self.steps, self.norm = eps, step_size, steps, norm
        self.random_start, self.restarts, self.objective = random_start, restarts, objective
        self.targeted, self.seed, self.update, self.softsign_scale = targeted, seed, update, softsign_scale
        self.keep_best = keep_best

    def __repr__(self) -> str:
        return (f"PGD(eps={_show(self.eps)}, step_size={_show(self.step_size)}, steps={self.steps}, "
                f"norm={self.norm!r}, "
                f"random_start={self.random_start}, restarts={self.restarts}, objective={self.objective!r}, "
                f"targeted={self.targeted}, update={self.update!r})")

    def __call__(self, model: nn.Module, x: Tensor, y: Tensor, target: Tensor | None = None,
                 callback: Callable[[int, Tensor], None] | None = None) -> Tensor:
        y, target = check_data(x, y, target, self.targeted)
        x = x.detach()
        eps, step_size = _per_example(self.eps, x, "eps"), _per_example(self.step_size, x, "step_size")
        if x.shape[0] == 0 or not (eps > 0).any():
            return x.clone()
        with eval_mode(model), torch.enable_grad():
            x_adv = _Run(self, model, x, y, target, eps, step_size, callback).result()
        self._check_result(x_adv, x, eps)
        return x_adv

    def _check_result(self, x_adv: Tensor, x: Tensor, eps: Tensor) -> None:
        if not torch.isfinite(x_adv).all():
            raise RuntimeError(f"{self!r} produced non-finite values (the objective's gradient was not finite)")
        if x_adv.min() < 0 or x_adv.max() > 1:
            raise RuntimeError(f"{self!r} left the [0, 1] image box")
        delta = (x_adv - x).flatten(1)
        size = delta.abs().amax(1) if self.norm == "linf" else delta.norm(dim=1)
        if (size > eps.flatten() * (1 + _TOL) + _TOL).any():
            raise RuntimeError(f"{self!r} left the eps-ball: max perturbation {size.max().item():.6g}")



class _Run:
    """One call of a PGD configuration on one batch: radii as (N, 1, ..., 1) tensors, generator."""

    def __init__(self, attack: PGD, model: nn.Module, x: Tensor, y: Tensor, target: Tensor | None,
                 eps: Tensor, step_size: Tensor, callback: Callable[[int, Tensor], None] | None = None):
        self.a, self.model, self.x, self.y, self.target = attack, model, x, y, target
        self.callback = callback
        self.eps, self.step_size = eps, step_size
        self.generator = None
        if attack.random_start and attack.seed is not None:
            self.generator = torch.Generator(device=x.device).manual_seed(attack.seed)

    def result(self) -> Tensor:
        if not self.a.keep_best:
            return self.ascend()
        x = self.x
        best, (best_ok, best_value) = x.clone(), self.score(x)
        for _ in range(self.a.restarts):
            x_adv = self.ascend()
            ok, value = self.score(x_adv)
            better = (ok & ~best_ok) | ((ok == best_ok) & (value > best_value))
            best = torch.where(better.view(-1, *[1] * (x.dim() - 1)), x_adv, best)
            best_ok, best_value = best_ok | ok, torch.where(better, value, best_value)
        return best

    def objective(self, x_adv: Tensor) -> Tensor:
        value = self.a.objective(self.model, x_adv, self.x, self.y, self.target)
        if value.shape != (self.x.shape[0],):
            raise ValueError(f"the objective must return one value per example ({self.x.shape[0]},), "
                             f"got shape {tuple(value.shape)}")
        return value

    def score(self, x_adv: Tensor) -> tuple[Tensor, Tensor]:
        """(success, objective) of a candidate, for keeping the best example per input."""
        a = self.a
        if isinstance(a.objective, (CrossEntropy, Margin)):
            with torch.no_grad():
                logits = self.model(x_adv)
            value = a.objective.from_logits(logits, self.y, self.target)
        else:
            value = self.objective(x_adv.detach().requires_grad_(True)).detach()  # may differentiate inside
            with torch.no_grad():
                logits = self.model(x_adv)
        pred = logits.argmax(1)
        return (pred == self.target if a.targeted else pred != self.y), value

    def ascend(self) -> Tensor:
        x_adv = self.start() if self.a.random_start else self.x.clone()
        if self.callback:
            self.callback(0, x_adv.detach())
        for step in range(1, self.a.steps + 1):
            x_adv.requires_grad_(True)
            (grad,) = torch.autograd.grad(self.objective(x_adv).sum(), x_adv)
            with torch.no_grad():
                x_adv = self.project(x_adv.detach() + self.step(grad))
            if self.callback:
                self.callback(step, x_adv)
        return x_adv.detach()

    def step(self, grad: Tensor) -> Tensor:
        a = self.a
        if a.update == "sign":
            return self.step_size * grad.sign()
        if a.update == "softsign":
            return self.step_size * (a.softsign_scale * grad).clamp_(-1, 1)
        return self.step_size * grad / _norms(grad).clamp_min(1e-12)

    def project(self, x_adv: Tensor) -> Tensor:
        delta = x_adv - self.x
        if self.a.norm == "linf":
            delta = torch.maximum(torch.minimum(delta, self.eps), -self.eps)
        else:
            delta = delta * (self.eps / _norms(delta).clamp_min(1e-12)).clamp_max(1.0)
        return (self.x + delta).clamp_(0, 1)

    def start(self) -> Tensor:
        x, g = self.x, self.generator
        if self.a.norm == "linf":
            noise = torch.rand(x.shape, generator=g, device=x.device, dtype=x.dtype)
            return self.project(x + (2 * noise - 1) * self.eps)
        direction = torch.randn(x.shape, generator=g, device=x.device, dtype=x.dtype)
        radius = torch.rand(x.shape[0], generator=g, device=x.device, dtype=x.dtype) ** (1.0 / x[0].numel())
        direction = direction / _norms(direction).clamp_min(1e-12)
        return self.project(x + direction * self.eps * radius.view(-1, *[1] * (x.dim() - 1)))


def _norms(t: Tensor) -> Tensor:
    """Per-example l2 norms, shaped to broadcast against t: (N, 1, ..., 1)."""
    return t.flatten(1).norm(dim=1).view(-1, *[1] * (t.dim() - 1))


def _per_example(value, x: Tensor, name: str) -> Tensor:
    """A float or (N,) tensor -> (N, 1, ..., 1) on x's device and dtype."""
    if isinstance(value, Tensor):
        if value.shape != (x.shape[0],):
            raise ValueError(f"per-example {name} has shape {tuple(value.shape)} for {x.shape[0]} images")
        return value.to(device=x.device, dtype=x.dtype).view(-1, *[1] * (x.dim() - 1))
    return torch.full((x.shape[0],) + (1,) * (x.dim() - 1), float(value), device=x.device, dtype=x.dtype)


def _show(value) -> str:
    if isinstance(value, Tensor):
        return f"tensor of {value.numel()} values in [{value.min().item():.4g}, {value.max().item():.4g}]"
    return f"{value:g}" if isinstance(value, (int, float)) else repr(value)
