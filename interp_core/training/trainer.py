"""One model-agnostic trainer for every method (docs/method.md#training): Adam without weight decay,
the config's lr steps and eps ramp, progress callbacks, a stop flag, atomic periodic and final
checkpoints, exact resume, and data-parallel runs under ``torchrun`` (torch DDP).

Repeatability: the model is initialized from ``torch.manual_seed(seed)``, each epoch's order comes
from ``DistributedSampler(seed=seed)`` (also with one process), and each step's inner attack is
seeded with ``seed * 1_000_003 + step``. Free adversarial training (``cfg.free``) replays each batch
``cfg.steps`` times, one optimizer step per replay, so a pass over the images takes that many
epochs of steps; its carried perturbation is part of the state. So a run resumed from a checkpoint ends with the same
weights as an uninterrupted one, and N processes see, step by step, the same global batches as one
process (each rank takes every N-th image of the global batch; DDP averages the gradients).

The model goes to ``<out>.safetensors`` through :func:`interp_core.models.save_checkpoint` with a
full card; the optimizer and the position in the schedule go to ``<out>.state.pt`` (plain
tensors and numbers, read back with ``torch.load(weights_only=True)``), written before the model;
while a new checkpoint is written the state of the one before stays as ``<out>.prev.state.pt``,
so a crash at any point leaves a resumable pair. A config whose schedule is given in fractions of
the run is resolved to steps once the run's total steps are known.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data.distributed import DistributedSampler

from interp_core.attacks import PGD
from interp_core.data import load_dataset
from interp_core.evaluate.robust import robust_accuracy
from interp_core.io import atomic_write
from interp_core.metrics import accuracy
from interp_core.models import ModelCard, build_model, eval_mode, load_checkpoint, load_model, save_checkpoint
from interp_core.training.methods import ADVERSARIAL, FreePerturbation, MethodConfig, get_method
from interp_core.training.schedules import TrainConfig

#: ``callback(event)``: sees the trainer's events (see :func:`train`), e.g. to log or draw progress.
TrainCallback = Callable[[dict], None]


class TrainingHalted(RuntimeError):
    """The run cannot go on (resuming would repeat the cause); the last good checkpoint is kept."""


class TrainingDiverged(TrainingHalted):
    """The loss became NaN or infinite."""


class CatastrophicOverfitting(TrainingHalted):
    """Random-start PGD accuracy on the probe images fell far below its best (one-step training's
    known failure, Wong et al. 2020): the checkpoint on disk is from before the fall."""


#: A probe accuracy this far below the best seen stops the run (Wong et al. stop on a sharp fall).
OVERFIT_DROP = 0.2
#: The probe's attack: random-start PGD of this many steps of eps / 4.
PROBE_STEPS = 10


class OverfitProbe:
    """The catastrophic-overfitting check of ``TrainConfig.overfit_check``: random-start PGD accuracy
    at the training eps on fixed training images x (N, C, H, W), y (N,), before each checkpoint;
    ``best`` the highest seen (restored on resume)."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, eps: float, best: float = 0.0):
        self.x, self.y, self.eps, self.best = x, y, eps, best
        self.attack = PGD(eps, eps / 4, PROBE_STEPS, random_start=True, seed=0)

    def check(self, model: nn.Module, step: int) -> float:
        """The probe accuracy now; raises :class:`CatastrophicOverfitting` when it is more than
        ``OVERFIT_DROP`` below the best, else records it."""
        with eval_mode(model):
            robust = accuracy(model, self.attack(model, self.x, self.y), self.y)
        if robust < self.best - OVERFIT_DROP:
            raise CatastrophicOverfitting(
                f"catastrophic overfitting at step {step}: random-start PGD accuracy on {len(self.y)} training "
                f"images fell from {self.best:.2f} to {robust:.2f} (eps {self.eps:.4g}); the last checkpoint, from "
                "before the fall, is kept -- train with a smaller --step-size-eps or more inner steps")
        self.best = max(self.best, robust)
        return robust


@dataclass
class TrainResult:
    """Outcome of :func:`train`: status is "finished" or "stopped" (stop flag)."""

    status: str
    checkpoint: Path
    step: int
    epoch: int
    metrics: dict = field(default_factory=dict)


def state_path(checkpoint: Path) -> Path:
    """The side file with the optimizer and schedule position of a checkpoint."""
    return checkpoint.with_suffix(".state.pt")


