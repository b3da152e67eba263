"""One model-agnostic trainer for every method (PAPER.md section 6): Adam without weight decay,
the config's lr steps and eps ramp, progress callbacks, a stop flag, atomic periodic and final
checkpoints, exact resume, and data-parallel runs under ``torchrun`` (torch DDP).

Repeatability: the model is initialized from ``torch.manual_seed(seed)``, each epoch's order comes
from ``DistributedSampler(seed=seed)`` (also with one process), and each step's inner attack is
seeded with ``seed * 1_000_003 + step``. So a run resumed from a checkpoint ends with the same
weights as an uninterrupted one, and N processes see, step by step, the same global batches as one
process (each rank takes every N-th image of the global batch; DDP averages the gradients).

The model goes to ``<out>.safetensors`` through :func:`interp_core.models.save_checkpoint` with a
full card; the optimizer and the position in the schedule go to ``<out>.state.pt`` (plain
tensors and numbers, read back with ``torch.load(weights_only=True)``).
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
from interp_core.io import atomic_write
from interp_core.metrics import accuracy
from interp_core.models import ModelCard, build_model, load_checkpoint, save_checkpoint
from interp_core.training.methods import ADVERSARIAL, MethodConfig, get_method
from interp_core.training.schedules import TrainConfig

Callback = Callable[[dict], None]


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


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


def train(cfg: TrainConfig, out: str | os.PathLike, device: str | torch.device = "cpu", *,
          resume: bool = False, callbacks: tuple[Callback, ...] = (), stop: Callable[[], bool] = lambda: False,
          name: str | None = None, source: str = "user", data_dir: str | None = None,
          log_every: int = 10) -> TrainResult:
    """Train ``cfg.arch`` on ``cfg.dataset`` (``cfg.train_split``) with ``cfg.method``; write ``out``.

    callbacks receive dicts with ``event`` in {"step", "epoch", "checkpoint", "end"}; step events
    (every ``log_every`` steps and at each epoch end) carry step, epoch, loss, accuracy, eps, lr
    and images_per_s. ``stop()`` is polled every step: when it turns true the trainer writes a
    checkpoint and returns status "stopped". A non-finite loss raises :class:`TrainingDiverged`
    without overwriting the last checkpoint. Under an initialized process group the global batch
    ``cfg.batch_size`` is split over the ranks and only rank 0 writes files.
    """
    out = Path(out)
    device = torch.device(device)
    rank, world = _world()
    if cfg.batch_size % world:
        raise ValueError(f"batch_size {cfg.batch_size} must be divisible by the {world} processes")
    local_batch = cfg.batch_size // world

    data = load_dataset(cfg.dataset, cfg.train_split, n=cfg.subset, data_dir=data_dir)
    images, labels = data.images, data.labels
    in_channels, num_classes = images.shape[1], len(data.class_names)
    name = name or out.stem

    torch.manual_seed(cfg.seed)
    model = build_model(cfg.arch, in_channels, num_classes, cfg.init).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=0.0)
    step, elapsed, epoch_times = 0, 0.0, []
    if resume and out.is_file():
        step, elapsed, epoch_times = _restore(out, cfg, model, optimizer, device)
    loss_module = _MethodLoss(model, get_method(cfg.method))
    runner: nn.Module = loss_module
    if world > 1:
        runner = nn.parallel.DistributedDataParallel(loss_module, device_ids=[device.index] if device.type == "cuda" else None)

    sampler = DistributedSampler(range(len(labels)), num_replicas=world, rank=rank, shuffle=True,
                                 seed=cfg.seed, drop_last=True)
    steps_per_epoch = len(sampler) // local_batch
    if steps_per_epoch == 0:
        raise ValueError(f"{len(labels)} training images do not fill one batch of {cfg.batch_size}")
    total_steps = cfg.epochs * steps_per_epoch

    def emit(event: dict) -> None:
        if rank == 0:
            for callback in callbacks:
                callback(event)

    def checkpoint(final_metrics: dict | None = None) -> None:
        if rank == 0:
            _save(out, cfg, model, optimizer, step, elapsed, epoch_times, name, source, in_channels,
                  num_classes, steps_per_epoch, final_metrics)
            emit({"event": "checkpoint", "step": step, "path": str(out)})

    model.train()
    status = "finished"
    window_start, window_images = time.perf_counter(), 0
    while step < total_steps:
        epoch = step // steps_per_epoch
        sampler.set_epoch(epoch)
        order = torch.tensor(list(iter(sampler)), dtype=torch.long)
        epoch_start = time.perf_counter()
        for i in range(step % steps_per_epoch, steps_per_epoch):
            t0 = time.perf_counter()
            index = order[i * local_batch:(i + 1) * local_batch]
            x, y = images[index].to(device), labels[index].to(device)
            for group in optimizer.param_groups:
                group["lr"] = cfg.lr_at(step)
            eps = cfg.eps_at(step) if cfg.method in ADVERSARIAL else 0.0
            method_cfg = MethodConfig(eps=eps, steps=cfg.steps, step_size=cfg.step_size, gamma=cfg.gamma_at(step),
                                      seed=cfg.seed * 1_000_003 + step)
            loss, logs = runner(x, y, method_cfg)
            flags = torch.tensor([loss.item(), logs["accuracy"], float(stop()),
                                  float(not math.isfinite(loss.item()))], dtype=torch.float64)
            if world > 1:
                dist.all_reduce(flags)
                flags[:2] /= world
            if flags[3] > 0:
                raise TrainingDiverged(
                    f"loss became {loss.item()} at step {step} (epoch {epoch}); last good checkpoint: {out} "
                    "-- lower --step-size/--eps/lr or check the data")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
            elapsed += time.perf_counter() - t0
            window_images += cfg.batch_size
            if step % log_every == 0 or i == steps_per_epoch - 1:
                now = time.perf_counter()
                emit({"event": "step", "step": step, "total_steps": total_steps, "epoch": epoch,
                      "loss": float(flags[0]), "accuracy": float(flags[1]), "eps": eps, "lr": cfg.lr_at(step - 1),
                      "images_per_s": window_images / max(now - window_start, 1e-9)})
                window_start, window_images = now, 0
            if flags[2] > 0:
                status = "stopped"
                break
            if step % cfg.checkpoint_every == 0 and step < total_steps:
                checkpoint()
        else:
            epoch_times.append(time.perf_counter() - epoch_start)
            emit({"event": "epoch", "epoch": epoch, "step": step, "seconds": epoch_times[-1]})
            if step < total_steps:
                checkpoint()
            continue
        break

    metrics: dict = {}
    if status == "finished" and rank == 0:
        metrics = heldout_metrics(model, cfg, device, data_dir)
    checkpoint(metrics)
    model.eval()
    result = TrainResult(status, out, step, step // steps_per_epoch, _card_metrics(
        step, steps_per_epoch, total_steps, elapsed, epoch_times, metrics))
    emit({"event": "end", "status": status, "step": step, "metrics": result.metrics, "path": str(out)})
    return result


def heldout_metrics(model: nn.Module, cfg: TrainConfig, device: torch.device, data_dir: str | None = None) -> dict:
    """Clean and PGD accuracy on the first ``cfg.eval_n`` images of ``cfg.eval_split``: PGD as the authors
    evaluate (no random start, ``eval_steps`` signed steps of ``eval_step_size``) at ``cfg.eps``."""
    if cfg.eval_n == 0:
        return {}
    data = load_dataset(cfg.dataset, cfg.eval_split, n=cfg.eval_n, data_dir=data_dir)
    x, y = data.images.to(device), data.labels.to(device)
    attack = PGD(cfg.eps, cfg.eval_step_size, cfg.eval_steps, random_start=False)
    x_adv = torch.cat([attack(model, x[i:i + 500], y[i:i + 500]) for i in range(0, len(y), 500)])
    return {"heldout_split": cfg.eval_split, "heldout_n": len(y), "heldout_clean_accuracy": accuracy(model, x, y),
            "heldout_pgd_accuracy": accuracy(model, x_adv, y),
            "heldout_pgd": f"PGD eps={cfg.eps:.4g}, {cfg.eval_steps} steps of {cfg.eval_step_size:g}, no random start"}


def _card_metrics(step, steps_per_epoch, total_steps, elapsed, epoch_times, metrics) -> dict:
    done = {"steps": step, "total_steps": total_steps, "epochs_completed": round(step / steps_per_epoch, 3),
            "finished": step >= total_steps, "train_seconds": round(elapsed, 1)}
    if epoch_times:
        done["seconds_per_epoch"] = round(sum(epoch_times) / len(epoch_times), 1)
    return {**done, **metrics}


def _save(out, cfg, model, optimizer, step, elapsed, epoch_times, name, source, in_channels, num_classes,
          steps_per_epoch, final_metrics) -> None:
    total_steps = cfg.epochs * steps_per_epoch
    metrics = _card_metrics(step, steps_per_epoch, total_steps, elapsed, epoch_times, final_metrics or {})
    card = ModelCard(name=name, arch=cfg.arch, dataset=cfg.dataset, method=cfg.method, in_channels=in_channels,
                     num_classes=num_classes, source=source, hyperparameters=json.loads(cfg.to_json()),
                     metrics=metrics,
                     description=f"{cfg.method} on {cfg.dataset} ({cfg.preset or 'custom'} schedule), "
                                 f"{metrics['epochs_completed']}/{cfg.epochs} epochs")
    # The side file goes first: a checkpoint is only resumable from a matching state, and a crash
    # between the two writes leaves a newer state beside an older model, which _restore rejects.
    state = {"step": step, "elapsed": elapsed, "epoch_times": list(epoch_times), "config": cfg.to_json(),
             "optimizer": optimizer.state_dict()}
    with atomic_write(state_path(out)) as tmp:
        torch.save(state, tmp)
    save_checkpoint(model, card, out)


# Settings that may change on resume (longer training, a different final check).
_RESUMABLE_CHANGES = {"epochs", "eval_n", "eval_steps", "eval_step_size", "checkpoint_every"}


def _restore(out: Path, cfg: TrainConfig, model, optimizer, device) -> tuple[int, float, list]:
    side = state_path(out)
    if not side.is_file():
        raise ValueError(f"cannot resume: {side} (optimizer state) is missing")
    state = torch.load(side, map_location=device, weights_only=True)
    saved = json.loads(state["config"])
    changed = {k for k, v in json.loads(cfg.to_json()).items() if saved.get(k) != v} - _RESUMABLE_CHANGES
    if changed:
        raise ValueError(f"cannot resume {out}: settings differ from the saved run: {sorted(changed)}")
    trained, card = load_checkpoint(out, device)
    if card.metrics.get("steps") != state["step"]:
        raise ValueError(f"cannot resume {out}: weights (step {card.metrics.get('steps')}) and optimizer state "
                         f"(step {state['step']}) do not match")
    model.load_state_dict(trained.state_dict())
    optimizer.load_state_dict(state["optimizer"])
    return int(state["step"]), float(state["elapsed"]), list(state["epoch_times"])
