"""``accuracy`` and ``models``."""

from __future__ import annotations

from interp_core.cli.common import add_common, emit, model_for_dataset
from interp_core.data import DATASETS, load_dataset
from interp_core.metrics import accuracy
from interp_core.models import available_models


def register(commands) -> None:
    p = commands.add_parser("accuracy", help="clean accuracy of a model on a dataset split")
    add_common(p)
    p.set_defaults(run=run_accuracy)

    p = commands.add_parser("models", help="list shipped checkpoints, paper networks and user runs")
    p.add_argument("--dataset", default=None, choices=list(DATASETS))
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=run_models)


def run_accuracy(args) -> None:
    model, card, device = model_for_dataset(args)
    data = load_dataset(args.dataset, args.split, n=args.n, data_dir=args.data_dir)
    acc = accuracy(model, data.images.to(device), data.labels.to(device))
    result = {"model": card.name, "dataset": args.dataset, "split": args.split, "n": len(data),
              "accuracy": acc, "source": data.source}
    emit(args, result, f"{card.name} on {args.dataset} {args.split} ({len(data)} images from {data.source}): "
                       f"accuracy {acc:.4f}")


def run_models(args) -> None:
    rows = [{"name": e.name, "dataset": e.card.dataset, "arch": e.card.arch, "method": e.card.method,
             "source": e.card.source, "metrics": e.card.metrics, "path": str(e.path)}
            for e in available_models(args.dataset)]
    lines = [f"{r['name']:<34} {r['dataset']:<8} {r['arch']:<9} {r['method']:<18} {r['source']:<8} "
             + " ".join(f"{k}={v}" for k, v in r["metrics"].items()) for r in rows]
    emit(args, {"models": rows}, "\n".join(lines) or "no models found")
