"""What every subcommand shares: the common flags, the output convention and the user-facing error."""

from __future__ import annotations

import argparse
import json

from interp_core.data import DATASETS, SPLITS


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
