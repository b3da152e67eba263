"""Training configurations: the paper's schedules per dataset, a reduced CPU schedule, and the
learning-rate and eps-ramp functions of the step (PAPER.md section 6).

``paper``: the authors' schedule (MNIST: batch 50, 100 epochs, lr 1e-4, eps 0.3 ramped from step
2k to 10k, 40 inner steps of 0.01; CIFAR-10: batch 128, 200 epochs, lr 1e-3 -> 1e-4 at step 40k
-> 1e-5 at 60k, eps 8/255 ramped from 5k to 70k, 10 inner steps of 2/255), trained on the
``train`` split (the first 5,000 training images held out) and evaluated on ``heldout``.

``cpu``: the reduced schedule of the project's shipped checkpoints, sized for a 2-core CPU
(a training subset, a few epochs, fewer inner steps with a larger step, lr 1e-3, a short ramp).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields

from interp_core.checks import check_range

from interp_core.training.methods import DEFAULT_GAMMA, TRAINING_METHODS


@dataclass
class TrainConfig:
    """Everything that determines a training run (saved in the checkpoint's card).

    lr_steps: [[step, lr], ...] switches of the learning rate after ``lr`` at step 0; eps_ramp:
    [start, end] steps of the linear eps ramp (eps = 0 before start); subset: train on the first
    ``subset`` images of ``train_split`` (None: all); eval_*: the final held-out check (PGD as
    the authors evaluate: no random start, ``eval_steps`` signed steps of ``eval_step_size`` at
    the training eps, on the first ``eval_n`` images of ``eval_split``); checkpoint_every: steps
    between periodic checkpoints (an epoch end always writes one). init: "torch" (PyTorch's
    default initialization) or "authors" (:func:`interp_core.models.init_authors_`);
    authors_ig_weight: IG-Norm / IG-Sum-Norm weigh their IG term by gamma / batch_size as the
    authors' code does (it differentiates the batch-mean loss); gamma_start: the regularizer is
    off (weight 0) before this step, a warm-up on the plain loss. The splits are those of
    :func:`interp_core.data.load_dataset`; "demo" (the committed sample) serves quick tests.
    """

    method: str
    dataset: str
    arch: str = "smallgap"
    epochs: int = 100
    batch_size: int = 50
    lr: float = 1e-4
    lr_steps: list = field(default_factory=list)
    eps: float = 0.3
    eps_ramp: list = field(default_factory=lambda: [0, 0])
    steps: int = 40
    step_size: float = 0.01
    gamma: float | None = None
    subset: int | None = None
    seed: int = 0
    eval_n: int = 200
    eval_steps: int = 200
    eval_step_size: float = 0.01
    checkpoint_every: int = 500
    train_split: str = "train"
    eval_split: str = "heldout"
    preset: str = ""
    init: str = "torch"
    authors_ig_weight: bool = False
    gamma_start: int = 0

    def __post_init__(self):
        if self.method not in TRAINING_METHODS:
            raise ValueError(f"unknown training method {self.method!r}; known: {sorted(TRAINING_METHODS)}")
        if self.gamma is None:
            self.gamma = DEFAULT_GAMMA[self.method]
        for name in ("epochs", "batch_size", "checkpoint_every"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.steps < 0 or self.eval_steps < 0 or self.eval_n < 0:
            raise ValueError("steps, eval_steps and eval_n must be >= 0")
        if not 0 <= self.eps <= 1:
            raise ValueError(f"eps must be in [0, 1] (images are in [0, 1]), got {self.eps}")
        if self.subset is not None and self.subset < self.batch_size:
            raise ValueError(f"subset ({self.subset}) must hold at least one batch ({self.batch_size})")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"lr must be finite in (0, inf), got {self.lr}")
        if self.init not in ("torch", "authors"):
            raise ValueError(f"init must be 'torch' or 'authors', got {self.init!r}")
        if self.gamma_start < 0:
            raise ValueError(f"gamma_start must be >= 0, got {self.gamma_start}")
        for name in ("gamma", "step_size", "eval_step_size"):  # NaN and inf slip past the tests above
            check_range(name, getattr(self, name), 0.0, math.inf)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown training settings {sorted(unknown)}; known: {sorted(known)}")
        return cls(**data)

    def lr_at(self, step: int) -> float:
        """Learning rate at a (0-based) optimizer step."""
        lr = self.lr
        for at, value in sorted(self.lr_steps):
            if step >= at:
                lr = value
        return lr

    def gamma_at(self, step: int) -> float:
        """Regularizer weight at a step: 0 before ``gamma_start``; gamma / batch_size for the IG
        methods under ``authors_ig_weight``; else gamma."""
        if step < self.gamma_start:
            return 0.0
        if self.authors_ig_weight and self.method in ("ig-norm", "ig-sum-norm"):
            return self.gamma / self.batch_size
        return self.gamma

    def eps_at(self, step: int) -> float:
        """Training eps at a step: 0 until eps_ramp[0], linear up to ``eps`` at eps_ramp[1]."""
        start, end = self.eps_ramp
        if step >= end:
            return self.eps
        if step < start:
            return 0.0
        return self.eps * (step - start) / (end - start)


PRESETS: dict[str, dict[str, dict]] = {
    "paper": {
        "mnist": dict(epochs=100, batch_size=50, lr=1e-4, lr_steps=[], eps=0.3, eps_ramp=[2000, 10000],
                      steps=40, step_size=0.01, init="authors", authors_ig_weight=True),
        "cifar10": dict(epochs=200, batch_size=128, lr=1e-3, lr_steps=[[40000, 1e-4], [60000, 1e-5]],
                        eps=8 / 255, eps_ramp=[5000, 70000], steps=10, step_size=2 / 255, init="authors",
                        authors_ig_weight=True),
    },
    "cpu": {
        "mnist": dict(epochs=3, batch_size=50, lr=1e-3, lr_steps=[[450, 3e-4]], eps=0.3, eps_ramp=[50, 300],
                      steps=10, step_size=0.04, subset=10000),
        "cifar10": dict(epochs=3, batch_size=128, lr=1e-3, lr_steps=[], eps=8 / 255, eps_ramp=[20, 120],
                        steps=5, step_size=2.5 / 255, subset=10000),
    },
}


def make_config(method: str, dataset: str, arch: str = "smallgap", preset: str = "paper", **overrides) -> TrainConfig:
    """A TrainConfig from a named preset for ``dataset``, with ``overrides`` (None values ignored)."""
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; known: {sorted(PRESETS)}")
    if dataset not in PRESETS[preset]:
        raise ValueError(f"preset {preset!r} has no schedule for dataset {dataset!r}; known: {sorted(PRESETS[preset])}")
    settings = dict(PRESETS[preset][dataset], method=method, dataset=dataset, arch=arch, preset=preset)
    settings.update({k: v for k, v in overrides.items() if v is not None})
    return TrainConfig.from_dict(settings)
