"""Training configurations: the paper's schedules per dataset, a reduced CPU schedule, and the
learning-rate and eps-ramp functions of the step (docs/method.md#training).

``paper``: the authors' schedule (MNIST: batch 50, 100 epochs, lr 1e-4, eps 0.3 ramped from step
2k to 10k, 40 inner steps of 0.01; CIFAR-10: batch 128, 200 epochs, lr 1e-3 -> 1e-4 at step 40k
-> 1e-5 at 60k, eps 8/255 ramped from 5k to 70k, 10 inner steps of 2/255), trained on the
``train`` split (the first 5,000 training images held out) and evaluated on ``heldout``.

``cpu``: the reduced schedule of the project's shipped checkpoints, sized for a 2-core CPU. MNIST:
schedule s3 of results/training-search.md, the best found within 45 minutes per model (PGD-AT at
0.905 for eps 0.3; Int2 far above it at eps 0.35 / 0.4): 8 epochs of the 55,000 training images
(8,800 steps), lr 1e-3 then 1e-4 from step 7,000, eps ramped over steps 300-2,500, 10 inner steps of
0.04, the authors' initialization; 26-29 minutes per adversarial method on one thread. CIFAR-10: 3
epochs of 10,000 images, 5 inner steps of 2.5/255.

``fast``: the ``cpu`` schedule with a one-step inner attack (FGSM from a random start, step 1.25
eps: "fast" adversarial training, Wong et al. 2020; with int or int2 the same one-step inner attack
on their objective) and the catastrophic-overfitting check on 200 training images
(``overfit_check``). Measured (benchmarks/RESULTS.md, one thread, MNIST batch 50): a pgd-at step
costs 1.62 normal steps instead of 7.52 with 10 inner steps, an int step 2.8 instead of 8.96.
CIFAR-10: 10 epochs of the 45,000 training images, eps ramped over the first 30%, lr 1e-3 then
1e-4 for the last quarter.

``free``: free adversarial training of ``pgd-at`` (Shafahi et al. 2019) on the ``fast`` schedules:
each batch is replayed m = 4 times in a row (``steps``), every replay one optimizer step on x + delta
whose backward pass also moves delta by eps times the sign of the input gradient (``step_size_eps``
1), delta carried on to the next replay and batch; the overfitting check of ``fast``. ``epochs``
count normal epochs of cost: 8 epochs of MNIST make the 8,800 optimizer steps of ``cpu`` in 2
passes over the images. The paper's experiments are on CIFAR-10, CIFAR-100 and ImageNet, not MNIST:
CIFAR-10 batches replayed m = 2 to 10 times (m = 8 its most robust at 8/255), ImageNet m = 4. At the
project's 10 CIFAR-10 epochs m = 8 would see the images 1.25 times, so both datasets use m = 4.
Measured (benchmarks/RESULTS.md, one thread, MNIST batch 50): one replay costs 1.07 normal steps,
so a free run costs about what normal training of its epochs does.

``classroom``: a compare of two methods that ends within about 2 minutes on the project's 2-core
CPU (one thread per run, both at once, evaluation included; the ``classroom`` benchmark measures
it): 3 epochs of 10,000 MNIST images (600 steps) at a small training eps (0.15) with the ``fast``
preset's one-step inner attack and the authors' initialization, so that a short run reaches about
0.9 clean accuracy; it shows a difference a class can see (accuracy and AAI tau at eps 0.1), not
the paper's numbers. MNIST only: a CIFAR-10 run of such a budget stayed near chance accuracy
(measured: 93 steps of 64 images).

The ``paper`` schedule is given in optimizer steps, as the authors define it. The others give
the eps ramp, the lr switches and the regularizer warm-up as fractions of the run's total steps
(``schedule_in="fraction"``), resolved by :meth:`TrainConfig.resolve` once the number of training
images is known, so any run length reaches the training eps.
"""

from __future__ import annotations

import json
import math
from dataclasses import MISSING, asdict, dataclass, field, fields, replace
from typing import Callable