def previous_state_path(checkpoint: Path) -> Path:
    """The side file of the checkpoint before the one being written (a crash may leave it the match)."""
    return checkpoint.with_suffix(".prev.state.pt")


class _MethodLoss(nn.Module):
    """Runs a method's loss inside ``forward`` so DDP sees the whole step (inner attack included)."""

    def __init__(self, model: nn.Module, loss_fn):
        super().__init__()
        self.model, self.loss_fn = model, loss_fn

    def forward(self, x, y, cfg: MethodConfig):
        return self.loss_fn(self.model, x, y, cfg)


def _world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


@dataclass(frozen=True)
class _StepFlags:
    """What every process agrees on after a step (one all-reduce): the loss and the batch accuracy
    averaged over the ranks, whether any rank was asked to stop, whether any loss was not finite."""

    loss: float
    accuracy: float
    stop: bool
    diverged: bool

    @classmethod
    def agree(cls, loss: float, accuracy: float, stop: bool, world: int) -> "_StepFlags":
        flags = torch.tensor([loss, accuracy, float(stop), float(not math.isfinite(loss))], dtype=torch.float64)
        if world > 1:
            dist.all_reduce(flags)
            flags[:2] /= world
        return cls(float(flags[0]), float(flags[1]), bool(flags[2] > 0), bool(flags[3] > 0))


