"""Named configurations of the PGD engine: FGSM, PGD (cross-entropy or margin, untargeted or
targeted) and the authors' evaluation protocol (docs/method.md#pgd)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from torch import Tensor

from interp_core.attacks.engine import PGD

#: Size and numpy seed of the authors' evaluation subset (``interp_core.data.paper_subset``).
PAPER_SUBSET = {"n": 200, "seed": 99}


@dataclass(frozen=True)
class PaperProtocol:
    """The authors' PGD evaluation: untargeted cross-entropy ascent, x' <- clip(x' + 0.01 sign(grad)),
    l-inf projection, no random start, one restart, 200 steps, on the seed-99 200-image subset."""

    steps: int = 200
    step_size: float = 0.01
    random_start: bool = False
    restarts: int = 1
    objective: str = "ce"
    norm: str = "linf"
    subset_n: int = PAPER_SUBSET["n"]
    subset_seed: int = PAPER_SUBSET["seed"]

    def attack(self, eps: float | Tensor, early_stop: bool = False) -> PGD:
        """The protocol at radius ``eps`` (a float, or (N,) radii, one per example). ``early_stop``
        (see ``PGD``) counts a success at any iterate: the strong protocol's use, not the authors'."""
        return PGD(eps, self.step_size, self.steps, norm=self.norm, random_start=self.random_start,
                   restarts=self.restarts, objective=self.objective, early_stop=early_stop)

    def record(self) -> dict:
        return {"attack": "paper-pgd", **asdict(self)}


def fgsm(eps: float, norm: str = "linf", objective: str = "ce", targeted: bool = False) -> PGD:
    """Fast gradient sign method (Goodfellow et al. 2015): one step of size eps from x."""
    return PGD(eps, eps, 1, norm=norm, objective=objective, targeted=targeted)


def pgd(eps: float | Tensor, steps: int = 40, step_size: float | Tensor | None = None, norm: str = "linf",
        random_start: bool = True, restarts: int = 1, objective: str = "ce", targeted: bool = False,
        seed: int | None = 0, kappa: float = 0.1, early_stop: bool = False) -> PGD:
    """PGD (Madry et al. 2018); ``step_size`` defaults to 2.5 eps / steps (per example when eps is a
    tensor (N,) of radii). ``early_stop``: see ``PGD``."""
    step_size = 2.5 * eps / max(steps, 1) if step_size is None else step_size
    return PGD(eps, step_size, steps, norm=norm, random_start=random_start, restarts=restarts,
               objective=objective, targeted=targeted, seed=seed, kappa=kappa, early_stop=early_stop)


def paper_pgd(eps: float, steps: int = 200, step_size: float = 0.01) -> PGD:
    """The authors' protocol (``PaperProtocol``) at one eps; ``steps`` 1, 10, 100 or 200 in the paper."""
    return PaperProtocol(steps=steps, step_size=step_size).attack(eps)
