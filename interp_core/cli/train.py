"""``train``: train a model with any method of docs/method.md#training; runs data-parallel under
``torchrun --nproc_per_node=N`` (gloo on CPU, NCCL on GPU).

Progress (loss, accuracy, eps, images/s) goes to stderr as a tqdm bar; ``--progress-jsonl`` also
appends every progress event as one JSON line (the app's background jobs read it). SIGTERM or
SIGINT sets the stop flag: the trainer writes a checkpoint and the command exits cleanly with
status "stopped"; ``--resume`` continues it.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import typing
from dataclasses import MISSING, fields
from pathlib import Path

from interp_core import paths
from interp_core.cli.common import CLIError, emit, number
from interp_core.runtime import configure_threads, resolve_device
from interp_core.training import TrainConfig, TrainingHalted, cli_flag, make_config, train


def register(commands) -> None:
    p = commands.add_parser("train", help="train a model (normal, pgd-at, trades, ig-*, int-*; presets paper, cpu, "
                                          "fast, free, classroom)",
                            description=__doc__.split("\n\n")[0])
    add_config_flags(p)
    p.add_argument("--out", default=None,
                   help="checkpoint .safetensors path, or a folder (default runs/<dataset>-<arch>-<method>/)")
    p.add_argument("--name", default=None, help="model name in its card (default: the file name)")
    p.add_argument("--source", default="user", choices=["user", "project"])
    p.add_argument("--resume", action="store_true", help="continue from the checkpoint at --out")
    p.add_argument("--progress-jsonl", default=None, help="append progress events to this JSON-lines file")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--device", default="auto")
    p.add_argument("--json", action="store_true", help="print one JSON object as the last stdout line")
    p.set_defaults(run=run_train)


def add_config_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per ``TrainConfig`` field, typed by the field and described by its metadata help.
    Every flag but the required ones (method, dataset) defaults to None: the preset's value."""
    types = typing.get_type_hints(TrainConfig)
    for f in fields(TrainConfig):
        meta, kind = f.metadata, types[f.name]
        options: dict = {"dest": f.name, "help": meta["help"]}
        if f.default is MISSING and f.default_factory is MISSING:
            options["required"] = True
        else:
            options["default"] = None
        if meta["choices"]:
            options["choices"] = meta["choices"]()
        if kind is bool:
            options["action"] = argparse.BooleanOptionalAction
        elif meta["parse"]:
            options["type"] = meta["parse"]
        elif float in (kind, *typing.get_args(kind)):
            options["type"] = number
        elif int in (kind, *typing.get_args(kind)):
            options["type"] = int
        parser.add_argument(cli_flag(f.name), **options)


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The TrainConfig of parsed ``train`` flags: the preset, overridden by the flags given."""
    return make_config(**{f.name: getattr(args, f.name) for f in fields(TrainConfig)
                          if getattr(args, f.name) is not None})


def _output_path(args, cfg: TrainConfig) -> Path:
    default_name = f"{cfg.dataset}-{cfg.arch}-{cfg.method}"
    if args.out is None:
        return paths.runs_dir() / default_name / f"{default_name}.safetensors"
    out = Path(args.out)
    if out.suffix != ".safetensors":
        return out / f"{args.name or default_name}.safetensors"
    return out


def run_train(args) -> int:
    import torch.distributed as dist
    from tqdm import tqdm

    world = int(os.environ.get("WORLD_SIZE", "1"))
    device = resolve_device(args.device)
    if world > 1:
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        if device.type == "cuda":
            device = resolve_device(f"cuda:{local_rank}")
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    rank = dist.get_rank() if world > 1 else 0
    configure_threads(shared=world > 1)
    cfg = config_from_args(args)
    out = _output_path(args, cfg)

    stopping = {"flag": False}

    def on_signal(signum, frame):
        stopping["flag"] = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    bar = tqdm(total=None, unit="step", file=sys.stderr, disable=rank != 0, dynamic_ncols=True)
    progress = open(args.progress_jsonl, "a") if args.progress_jsonl and rank == 0 else None

    def show(event: dict) -> None:
        if event["event"] == "step":
            bar.total = event["total_steps"]
            bar.n = event["step"]
            bar.set_postfix(epoch=event["epoch"], loss=f"{event['loss']:.4f}", acc=f"{event['accuracy']:.3f}",
                            eps=f"{event['eps']:.4f}", img_s=f"{event['images_per_s']:.0f}", refresh=False)
            bar.refresh()
        if progress is not None:
            progress.write(json.dumps(event) + "\n")
            progress.flush()

    try:
        result = train(cfg, out, device, resume=args.resume, callbacks=(show,), stop=lambda: stopping["flag"],
                       name=args.name, source=args.source, data_dir=args.data_dir)
    except TrainingHalted as err:
        if progress is not None:  # a job reads it: a halted run is not resumable (resuming repeats the cause)
            progress.write(json.dumps({"event": "halted", "message": str(err)}) + "\n")
        raise CLIError(str(err)) from None
    finally:
        bar.close()
        if progress is not None:
            progress.close()
        if world > 1:
            dist.destroy_process_group()
    if rank != 0:
        return 0
    m = result.metrics
    summary = {"status": result.status, "checkpoint": str(result.checkpoint), "method": cfg.method,
               "dataset": cfg.dataset, "arch": cfg.arch, "processes": world, "device": str(device), **m}
    lines = [f"{result.status}: {cfg.method} {cfg.dataset} {cfg.arch}, step {m['steps']}/{m['total_steps']} "
             f"({m['epochs_completed']} epochs) in {m['train_seconds']} s"
             + (f", {m['seconds_per_epoch']} s/epoch" if "seconds_per_epoch" in m else ""),
             f"checkpoint: {result.checkpoint}"]
    if "heldout_clean_accuracy" in m:
        lines.append(f"{m['heldout_split']} ({m['heldout_n']} images): clean accuracy {m['heldout_clean_accuracy']:.4f}, "
                     f"PGD accuracy {m['heldout_pgd_accuracy']:.4f} ({m['heldout_pgd']})")
    emit(args, summary, "\n".join(lines))
    return 0