class _TrainingRun:
    """One call of :func:`train`: the data and model, the optimizer, the batch order, the position
    in the schedule (step, training seconds, epoch times) and where it all goes."""

    def __init__(self, cfg: TrainConfig, out: Path, device: torch.device, resume: bool, callbacks, name: str | None,
                 source: str, data_dir: str | None):
        self.cfg, self.out, self.device, self.callbacks, self.source = cfg, out, device, callbacks, source
        self.rank, self.world = _world()
        if cfg.batch_size % self.world:
            raise ValueError(f"batch_size {cfg.batch_size} must be divisible by the {self.world} processes")
        self.local_batch = cfg.batch_size // self.world
        data = load_dataset(cfg.dataset, cfg.train_split, n=cfg.subset, data_dir=data_dir)
        self.images, self.labels = data.images, data.labels
        self.in_channels, self.num_classes = self.images.shape[1], len(data.class_names)
        self.name = name or out.stem

        torch.manual_seed(cfg.seed)
        self.model = build_model(cfg.arch, self.in_channels, self.num_classes, cfg.init, cfg.activation).to(device)
        if cfg.init_from:
            _load_start(self.model, cfg, self.in_channels, self.num_classes)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=cfg.lr, weight_decay=0.0)
        state = _restore(out, cfg, self.model, self.optimizer, device) if resume and out.is_file() else {}
        self.step, self.elapsed = int(state.get("step", 0)), float(state.get("elapsed", 0.0))
        self.epoch_times = list(state.get("epoch_times", []))
        self.probe = (OverfitProbe(self.images[:cfg.overfit_check].to(device),
                                   self.labels[:cfg.overfit_check].to(device), cfg.eps, state.get("probe_best", 0.0))
                      if cfg.overfit_check and cfg.method in ADVERSARIAL else None)
        # Free adversarial training: each batch replayed cfg.replays times, the loss CE(x + delta) (the normal
        # loss on the perturbed batch), delta carried on; the state keeps the global batch's delta.
        self.replays, self.free = cfg.replays, None
        if cfg.trains_free:
            saved = state.get("free_delta")
            self.free = FreePerturbation(None if saved is None else saved[self.rank::self.world].to(device))
        self.runner: nn.Module = _MethodLoss(self.model, get_method("normal" if self.free else cfg.method))
        if self.world > 1:
            self.runner = nn.parallel.DistributedDataParallel(
                self.runner, device_ids=[device.index] if device.type == "cuda" else None)

        self.sampler = DistributedSampler(range(len(self.labels)), num_replicas=self.world, rank=self.rank,
                                          shuffle=True, seed=cfg.seed, drop_last=True)
        self.steps_per_epoch = len(self.sampler) // self.local_batch  # batches per pass: a normal epoch's steps
        if self.steps_per_epoch == 0:
            raise ValueError(f"{len(self.labels)} training images do not fill one batch of {cfg.batch_size}")
        self.total_steps = cfg.epochs * self.steps_per_epoch
        self.order_pass, self.order = -1, torch.empty(0, dtype=torch.long)  # the pass whose batch order is held
        self.schedule = cfg.resolve(self.total_steps)  # lr, eps and gamma positions in steps (from fractions)
        self.window_start, self.window_images = time.perf_counter(), 0  # for images/s between step events

    def emit(self, event: dict) -> None:
        if self.rank == 0:
            for callback in self.callbacks:
                callback(event)

    def batch_at(self, step: int) -> torch.Tensor:
        """The rank's image indices (local_batch,) at optimizer step ``step``: batch
        ``(step // replays) % steps_per_epoch`` of pass ``step // (replays * steps_per_epoch)`` over
        the images, each pass in the sampler's order of that epoch (one replay: pass = epoch)."""
        data_pass, batch = divmod(step // self.replays, self.steps_per_epoch)
        if data_pass != self.order_pass:
            self.sampler.set_epoch(data_pass)
            self.order_pass, self.order = data_pass, torch.tensor(list(iter(self.sampler)), dtype=torch.long)
        return self.order[batch * self.local_batch:(batch + 1) * self.local_batch]

    def run_epoch(self, stop: Callable[[], bool], log_every: int) -> bool:
        """The rest of the current epoch (``steps_per_epoch`` optimizer steps: a free run's epoch is one
        of cost, a 1/replays pass); False when the stop flag ended it early."""
        epoch = self.step // self.steps_per_epoch
        end = (epoch + 1) * self.steps_per_epoch
        epoch_start = time.perf_counter()
        while self.step < end:
            eps, flags = self.train_step(self.batch_at(self.step), epoch, stop)
            if self.step % log_every == 0 or self.step == end:
                self.log_step(epoch, eps, flags)
            if flags.stop:
                return False
            if self.step % self.cfg.checkpoint_every == 0 and self.step < self.total_steps:
                self.checkpoint()
        self.epoch_times.append(time.perf_counter() - epoch_start)
        self.emit({"event": "epoch", "epoch": epoch, "step": self.step, "seconds": self.epoch_times[-1]})
        if self.step < self.total_steps:
            self.checkpoint()
        return True

    def train_step(self, index: torch.Tensor, epoch: int, stop: Callable[[], bool]) -> tuple[float, _StepFlags]:
        """One optimizer step on the rank's share ``index`` of the global batch, at the schedule's
        lr, eps and gamma; returns the eps used and the flags all ranks agreed on."""
        started, cfg, schedule, step = time.perf_counter(), self.cfg, self.schedule, self.step
        x, y = self.images[index].to(self.device), self.labels[index].to(self.device)
        for group in self.optimizer.param_groups:
            group["lr"] = schedule.lr_at(step)
        eps = schedule.eps_at(step) if cfg.method in ADVERSARIAL else 0.0
        method_cfg = MethodConfig(eps=eps, steps=cfg.steps, step_size=cfg.inner_step_size(eps),
                                  gamma=schedule.gamma_at(step), seed=cfg.seed * 1_000_003 + step)
        x_in = x if self.free is None else self.free.perturb(x, eps)
        loss, logs = self.runner(x_in, y, method_cfg)
        flags = _StepFlags.agree(loss.item(), logs["accuracy"], stop(), self.world)
        if flags.diverged:
            raise TrainingDiverged(
                f"loss became {loss.item()} at step {step} (epoch {epoch}); last good checkpoint: {self.out} "
                "-- lower --step-size/--eps/lr or check the data")
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        if self.free is not None:
            self.free.ascend(x, x_in, eps, method_cfg.step_size)
        self.step += 1
        self.elapsed += time.perf_counter() - started
        self.window_images += cfg.batch_size
        return eps, flags

    def log_step(self, epoch: int, eps: float, flags: _StepFlags) -> None:
        now = time.perf_counter()
        self.emit({"event": "step", "step": self.step, "total_steps": self.total_steps, "epoch": epoch,
                   "loss": flags.loss, "accuracy": flags.accuracy, "eps": eps, "lr": self.schedule.lr_at(self.step - 1),
                   "images_per_s": self.window_images / max(now - self.window_start, 1e-9)})
        self.window_start, self.window_images = now, 0

    def card_metrics(self, extra: dict | None = None) -> dict:
        """Where the run stands (steps, epochs, seconds), then ``extra`` (the final check)."""
        done = {"steps": self.step, "total_steps": self.total_steps,
                "epochs_completed": round(self.step / self.steps_per_epoch, 3),
                "finished": self.step >= self.total_steps, "train_seconds": round(self.elapsed, 1)}
        if self.epoch_times:
            done["seconds_per_epoch"] = round(sum(self.epoch_times) / len(self.epoch_times), 1)
        if self.free is not None:
            done["passes_over_images"] = round(self.step / (self.replays * self.steps_per_epoch), 3)
        return {**done, **(extra or {})}

    def free_delta(self) -> torch.Tensor | None:
        """A free run's carried delta for the whole global batch (batch_size, C, H, W), on the CPU, in
        the global batch's order (rank r holds its images r, r + world, ...); every rank must call it.
        None for other runs, and before the first step."""
        if self.free is None or self.free.delta is None:
            return None
        if self.world == 1:
            return self.free.delta.cpu()
        parts = [torch.empty_like(self.free.delta) for _ in range(self.world)]
        dist.all_gather(parts, self.free.delta.contiguous())
        return torch.stack(parts, dim=1).flatten(0, 1).cpu()

    def checkpoint(self, final_metrics: dict | None = None) -> None:
        """Rank 0 writes the optimizer state, then the model with its card (see _restore); the state of
        the model on disk is kept as the previous state until the new model is written. With an
        overfitting probe, once eps is reached, the probe runs first: a collapse raises before the
        write, so the checkpoint on disk stays the one from before it."""
        free_delta = self.free_delta()
        if self.rank != 0:
            return
        if self.probe is not None and self.schedule.eps_at(self.step) >= self.cfg.eps:
            robust = self.probe.check(self.model, self.step)
            self.emit({"event": "overfit_check", "step": self.step, "accuracy": robust, "best": self.probe.best})
        cfg, metrics = self.cfg, self.card_metrics(final_metrics)
        card = ModelCard(name=self.name, arch=cfg.arch, dataset=cfg.dataset, method=cfg.method,
                         in_channels=self.in_channels, num_classes=self.num_classes, source=self.source,
                         activation=cfg.activation, hyperparameters=json.loads(cfg.to_json()), metrics=metrics,
                         description=f"{cfg.method} on {cfg.dataset} ({cfg.preset or 'custom'} schedule), "
                                     f"{metrics['epochs_completed']}/{cfg.epochs} epochs")
        # The side file goes first: a checkpoint is only resumable from a matching state. The state of
        # the current model is kept as the previous state until the new model is written, so a crash
        # between (or during) the two writes leaves a matching pair for _restore.
        state = {"step": self.step, "elapsed": self.elapsed, "epoch_times": list(self.epoch_times),
                 "config": cfg.to_json(), "optimizer": self.optimizer.state_dict(),
                 "probe_best": self.probe.best if self.probe is not None else 0.0}
        if free_delta is not None:
            state["free_delta"] = free_delta
        if state_path(self.out).is_file() and self.out.is_file():
            os.replace(state_path(self.out), previous_state_path(self.out))
        with atomic_write(state_path(self.out)) as tmp:
            torch.save(state, tmp)
        save_checkpoint(self.model, card, self.out)
        previous_state_path(self.out).unlink(missing_ok=True)
        self.emit({"event": "checkpoint", "step": self.step, "path": str(self.out)})


def train(cfg: TrainConfig, out: str | os.PathLike, device: str | torch.device = "cpu", *,
          resume: bool = False, callbacks: tuple[TrainCallback, ...] = (), stop: Callable[[], bool] = lambda: False,
          name: str | None = None, source: str = "user", data_dir: str | None = None,
          log_every: int = 10) -> TrainResult:
    """Train ``cfg.arch`` on ``cfg.dataset`` (``cfg.train_split``) with ``cfg.method``; write ``out``.

    callbacks receive dicts with ``event`` in {"step", "epoch", "overfit_check", "checkpoint", "end"}; step events
    (every ``log_every`` steps and at each epoch end) carry step, epoch, loss, accuracy, eps, lr
    and images_per_s. ``stop()`` is polled every step: when it turns true the trainer writes a
    checkpoint and returns status "stopped". A non-finite loss raises :class:`TrainingDiverged`, a
    collapse of the overfitting probe :class:`CatastrophicOverfitting`, both without overwriting the
    last checkpoint. Under an initialized process group the global batch
    ``cfg.batch_size`` is split over the ranks and only rank 0 writes files.
    """
    run = _TrainingRun(cfg, Path(out), torch.device(device), resume, callbacks, name, source, data_dir)
    run.model.train()
    status = "finished"
    while run.step < run.total_steps:
        if not run.run_epoch(stop, log_every):
            status = "stopped"
            break
    metrics = heldout_metrics(run.model, cfg, run.device, data_dir) if status == "finished" and run.rank == 0 else {}
    run.checkpoint(metrics)
    run.model.eval()
    result = TrainResult(status, run.out, run.step, run.step // run.steps_per_epoch, run.card_metrics(metrics))
    run.emit({"event": "end", "status": status, "step": run.step, "metrics": result.metrics, "path": str(run.out)})
    return result


def heldout_metrics(model: nn.Module, cfg: TrainConfig, device: torch.device, data_dir: str | None = None) -> dict:
    """Clean and PGD accuracy on the first ``cfg.eval_n`` images of ``cfg.eval_split``: the project's one
    robust evaluation (``interp_core.evaluate.robust_accuracy``, protocol "paper": the authors' PGD, no random
    start, ``eval_steps`` signed steps of ``eval_step_size``, clean errors counted as failures) at ``cfg.eps``."""
    if cfg.eval_n == 0:
        return {}
    data = load_dataset(cfg.dataset, cfg.eval_split, n=cfg.eval_n, data_dir=data_dir)
    x, y = data.images.to(device), data.labels.to(device)
    clean, robust = robust_accuracy(model, x, y, [0.0, cfg.eps], "paper", steps=cfg.eval_steps,
                                    step_size=cfg.eval_step_size, batch_size=500).results
    return {"heldout_split": cfg.eval_split, "heldout_n": len(y), "heldout_clean_accuracy": clean["accuracy"],
            "heldout_pgd_accuracy": robust["accuracy"],
            "heldout_pgd": f"PGD eps={cfg.eps:.4g}, {cfg.eval_steps} steps of {cfg.eval_step_size:g}, no random start"}


# Settings that may change on resume (longer training, a different final check).
_RESUMABLE_CHANGES = {"epochs", "eval_n", "eval_steps", "eval_step_size", "checkpoint_every"}


def _load_start(model: nn.Module, cfg: TrainConfig, in_channels: int, num_classes: int) -> None:
    """Put the weights of checkpoint ``cfg.init_from`` into the fresh ``model`` (fine-tuning); its
    architecture, input channels and classes must be the run's."""
    start, card = load_model(cfg.init_from)
    mine = (cfg.arch, in_channels, num_classes)
    theirs = (card.arch, card.in_channels, card.num_classes)
    if mine != theirs:
        raise ValueError(f"init_from {cfg.init_from}: a {theirs[0]} network with {theirs[1]} input channel(s) and "
                         f"{theirs[2]} classes cannot start a {mine[0]} run on {cfg.dataset} ({mine[1]} channel(s), "
                         f"{mine[2]} classes)")
    model.load_state_dict(start.state_dict())


def _restore(out: Path, cfg: TrainConfig, model, optimizer, device) -> dict:
    """Load the checkpoint ``out`` into ``model`` and its matching side state into ``optimizer``; return
    that state (step, elapsed, epoch_times, probe_best, a free run's free_delta)."""
    sides = [p for p in (state_path(out), previous_state_path(out)) if p.is_file()]
    if not sides:
        raise ValueError(f"cannot resume: {state_path(out)} (optimizer state) is missing")
    trained, card = load_checkpoint(out, device)
    states = [torch.load(side, map_location=device, weights_only=True) for side in sides]
    matching = [s for s in states if s["step"] == card.metrics.get("steps")]
    if not matching:
        raise ValueError(f"cannot resume {out}: weights (step {card.metrics.get('steps')}) and optimizer state "
                         f"(step {', '.join(str(s['step']) for s in states)}) do not match")
    state = matching[0]
    saved = json.loads(TrainConfig.from_dict(json.loads(state["config"])).to_json())  # settings added since: defaults
    changed = {k for k, v in json.loads(cfg.to_json()).items() if saved.get(k) != v} - _RESUMABLE_CHANGES
    if changed:
        raise ValueError(f"cannot resume {out}: settings differ from the saved run: {sorted(changed)}")
    model.load_state_dict(trained.state_dict())
    optimizer.load_state_dict(state["optimizer"])
    return state
