"""``train``: train a model with any method of PAPER.md section 6; runs data-parallel under
``torchrun --nproc_per_node=N`` (gloo on CPU, NCCL on GPU).

Progress (loss, accuracy, eps, images/s) goes to stderr as a tqdm bar; ``--progress-jsonl`` also
appends every progress event as one JSON line (the app's background jobs read it). SIGTERM or
SIGINT sets the stop flag: the trainer writes a checkpoint and the command exits cleanly with
status "stopped"; ``--resume`` continues it.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path

from interp_core import paths
from interp_core.models import ARCHITECTURES
from interp_core.runtime import configure_threads, resolve_device
from interp_core.training import PRESETS, TRAINING_METHODS, TrainingDiverged, make_config, train


def register(commands) -> None:
    p = commands.add_parser("train", help="train a model (normal, pgd-at, trades, ig-*, int-*)",
                            description=__doc__.split("\n\n")[0])
    p.add_argument("--method", required=True, choices=sorted(TRAINING_METHODS))
    p.add_argument("--dataset", required=True, choices=["mnist", "cifar10"])
    p.add_argument("--arch", default="smallgap", choices=sorted(ARCHITECTURES))
    p.add_argument("--preset", default="paper", choices=sorted(PRESETS),
                   help="paper: the authors' schedule; cpu: the reduced schedule of the shipped checkpoints; "
                        "classroom: a run of minutes on a CPU")
    p.add_argument("--epochs", type=int)
    p.add_argument("--eps", type=float, help="training eps in [0, 1] (CIFAR: 8/255 = 0.0314)")
    p.add_argument("--steps", type=int, help="inner attack steps")
    p.add_argument("--step-size", type=float, help="inner attack step")
    p.add_argument("--gamma", type=float, help="regularizer weight (TRADES beta, IG lambda, Int gamma)")
    p.add_argument("--batch-size", type=int, help="global batch (split over torchrun processes)")
    p.add_argument("--lr", type=float)
    p.add_argument("--subset", type=int, help="train on the first N images of the train split")
    p.add_argument("--seed", type=int)
    p.add_argument("--eval-n", type=int, help="held-out images for the final check (0: skip)")
    p.add_argument("--eval-steps", type=int, help="PGD steps of the final check")
    p.add_argument("--train-split", choices=["train", "train_full", "demo", "demo_train"],
                   help="training images (default train: the first 5,000 held out; demo: the committed sample; "
                        "demo_train: its 100 images after the paper subset)")
    p.add_argument("--eval-split", choices=["heldout", "test", "demo", "demo_heldout"],
                   help="images of the final check (demo_heldout: the paper subset's 200 demo images)")
    p.add_argument("--checkpoint-every", type=int, help="steps between periodic checkpoints")
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


def _output_path(args) -> Path:
    default_name = f"{args.dataset}-{args.arch}-{args.method}"
    if args.out is None:
        return paths.runs_dir() / default_name / f"{default_name}.safetensors"
    out = Path(args.out)
    if out.suffix != ".safetensors":
        return out / f"{args.name or default_name}.safetensors"
    return out


def run_train(args) -> int:
    import torch.distributed as dist
    from tqdm import tqdm

    from interp_core.cli import CLIError, emit

    world = int(os.environ.get("WORLD_SIZE", "1"))
    device = resolve_device(args.device)
    if world > 1:
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        if device.type == "cuda":
            device = resolve_device(f"cuda:{local_rank}")
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    rank = dist.get_rank() if world > 1 else 0
    configure_threads(shared=world > 1)
    cfg = make_config(args.method, args.dataset, args.arch, args.preset, epochs=args.epochs, eps=args.eps,
                      steps=args.steps, step_size=args.step_size, gamma=args.gamma, batch_size=args.batch_size,
                      lr=args.lr, subset=args.subset, seed=args.seed, eval_n=args.eval_n,
                      eval_steps=args.eval_steps, checkpoint_every=args.checkpoint_every,
                      train_split=args.train_split, eval_split=args.eval_split)
    out = _output_path(args)

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
    except TrainingDiverged as err:
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
