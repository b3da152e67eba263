"""The one projected-gradient engine (docs/method.md#attacks). FGSM, PGD, the authors' evaluation
protocol, ISA, AAI and the training methods' inner maximizations are configurations of ``PGD``.

An objective is a per-example loss that the attack *maximizes*::

    objective(model, x_adv, x, y, target) -> (N,)

It may differentiate through interpretation maps (``create_graph=True`` inside), because the
engine only asks autograd for d objective / d x_adv. Gradients are taken with
``torch.autograd.grad``, so parameter ``.grad`` and ``requires_grad`` are never touched.
"""

from __future__ import annotations

import math
from typing import Callable, Protocol, runtime_checkable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from interp_core.checks import LINF_HINT, check_range
from interp_core.metrics import best_other_class
from interp_core.models import eval_mode

Objective = Callable[[nn.Module, Tensor, Tensor, Tensor, "Tensor | None"], Tensor]
#: ``callback(step, x_adv)``: sees an attack's iterates (step 0: the start point), for step-by-step views.
StepCallback = Callable[[int, Tensor], None]

NORMS = ("linf", "l2")
UPDATES = ("sign", "normalized", "softsign")
_TOL = 1e-5


@runtime_checkable
class Attack(Protocol):
    """What every attack is (``ATTACKS`` builds them all; PGD and its presets, ISA, AAI, MinimumEps).

    ``attack(model, x, y, target=None, *, callback=None) -> x_adv``: x (N, C, H, W) in [0, 1], y (N,)
    true classes, target (N,) the classes a targeted attack aims for (``targeted`` attacks default
    it to the runner-up class where they allow None). Returns x_adv of x's shape, device and dtype,
    in [0, 1] and inside the attack's threat model; the model's modes and parameters are left as
    they were. ``callback(step, x_adv)`` sees the attack's iterates as it goes (step 0: the start).
    """

    targeted: bool

    def __call__(self, model: nn.Module, x: Tensor, y: Tensor, target: Tensor | None = None, *,
                 callback: StepCallback | None = None) -> Tensor: ...


class LogitObjective:
    """An objective of the logits alone: ``from_logits(logits, y, target) -> (N,)``. The engine
    scores candidates from one forward pass of such objectives."""

    targeted: bool = False

    def __call__(self, model, x_adv, x, y, target=None):
        return self.from_logits(model(x_adv), y, target)

    def from_logits(self, logits: Tensor, y: Tensor, target: Tensor | None) -> Tensor:  # pragma: no cover
        raise NotImplementedError


class CrossEntropy(LogitObjective):
    """Untargeted: CE(Z(x'), y), ascended. Targeted: -CE(Z(x'), t), so the attack descends the
    target's cross-entropy."""

    def __init__(self, targeted: bool = False):
        self.targeted = targeted

    def from_logits(self, logits: Tensor, y: Tensor, target: Tensor | None) -> Tensor:
        if self.targeted:
            return -F.cross_entropy(logits, target, reduction="none")
        return F.cross_entropy(logits, y, reduction="none")

    def __repr__(self) -> str:
        return f"CrossEntropy(targeted={self.targeted})"


def margin_loss(logits: Tensor, cls: Tensor, kappa: float) -> Tensor:
    """C&W margin of class ``cls`` (docs/method.md#margin): max(max_{j != c} Z_j - Z_c, -kappa), (N,).

    Below zero once c wins; clipped at -kappa so that a margin of kappa is enough."""
    return _margin(logits, cls).clamp_min(-kappa)


def _margin(logits: Tensor, cls: Tensor) -> Tensor:
    """max_{j != c} Z_j - Z_c, unclipped, (N,)."""
    return best_other_class(logits, cls).values - logits.gather(1, cls[:, None]).squeeze(1)