from interp_core.checks import check_range
from interp_core.data import DATASETS
from interp_core.models import ACTIVATIONS, ARCHITECTURES, INITS
from interp_core.training.methods import DEFAULT_GAMMA, FREE_METHODS, TRAINING_METHODS

#: Units of the schedule positions (eps_ramp, lr_steps, gamma_start) of a TrainConfig.
SCHEDULE_UNITS = ("steps", "fraction")
#: The settings that are schedule positions.
POSITIONS = ("eps_ramp", "lr_steps", "gamma_start")


def _position(text: str) -> int | float:
    """A schedule position: a step ("2000") or a fraction of the run ("0.5")."""
    try:
        return int(text)
    except ValueError:
        return float(text)


def step_lr_pairs(text: str) -> list[list]:
    """Learning-rate switches "AT:LR,AT:LR" -> [[at, lr], ...] (AT a step, or a fraction of the run
    under ``schedule_in=fraction``); "none" (or "") -> []."""
    if text.strip() in ("", "none"):
        return []
    try:
        return [[_position(at), float(lr)] for at, lr in (part.split(":") for part in text.split(","))]
    except ValueError:
        raise ValueError(f"expected AT:LR,AT:LR such as 40000:1e-4,60000:1e-5 (steps) or 0.75:3e-4 "
                         f"(fractions), got {text!r}") from None


def step_range(text: str) -> list:
    """An eps ramp "START,END" -> [start, end] (steps, or fractions of the run; 0 <= start <= end)."""
    try:
        start, end = (_position(part) for part in text.split(","))
    except ValueError:
        raise ValueError(f"expected START,END such as 2000,10000 (steps) or 0.08,0.5 (fractions), "
                         f"got {text!r}") from None
    if not 0 <= start <= end:
        raise ValueError(f"the eps ramp needs 0 <= START <= END, got {text!r}")
    return [start, end]


def _format_lr_steps(value: list) -> str:
    return ",".join(f"{step}:{lr!r}" for step, lr in value) or "none"


def _setting(default, help: str, choices: Callable[[], list] | None = None, parse: Callable | None = None,
             show: Callable | None = None):
    """A TrainConfig field with what its ``train`` flag needs: help, choices (a function, read when
    the parser is built), and for list values the text form (``parse`` and its inverse ``show``)."""
    metadata = {"help": help, "choices": choices, "parse": parse, "show": show}
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=metadata)
    return field(default=default, metadata=metadata)


