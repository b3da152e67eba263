"""``python -m benchmarks [SECTION ...] [--quick]``: run benchmark sections (default: all of them)
and write ``benchmarks/results.json`` and ``benchmarks/RESULTS.md`` (``benchmarks.results.record``).
A subset replaces only its own sections in the files. ``--quick`` runs smaller sizes and fewer
repeats (a smoke run; the files say so)."""

from __future__ import annotations

import argparse
import importlib
from pathlib import Path

from benchmarks.results import MARKDOWN_PATH, record

SECTIONS = {"attacks": "bench_attacks", "interpret": "bench_interpret", "training": "bench_training",
            "evaluate": "bench_evaluate", "threads": "bench_threads", "registry": "bench_registry",
            "app": "bench_app", "load": "bench_load", "reproduce": "bench_reproduce", "workers": "bench_workers",
            "classroom": "bench_classroom"}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    parser.add_argument("sections", nargs="*", metavar="SECTION", help=f"any of {', '.join(SECTIONS)} (default: all)")
    parser.add_argument("--quick", action="store_true", help="smaller sizes, fewer repeats")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.sections) - set(SECTIONS))
    if unknown:
        parser.error(f"unknown sections {unknown}; known: {', '.join(SECTIONS)}")
    for name in args.sections or list(SECTIONS):
        module = importlib.import_module(f"benchmarks.{SECTIONS[name]}")
        print(f"== {name}", flush=True)
        if name in ("app", "load"):  # they drive a browser and record their own section
            if not Path(module.CHROMIUM).is_file():
                print(f"skipped: no Chromium at {module.CHROMIUM} (INTERP_CORE_CHROMIUM)")
                continue
            module.main(["--quick"] if args.quick and name == "app" else [])
        else:
            record(name, module.run(args.quick), args.quick)
    print(f"wrote {MARKDOWN_PATH}")


if __name__ == "__main__":
    main()
