"""What every subcommand shares: the common flags, the output convention and the user-facing error."""

from __future__ import annotations

import argparse
import json
from fractions import Fraction

import torch

from interp_core.data import DATASETS, SPLITS
from interp_core.models import ModelCard, load_model
from interp_core.runtime import configure_threads, resolve_device


def number(text: str) -> float:
    """A float flag value, also written as a fraction: "8/255" -> 0.0313..."""
    try:
        return float(Fraction(text.strip()))
    except (ValueError, ZeroDivisionError):
        raise ValueError(f"expected a number such as 0.03 or 8/255, got {text!r}") from None


class CLIError(Exception):
    """A user-facing error: printed as one line, exit code 2."""


def add_common(parser: argparse.ArgumentParser, model: bool = True, dataset: bool = True) -> None:
    """The shared flags: --model, --dataset, --split, --n, --data-dir, --device, --json."""
    if model:
        parser.add_argument("--model", required=True, help="shipped name, checkpoint path, or paper .npz/.pkl")
    if dataset:
        parser.add_argument("--dataset", required=True, choices=list(DATASETS))
        parser.add_argument("--split", default="test", choices=SPLITS + ("demo",))
        parser.add_argument("--n", type=int, default=None, help="use the first N images of the split")
        parser.add_argument("--data-dir", default=None, help="dataset root (else INTERP_CORE_DATA_DIR, ../shared/data)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1 ...")
    parser.add_argument("--json", action="store_true", help="print one JSON object as the last stdout line")


def emit(args: argparse.Namespace, result: dict, text: str) -> None:
    """Print the human-readable text, or (with --json) the result as the last stdout line."""
    print(json.dumps(result) if args.json else text)


def model_for_dataset(args: argparse.Namespace) -> tuple[torch.nn.Module, ModelCard, torch.device]:
    """The --model of a command that runs alone (every core), on --device, checked against
    --dataset: (model in eval mode, its card, the device)."""
    configure_threads(shared=False)
    device = resolve_device(args.device)
    model, card = load_model(args.model, device)
    if card.dataset != args.dataset:
        raise ValueError(f"model {card.name!r} was trained on {card.dataset}, not {args.dataset}")
    return model, card, device