@dataclass
class TrainConfig:
    """Everything that determines a training run (saved in the checkpoint's card). Each field's
    metadata ``help`` says what it means; the ``train`` command has one flag per field
    (``--batch-size`` for ``batch_size``), and :func:`config_to_args` writes a config as flags.

    The final held-out check is PGD as the authors evaluate (no random start, ``eval_steps``
    signed steps of ``eval_step_size`` at the training eps) on the first ``eval_n`` images of
    ``eval_split``. The splits are those of :func:`interp_core.data.load_dataset`; "demo" (the
    committed sample) serves quick tests. The positions in ``eps_ramp``, ``lr_steps`` and
    ``gamma_start`` are optimizer steps, or under ``schedule_in="fraction"`` fractions in [0, 1]
    of the run's total steps that :meth:`resolve` turns into steps.
    """

    method: str = _setting(MISSING, "training method", choices=lambda: sorted(TRAINING_METHODS))
    dataset: str = _setting(MISSING, "dataset", choices=lambda: list(DATASETS))
    arch: str = _setting("smallgap", "architecture (default smallgap)", choices=lambda: sorted(ARCHITECTURES))
    epochs: int = _setting(100, "epochs")
    batch_size: int = _setting(50, "global batch (split over torchrun processes)")
    lr: float = _setting(1e-4, "Adam learning rate from step 0")
    lr_steps: list = _setting([], "learning-rate switches AT:LR,... at positions AT (see schedule_in; none: lr "
                                        "throughout)",
                              parse=step_lr_pairs, show=_format_lr_steps)
    eps: float = _setting(0.3, "training eps in [0, 1] (CIFAR-10: 8/255)")
    eps_ramp: list = _setting([0, 0], "START,END: eps is 0 before position START and reaches eps at END (see "
                                          "schedule_in)",
                              parse=step_range, show=lambda v: f"{v[0]},{v[1]}")
    steps: int = _setting(40, "inner attack steps")
    step_size: float = _setting(0.01, "inner attack step")
    step_size_eps: float = _setting(0.0, "inner attack step as a multiple of the step's (ramped) eps, in place of "
                                         "step_size (fast adversarial training: 1 step of 1.25 eps from a random "
                                         "start); 0: step_size")
    gamma: float | None = _setting(None, "regularizer weight (TRADES beta, IG lambda, Int gamma; default: the "
                                         "method's)")
    subset: int | None = _setting(None, "train on the first N images of the train split (default: all)")
    seed: int = _setting(0, "seeds the initialization, the batch order and the inner attacks")
    eval_n: int = _setting(200, "held-out images for the final check (0: skip)")
    eval_steps: int = _setting(200, "PGD steps of the final check")
    eval_step_size: float = _setting(0.01, "PGD step of the final check")
    checkpoint_every: int = _setting(500, "steps between periodic checkpoints (an epoch end always writes one)")
    free: bool = _setting(False, "free adversarial training (Shafahi et al. 2019; pgd-at): each batch is replayed "
                                 "`steps` times in a row (the hop steps m), every replay one optimizer step on x + "
                                 "delta whose backward pass also moves delta one signed step (the inner step); delta "
                                 "is carried to the next replay and batch; epochs count normal epochs of cost (E "
                                 "epochs: E/m passes over the images)")
    overfit_check: int = _setting(0, "training images on which random-start PGD accuracy is measured before each "
                                     "checkpoint once eps is reached; a fall of more than 0.2 below the best stops "
                                     "the run, keeping the last checkpoint (catastrophic overfitting of one-step "
                                     "training); 0: off")
    init_from: str = _setting("", "start from the weights of this checkpoint (a shipped name or a file: "
                                  "fine-tuning); its architecture and classes must match; empty: fresh weights")
    train_split: str = _setting("train", "training images (train: the first 5,000 held out; demo: the committed "
                                         "sample; demo_train: its 100 images after the paper subset)",
                                choices=lambda: ["train", "train_full", "demo", "demo_train"])
    eval_split: str = _setting("heldout", "images of the final check (demo_heldout: the paper subset's 200 demo "
                                          "images)", choices=lambda: ["heldout", "test", "demo", "demo_heldout"])
    preset: str = _setting("", "the schedule the settings start from (paper: the authors'; cpu: the reduced "
                               "schedule of the shipped checkpoints; fast: cpu with a one-step inner attack; free: "
                               "free adversarial training of pgd-at, m = 4; classroom: a run of minutes on a CPU; "
                               "default paper)", choices=lambda: sorted(PRESETS))
    init: str = _setting("torch", "weight initialization: torch (PyTorch's defaults) or authors (the authors' "
                                  "code)", choices=lambda: list(INITS))
    activation: str = _setting("relu", "the network's activation: relu (the paper's) or softplus (beta 1, smooth)",
                               choices=lambda: list(ACTIVATIONS))
    authors_ig_weight: bool = _setting(False, "ig-norm / ig-sum-norm weigh their IG term by gamma / batch_size, "
                                              "as the authors' code does")
    gamma_start: float = _setting(0, "the regularizer is off (weight 0) before this position: a warm-up on the "
                                     "plain loss")
    schedule_in: str = _setting("steps", "units of the positions in eps_ramp, lr_steps and gamma_start: steps, or "
                                         "fraction (of the run's total steps, in [0, 1])",
                                choices=lambda: list(SCHEDULE_UNITS))

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
        if self.init not in INITS:
            raise ValueError(f"init must be one of {INITS}, got {self.init!r}")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {list(ACTIVATIONS)}, got {self.activation!r}")
        if self.schedule_in not in SCHEDULE_UNITS:
            raise ValueError(f"schedule_in must be one of {SCHEDULE_UNITS}, got {self.schedule_in!r}")
        positions = {"eps_ramp": list(self.eps_ramp), "gamma_start": [self.gamma_start],
                     "lr_steps": [at for at, _ in self.lr_steps]}
        top = 1 if self.schedule_in == "fraction" else math.inf
        for name, values in positions.items():
            if any(not 0 <= v <= top for v in values):
                allowed = "[0, 1] (fractions of the run's steps)" if top == 1 else ">= 0 (steps)"
                raise ValueError(f"{name} positions must be in {allowed}, got {values}")
        if len(self.eps_ramp) != 2 or self.eps_ramp[0] > self.eps_ramp[1]:
            raise ValueError(f"eps_ramp must be [start, end] with start <= end, got {self.eps_ramp}")
        for name in ("gamma", "step_size", "eval_step_size"):  # NaN and inf slip past the tests above
            check_range(name, getattr(self, name), 0.0, math.inf)
        check_range("step_size_eps", self.step_size_eps, 0.0, 10.0)
        check_range("overfit_check", self.overfit_check, 0, 10_000, integer=True)
        if self.free and self.method != "normal":  # normal ignores the inner attack, free training included
            if self.method not in FREE_METHODS:
                raise ValueError(f"free adversarial training trains on CE(x + delta), pgd-at's loss; {self.method!r} "
                                 f"has another: use {' or '.join(FREE_METHODS)}, or the fast preset's one-step "
                                 f"inner attack")
            if self.steps < 1:
                raise ValueError(f"free adversarial training replays each batch `steps` times (m >= 1), got "
                                 f"steps={self.steps}")

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown training settings {sorted(unknown)}; known: {sorted(known)}")
        return cls(**data)

    def run_steps(self, n_images: int) -> int:
        """Optimizer steps of a one-process run on ``n_images`` training images (full batches only);
        a free run replays each batch ``replays`` times within the same count."""
        return self.epochs * (n_images // self.batch_size)

    @property
    def trains_free(self) -> bool:
        """Whether the run is free adversarial training (``free`` with a method of FREE_METHODS)."""
        return self.free and self.method in FREE_METHODS

    @property
    def replays(self) -> int:
        """Optimizer steps per batch: the hop steps m (``steps``) of free adversarial training, else 1."""
        return self.steps if self.trains_free else 1

    def resolve(self, total_steps: int) -> "TrainConfig":
        """This config with every schedule position in optimizer steps, for a run of ``total_steps``
        (>= 1) steps: fractions are rounded to the nearest step; a "steps" config is returned as is."""
        if total_steps < 1:
            raise ValueError(f"total_steps must be >= 1, got {total_steps}")
        if self.schedule_in == "steps":
            return self
        at = lambda fraction: int(round(fraction * total_steps))  # noqa: E731
        return replace(self, schedule_in="steps", eps_ramp=[at(f) for f in self.eps_ramp],
                       lr_steps=[[at(f), lr] for f, lr in self.lr_steps], gamma_start=at(self.gamma_start))

    def inner_step_size(self, eps: float) -> float:
        """The inner attack's step at training radius ``eps``: ``step_size_eps * eps`` when set, else
        ``step_size``."""
        return self.step_size_eps * eps if self.step_size_eps else self.step_size

    def lr_at(self, step: int) -> float:
        """Learning rate at a (0-based) optimizer step (of a config in steps: see :meth:`resolve`)."""
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
        """Training eps at a step: 0 until eps_ramp[0], linear up to ``eps`` at eps_ramp[1] (of a config
        in steps: see :meth:`resolve`)."""
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
        # schedule s3 of results/training-search.md: 8,800 steps on the 55,000 train images, lr 1e-3 then
        # 1e-4 from step 7,000, eps ramped over steps 300-2,500 (written as fractions of those 8,800 steps)
        "mnist": dict(epochs=8, batch_size=50, lr=1e-3, lr_steps=[[7000 / 8800, 1e-4]], eps=0.3,
                      eps_ramp=[300 / 8800, 2500 / 8800], steps=10, step_size=0.04, init="authors",
                      schedule_in="fraction"),
        "cifar10": dict(epochs=3, batch_size=128, lr=1e-3, lr_steps=[], eps=8 / 255, eps_ramp=[0.08, 0.5],
                        steps=5, step_size=2.5 / 255, subset=10000, schedule_in="fraction"),
    },
    "fast": {
        "mnist": dict(epochs=8, batch_size=50, lr=1e-3, lr_steps=[[7000 / 8800, 1e-4]], eps=0.3,
                      eps_ramp=[300 / 8800, 2500 / 8800], steps=1, step_size_eps=1.25, overfit_check=200,
                      init="authors", schedule_in="fraction"),
        "cifar10": dict(epochs=10, batch_size=128, lr=1e-3, lr_steps=[[0.75, 1e-4]], eps=8 / 255,
                        eps_ramp=[0.02, 0.3], steps=1, step_size_eps=1.25, overfit_check=200, schedule_in="fraction"),
    },
    "free": {
        # the cpu / fast schedules in normal epochs of cost, each batch replayed m = 4 times (E/4 passes)
        "mnist": dict(epochs=8, batch_size=50, lr=1e-3, lr_steps=[[7000 / 8800, 1e-4]], eps=0.3,
                      eps_ramp=[300 / 8800, 2500 / 8800], free=True, steps=4, step_size_eps=1.0, overfit_check=200,
                      init="authors", schedule_in="fraction"),
        "cifar10": dict(epochs=10, batch_size=128, lr=1e-3, lr_steps=[[0.75, 1e-4]], eps=8 / 255,
                        eps_ramp=[0.02, 0.3], free=True, steps=4, step_size_eps=1.0, overfit_check=200,
                        schedule_in="fraction"),
    },
    "classroom": {
        "mnist": dict(epochs=3, batch_size=50, lr=2e-3, lr_steps=[], eps=0.15, eps_ramp=[0.1, 0.4],
                      steps=1, step_size_eps=1.25, subset=10000, init="authors", schedule_in="fraction"),
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


def cli_flag(name: str) -> str:
    """The ``train`` flag of a TrainConfig field: ``batch_size`` -> ``--batch-size``."""
    return "--" + name.replace("_", "-")


def config_to_args(cfg: TrainConfig, total_steps: int | None = None) -> list[str]:
    """The ``python -m interp_core train`` flags that rebuild ``cfg`` exactly: its method, dataset,
    arch and preset, then a flag for every setting where ``cfg`` differs from that preset. A config
    in steps is compared with the preset resolved for ``total_steps`` when given (so a run of the
    preset's own schedule needs no position flags); when a schedule position differs, all of them
    are given, with ``--schedule-in`` to say their unit."""
    if cfg.preset not in PRESETS:
        raise ValueError(f"the train command starts from a preset; this config names {cfg.preset!r}, "
                         f"not one of {sorted(PRESETS)}")
    base = make_config(cfg.method, cfg.dataset, cfg.arch, cfg.preset)
    if cfg.schedule_in == "steps" and total_steps is not None:
        base = base.resolve(total_steps)
    args = ["--method", cfg.method, "--dataset", cfg.dataset, "--arch", cfg.arch, "--preset", cfg.preset]
    differing = [f for f in fields(TrainConfig) if f.name not in ("method", "dataset", "arch", "preset", "schedule_in")
                 and getattr(cfg, f.name) != getattr(base, f.name)]
    units_differ = cfg.schedule_in != base.schedule_in or any(f.name in POSITIONS for f in differing)
    if units_differ:  # the preset's positions would be read in the other unit: give them all
        differing = [f for f in fields(TrainConfig) if f in differing or f.name in POSITIONS]
    for f in differing:
        value = getattr(cfg, f.name)
        if value is None:
            raise ValueError(f"{f.name}=None differs from the {cfg.preset} preset's {getattr(base, f.name)!r} "
                             f"and has no flag")
        if isinstance(value, bool):
            args.append(cli_flag(f.name) if value else cli_flag(f"no_{f.name}"))
        else:
            show = f.metadata["show"] or (repr if isinstance(value, float) else str)
            args += [cli_flag(f.name), show(value)]
    if units_differ:
        args += [cli_flag("schedule_in"), cfg.schedule_in]
    return args
