"""``python -m interp_core SUBCOMMAND``: one module per area registers its subcommands.

Conventions shared by every subcommand: ``--model`` takes a shipped checkpoint name, a checkpoint
path, or a paper network ``.npz`` / ``.pkl`` path; ``--dataset`` is ``mnist`` or ``cifar10``;
``--data-dir`` overrides where datasets are looked for; ``--n N`` takes the first N images of the
split; ``--json`` makes the last stdout line one JSON object; progress goes to stderr. Errors give
one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import json
import sys

from interp_core.cli import basic
from interp_core.cli import evaluate as evaluate_cmd
from interp_core.cli import train as train_cmd
from interp_core.data import DATASETS, SPLITS

COMMAND_MODULES = (basic, train_cmd, evaluate_cmd)


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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m interp_core", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    for module in COMMAND_MODULES:
        module.register(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    from interp_core.data import DatasetNotFound
    from interp_core.models import CheckpointError

    args = build_parser().parse_args(argv)
    try:
        return args.run(args) or 0
    except (CLIError, CheckpointError, DatasetNotFound, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
