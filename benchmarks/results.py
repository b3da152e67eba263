"""What every benchmark shares: the machine it ran on, interleaved median timings, and the one
function that writes a section into ``benchmarks/results.json`` and regenerates ``RESULTS.md``.

A section is a dict ``{"settings": {...}, "tables": {title: [row dicts]}, "notes": [str]}``; each
table cell is a ratio or a median measured within the section's own run.

Single-thread timings use the process's CPU time (``time.process_time``): on a shared machine the
other processes' load stretches wall time by whatever share of a core this process gets, while the
CPU time it needs barely changes. Multi-thread timings use wall time.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import statistics
import subprocess
import time
from pathlib import Path
from typing import Callable

HERE = Path(__file__).resolve().parent
JSON_PATH, MARKDOWN_PATH = HERE / "results.json", HERE / "RESULTS.md"


def machine() -> dict:
    """CPU model, cores, load, library versions, thread settings and the date of a measurement."""
    import captum
    import torch

    import interp_core

    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    try:
        import torchattacks

        torchattacks_version = torchattacks.__version__
    except ImportError:
        torchattacks_version = "not installed"
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=HERE, capture_output=True, text=True,
                                timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": cpu, "cores": os.cpu_count(), "load_average_1min": round(os.getloadavg()[0], 2),
        "python": platform.python_version(), "torch": torch.__version__, "captum": captum.__version__,
        "torchattacks": torchattacks_version, "interp_core": interp_core.__version__, "commit": commit,
        "torch_threads": torch.get_num_threads(), "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "unset"),
        "INTERP_CORE_THREADS": os.environ.get("INTERP_CORE_THREADS", "unset"),
    }


def medians(fns: dict[str, Callable[[], object]], repeats: int, warmup: bool = True,
            clock: Callable[[], float] = time.process_time) -> dict[str, float]:
    """Median seconds (of ``clock``: CPU time by default) of each function over ``repeats``
    interleaved rounds (after one warm-up round unless ``warmup`` is False), so that a change in the
    machine's load hits every function alike."""
    for fn in fns.values() if warmup else ():
        fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(max(repeats, 1)):
        for name, fn in fns.items():
            start = clock()
            fn()
            times[name].append(clock() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def record(section: str, figures: dict, quick: bool) -> None:
    """Store ``figures`` (a section, see the module docstring) under ``section`` in results.json,
    stamped with the machine and mode, and regenerate RESULTS.md from every stored section."""
    stored = json.loads(JSON_PATH.read_text()) if JSON_PATH.is_file() else {"sections": {}}
    stored["sections"][section] = {"machine": machine(), "quick": quick, **figures}
    JSON_PATH.write_text(json.dumps(stored, indent=1) + "\n")
    MARKDOWN_PATH.write_text(markdown(stored))


def _cell(value) -> str:
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 1000 else f"{value:.0f}"
    return str(value)


def markdown(stored: dict) -> str:
    """RESULTS.md: per section, when and where it ran, its settings, tables and notes."""
    lines = ["# Benchmark results", "",
             "Written by `python -m benchmarks` (`make bench`); do not edit by hand. Every figure is a ratio or a "
             "median measured within its section's run, on the machine named there; `--quick` runs use fewer "
             "repeats and smaller sizes and say so. Single-thread times are the process's CPU time (the machine's "
             "other load stretches wall time, not the work); the thread and app sections use wall time.", ""]
    for name, section in stored["sections"].items():
        m = section["machine"]
        lines += [f"## {section.get('title', name)}", "",
                  f"{m['date']}{' (quick run)' if section['quick'] else ''}: {m['cpu']}, {m['cores']} cores, "
                  f"1-minute load average {m['load_average_1min']} at the start; torch {m['torch']} "
                  f"({m['torch_threads']} thread(s), OMP_NUM_THREADS={m['OMP_NUM_THREADS']}), captum {m['captum']}, "
                  f"torchattacks {m['torchattacks']}, interp_core {m['interp_core']} ({m['commit'] or 'no commit'}), "
                  f"Python {m['python']}.", ""]
        if section.get("settings"):
            lines += ["Settings: " + ", ".join(f"{k} = {_cell(v)}" for k, v in section["settings"].items()) + ".", ""]
        for title, rows in section.get("tables", {}).items():
            if not rows:
                continue
            columns = list(dict.fromkeys(k for row in rows for k in row))
            lines += [f"**{title}**", "", "| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
            lines += ["| " + " | ".join(_cell(row.get(c, "")) for c in columns) + " |" for row in rows]
            lines.append("")
        lines += [f"- {note}" for note in section.get("notes", [])]
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"
