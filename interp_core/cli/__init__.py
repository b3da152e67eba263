"""``python -m interp_core SUBCOMMAND``: one module per area registers its subcommands.

Conventions shared by every subcommand: ``--model`` takes a shipped checkpoint name, a checkpoint
path, or a paper network ``.npz`` / ``.pkl`` path; ``--dataset`` is ``mnist`` or ``cifar10``;
``--data-dir`` overrides where datasets are looked for; ``--n N`` takes the first N images of the
split; ``--json`` makes the last stdout line one JSON object; progress goes to stderr. Errors give
one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import sys

from interp_core.cli import basic
from interp_core.cli import evaluate as evaluate_cmd
from interp_core.cli import train as train_cmd
from interp_core.cli.common import CLIError

COMMAND_MODULES = (basic, train_cmd, evaluate_cmd)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m interp_core", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    for module in COMMAND_MODULES:
        module.register(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    from interp_core.data import DatasetNotFound
    from interp_core.models import CheckpointError
    from interp_core.parallel import RayUnavailable

    args = build_parser().parse_args(argv)
    try:
        return args.run(args) or 0
    except (CLIError, CheckpointError, DatasetNotFound, RayUnavailable, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