class Margin(LogitObjective):
    """C&W margin with confidence ``kappa``. Targeted: maximizes -margin(x', t) (t must win by
    kappa); untargeted: maximizes -margin(x', y) clipped the other way, i.e. min(max_{j != y} Z_j
    - Z_y, kappa)."""

    def __init__(self, kappa: float = 0.1, targeted: bool = False):
        check_range("kappa", kappa)
        self.kappa, self.targeted = kappa, targeted

    def from_logits(self, logits: Tensor, y: Tensor, target: Tensor | None) -> Tensor:
        if self.targeted:
            return -margin_loss(logits, target, self.kappa)
        return _margin(logits, y).clamp_max(self.kappa)

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


def check_settings(eps, step_size=None, steps: int = 0, norm: str = "linf", restarts: int = 1,
                   random_start: bool = False, keep_best: bool = True) -> None:
    """Check an attack's settings when it is configured, not at its first call: raises ValueError
    naming the allowed range. PGD runs it, and so do the attacks built on PGD (ISA, AAI,
    MinimumEps) for the settings they take.

    eps: l-inf radius in [0, 1] or l2 radius >= 0, a number or a tensor (N,); step_size: >= 0 (> 0
    when steps > 0 and eps > 0), or None where the attack derives it from eps; steps: an integer in
    [0, 100000]; norm: "linf" or "l2"; restarts: an integer in [1, 1000] (> 1 needs random_start and
    keep_best).
    """
    if norm not in NORMS:
        raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")
    check_range("eps", eps, 0.0, 1.0 if norm == "linf" else math.inf, hint=LINF_HINT if norm == "linf" else "")
    if not (isinstance(steps, int) and 0 <= steps <= 100_000):
        raise ValueError(f"steps must be an integer in [0, 100000], got {steps!r}")
    if step_size is not None:
        check_range("step_size", step_size)
        if steps > 0 and not isinstance(step_size, Tensor) and step_size == 0 and (isinstance(eps, Tensor) or eps > 0):
            raise ValueError("step_size must be > 0 when steps > 0")
    if not (isinstance(restarts, int) and 1 <= restarts <= 1000):
        raise ValueError(f"restarts must be an integer in [1, 1000], got {restarts!r}")
    if restarts > 1 and not random_start:
        raise ValueError("restarts > 1 repeat the same deterministic run unless random_start=True")
    if restarts > 1 and not keep_best:
        raise ValueError("restarts > 1 need keep_best=True to choose between the runs")


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
        early_stop: per example, stop at the first iterate (start points included) that succeeds
            and return that iterate; an example that succeeded is dropped from the batch for the
            remaining steps and restarts, so the work shrinks with the examples left standing.
            The attack then counts a success anywhere along the path, not only at the final
            iterate. Needs a built-in objective ("ce" or "margin": the success check reuses the
            logits of the gradient pass) and keep_best; no callback.

    An :class:`Attack`: ``attack(model, x, y, target=None, *, callback=None)`` with x (N, C, H, W) in [0, 1]
    returns x_adv of the same shape, device and dtype, in [0, 1] and inside the ball. The model is
    put in eval mode for the attack and its modes are restored afterwards. ``callback(step, x_adv)``,
    if given, sees every iterate of every restart (step 0 = the start point), for step-by-step views.
    Random starts are drawn for the whole batch, so an example's start point does not depend on
    which other examples are still attacked.
    """

    def __init__(self, eps: float, step_size: float, steps: int, norm: str = "linf", random_start: bool = False,
                 restarts: int = 1, objective: Objective | str = "ce", targeted: bool = False,
                 seed: int | None = None, kappa: float = 0.1, update: str | None = None,
                 softsign_scale: float = 1000.0, keep_best: bool = True, early_stop: bool = False):
        if step_size is None:
            raise ValueError("step_size must be given: a number >= 0 or a tensor (N,)")
        check_settings(eps, step_size, steps, norm, restarts, random_start, keep_best)
        if seed is not None:
            check_range("seed", seed, integer=True)
        check_range("softsign_scale", softsign_scale)
        check_range("kappa", kappa)
        update = update or ("sign" if norm == "linf" else "normalized")
        if update not in UPDATES:
            raise ValueError(f"update must be one of {UPDATES}, got {update!r}")
        if isinstance(objective, str):
            if objective not in OBJECTIVES:
                raise ValueError(f"unknown objective {objective!r}; known: {sorted(OBJECTIVES)} or a callable")
            objective = Margin(kappa, targeted) if objective == "margin" else CrossEntropy(targeted)
        elif not callable(objective):
            raise ValueError("objective must be a name or a callable (model, x_adv, x, y, target) -> (N,)")
        if early_stop and not (keep_best and isinstance(objective, (CrossEntropy, Margin))):
            raise ValueError("early_stop needs keep_best=True and a built-in objective ('ce' or 'margin')")
        self.eps, self.step_size, self.steps, self.norm = eps, step_size, steps, norm
        self.random_start, self.restarts, self.objective = random_start, restarts, objective
        self.targeted, self.seed, self.update, self.softsign_scale = targeted, seed, update, softsign_scale
        self.keep_best, self.early_stop = keep_best, early_stop

    def __repr__(self) -> str:
        return (f"PGD(eps={_show(self.eps)}, step_size={_show(self.step_size)}, steps={self.steps}, "
                f"norm={self.norm!r}, "
                f"random_start={self.random_start}, restarts={self.restarts}, objective={self.objective!r}, "
                f"targeted={self.targeted}, update={self.update!r}"
                + (", early_stop=True)" if self.early_stop else ")"))

    def __call__(self, model: nn.Module, x: Tensor, y: Tensor, target: Tensor | None = None, *,
                 callback: StepCallback | None = None) -> Tensor:
        y, target = check_data(x, y, target, self.targeted)
        if callback is not None and self.early_stop:
            raise ValueError("a callback sees whole-batch iterates; early_stop drops examples from the batch")
        x = x.detach()
        eps, step_size = _per_example(self.eps, x, "eps"), _per_example(self.step_size, x, "step_size")
        if x.shape[0] == 0 or not (eps > 0).any():
            return x.clone()
        with eval_mode(model), torch.enable_grad():
            x_adv = _AttackRun(self, model, x, y, target, eps, step_size, callback).result()
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



class _AttackRun:
    """One call of a PGD configuration on one batch: radii as (N, 1, ..., 1) tensors, generator.

    ``rows`` arguments below select examples of the batch (None: all of them)."""

    def __init__(self, attack: PGD, model: nn.Module, x: Tensor, y: Tensor, target: Tensor | None,
                 eps: Tensor, step_size: Tensor, callback: StepCallback | None = None):
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
            rows = (~best_ok).nonzero().squeeze(1) if self.a.early_stop else None
            if rows is not None and not len(rows):
                break
            x_adv = self.ascend(rows)
            ok, value = self.score(x_adv, rows)
            old_ok, old_value = _take(best_ok, rows), _take(best_value, rows)
            better = (ok & ~old_ok) | ((ok == old_ok) & (value > old_value))
            chosen = torch.where(better.view(-1, *[1] * (x.dim() - 1)), x_adv, _take(best, rows))
            ok, value = old_ok | ok, torch.where(better, value, old_value)
            if rows is None:
                best, best_ok, best_value = chosen, ok, value
            else:
                best[rows], best_ok[rows], best_value[rows] = chosen, ok, value
        return best

    def objective(self, x_adv: Tensor) -> Tensor:
        value = self.a.objective(self.model, x_adv, self.x, self.y, self.target)
        if value.shape != (self.x.shape[0],):
            raise ValueError(f"the objective must return one value per example ({self.x.shape[0]},), "
                             f"got shape {tuple(value.shape)}")
        return value

    def success(self, logits: Tensor, rows: Tensor | None) -> Tensor:
        pred = logits.argmax(1)
        return pred == _take(self.target, rows) if self.a.targeted else pred != _take(self.y, rows)

    def score(self, x_adv: Tensor, rows: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """(success, objective) of a candidate for ``rows``, for keeping the best example per input."""
        a = self.a
        if isinstance(a.objective, LogitObjective):
            with torch.no_grad():
                logits = self.model(x_adv)
            value = a.objective.from_logits(logits, _take(self.y, rows), _take(self.target, rows))
        else:  # only whole batches reach here (early_stop needs a built-in objective)
            value = self.objective(x_adv.detach().requires_grad_(True)).detach()  # may differentiate inside
            with torch.no_grad():
                logits = self.model(x_adv)
        return self.success(logits, rows), value

    def ascend(self, rows: Tensor | None = None) -> Tensor:
        """One run from the start point for ``rows``: the final iterate, or with early_stop each
        example's first successful iterate."""
        x, eps, step_size = _take(self.x, rows), _take(self.eps, rows), _take(self.step_size, rows)
        x_adv = self.start(rows) if self.a.random_start else x.clone()
        if self.callback:
            self.callback(0, x_adv.detach())
        # early_stop: positions (in x_adv) still attacked; rows index the batch, live index x_adv
        live = torch.arange(len(x), device=x.device) if self.a.early_stop else None
        for step in range(1, self.a.steps + 1):
            if live is None:
                x_cur = x_adv.requires_grad_(True)
                value = self.objective(x_cur)
            else:
                x_cur = x_adv[live].requires_grad_(True)
                batch = live if rows is None else rows[live]
                logits = self.model(x_cur)
                value = self.a.objective.from_logits(logits, self.y[batch], _take(self.target, batch))
                standing = ~self.success(logits, batch)
            (grad,) = torch.autograd.grad(value.sum(), x_cur)
            with torch.no_grad():
                if live is None:
                    x_adv = self.project(x_cur.detach() + self.step(grad, step_size), x, eps)
                else:  # examples that succeeded keep that iterate and leave the batch
                    live, x_cur, grad = live[standing], x_cur.detach()[standing], grad[standing]
                    x_adv[live] = self.project(x_cur + self.step(grad, step_size[live]), x[live], eps[live])
                    if not len(live):
                        break
            if self.callback:
                self.callback(step, x_adv)
        return x_adv.detach()

    def step(self, grad: Tensor, step_size: Tensor) -> Tensor:
        a = self.a
        if a.update == "sign":
            return step_size * grad.sign()
        if a.update == "softsign":
            return step_size * (a.softsign_scale * grad).clamp_(-1, 1)
        return step_size * grad / _norms(grad).clamp_min(1e-12)

    def project(self, x_adv: Tensor, x: Tensor, eps: Tensor) -> Tensor:
        delta = x_adv - x
        if self.a.norm == "linf":
            delta = torch.maximum(torch.minimum(delta, eps), -eps)
        else:
            delta = delta * (eps / _norms(delta).clamp_min(1e-12)).clamp_max(1.0)
        return (x + delta).clamp_(0, 1)

    def start(self, rows: Tensor | None) -> Tensor:
        """Random start for ``rows``, drawn for the whole batch (see PGD)."""
        full, g = self.x, self.generator
        x, eps = _take(full, rows), _take(self.eps, rows)
        if self.a.norm == "linf":
            noise = _take(torch.rand(full.shape, generator=g, device=full.device, dtype=full.dtype), rows)
            return self.project(x + (2 * noise - 1) * eps, x, eps)
        direction = _take(torch.randn(full.shape, generator=g, device=full.device, dtype=full.dtype), rows)
        radius = torch.rand(full.shape[0], generator=g, device=full.device, dtype=full.dtype) ** (1.0 / full[0].numel())
        direction = direction / _norms(direction).clamp_min(1e-12)
        return self.project(x + direction * eps * _take(radius, rows).view(-1, *[1] * (x.dim() - 1)), x, eps)


def _take(t: Tensor | None, rows: Tensor | None) -> Tensor | None:
    """``t[rows]``; None rows mean the whole batch (t itself), a None t stays None."""
    return t if rows is None or t is None else t[rows]


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
