"""Reproduce the paper's tables and figures on the authors' networks (``../shared/paper-networks``,
docs/method.md#evaluation), as CSV, markdown and plotly HTML (PNG when kaleido can export).

``reproduce(out, quick=False, parts=PARTS, workers=1, address=None)`` first measures every unit
of the chosen parts (``units``; ``MEASURES`` holds one module-level function per part, so a unit
runs here or on a Ray worker, ``interp_core.parallel``), then runs one function per part, in this
order, each writing its own files from its units:

- ``pgd_tables``: robust accuracy under the authors' PGD, per network and eps;
- ``aai_tables``: AAI Kendall tau of the true-class CAM, per network and eps;
- ``bound_scatter``: the 2-class bound under minimum-eps targeted attacks (MNIST and CIFAR-10
  smallgap normal networks, the authors' targets);
- ``isa_tradeoff_curves``: the ISA trade-off on the authors' trade-off images (seed 52, positions
  37-41) with their targets, for the MNIST and CIFAR-10 smallgap normal networks, each with the
  authors' step budget and the fine one, and a statement of what was measured;
- ``uar_table``: accuracy under the unforeseen attacks (CIFAR-10 smallgap and wresnet networks).

The full run follows the authors' protocol and takes about 8 hours of one CPU thread (estimated by
``python -m benchmarks reproduce``), and spreads over as many workers as it has units (with the
authors' 51 networks: 51 each for PGD and AAI, 22 for UAR, 2 for the bound, 4 for ISA);
``quick=True`` runs a few networks on a few images with fewer steps, rounds and multipliers (the
README it writes says which).
Every table row records its protocol, targets and images.
"""

from __future__ import annotations

import csv
import json
import math
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Callable

import torch

from interp_core import paths
from interp_core.attacks import ISA_BUDGETS
from interp_core.datasets import DATASETS
from interp_core.datasets import eps_text
from interp_core.evaluate.data import authors_set_targets, evaluation_set
from interp_core.evaluate.interpretation import (ISAResult, aai_evaluation, bound_evaluation, isa_evaluation,
                                                  tradeoff_text)
from interp_core.evaluate.robust import Progress, robust_accuracy
from interp_core.evaluate.uar import uar_evaluation
from interp_core.io import rows_to_csv, write_atomic
from interp_core.models import load_model
from interp_core.parallel import run_tasks

#: (dataset, paper-file prefix, architecture) of each PGD / AAI table.
TABLES = (("mnist", "mnist", "smallgap"), ("mnist", "mnist", "pool"), ("cifar10", "cifar", "smallgap"),
          ("cifar10", "cifar", "wresnet"))
#: The UAR tables: the authors evaluate their CIFAR-10 networks.
UAR_TABLES = (("cifar10", "cifar", "smallgap"), ("cifar10", "cifar", "wresnet"))
#: The normally trained smallgap network per dataset: the bound and the ISA trade-off run on it.
NORMAL_SMALLGAP = {"mnist": "mnist_smallgap_normal_100", "cifar10": "cifar_smallgap_normal_200"}
PARTS = ("pgd", "aai", "bound", "isa", "uar")
#: part(name, done, total): progress of the running part.
PartProgress = Callable[[str, int, int], None]
#: How the README and ``load_reproduce_tables`` name a run's mode, by ``quick``.
MODES = {True: "--quick (few networks, few images, fewer steps: a smoke run, not the paper's numbers)",
         False: "full (the authors' protocol)"}
#: part -> (CSV file, value column) of the tables ``load_reproduce_tables`` reads back.
TABLE_FILES = {"pgd": ("pgd_accuracy.csv", "accuracy"), "aai": ("aai_kendall.csv", "kendall_tau")}
_FLOAT_COLUMNS = ("eps", "accuracy", "retested", "kendall_tau", "topk_intersection", "step_size")
_INT_COLUMNS = ("steps", "restarts", "n", "kept", "k")
MEASURE_COLORS = {"1class": "crimson", "2class": "royalblue", "allclass": "seagreen"}


@dataclass(frozen=True)
class Settings:
    """Sizes of a reproduction run; ``FULL`` is the authors' protocol, ``QUICK`` a smoke run."""

    #: images (the authors' seed-99 subset) and PGD / AAI steps of the tables
    n: int
    steps: int
    aai_steps: int
    #: images of the bound scatter (seed-99 subset)
    bound_n: int
    #: images of the authors' trade-off set (at most 5), multipliers, search rounds, measures, budgets
    tradeoff_n: int
    multipliers: tuple[float, ...]
    rounds: int
    tradeoff_measures: tuple[str, ...]
    budgets: tuple[str, ...]
    #: images and steps of the UAR table
    uar_n: int
    uar_steps: int
    #: methods per (dataset, arch) of the PGD / AAI tables and of the UAR table; None = every network found
    methods: dict | None
    uar_methods: dict | None = field(default=None)
    #: the re-test beside every PGD number (``interp_core.evaluate.RETESTS``)
    retest: str = "full"


FULL = Settings(n=200, steps=200, aai_steps=200, bound_n=100, tradeoff_n=5, multipliers=(1.0, 1.5, 2.0, 3.0, 4.0),
                rounds=10, tradeoff_measures=("1class", "2class", "allclass"), budgets=("authors", "fine"),
                uar_n=200, uar_steps=200, methods=None)
QUICK = Settings(n=40, steps=50, aai_steps=50, bound_n=30, tradeoff_n=2, multipliers=(2.0, 4.0), rounds=8,
                 tradeoff_measures=("1class", "2class"), budgets=("authors", "fine"), uar_n=10, uar_steps=20,
                 methods={("mnist", "smallgap"): ("normal", "adv", "int", "intone"),
                          ("cifar10", "smallgap"): ("normal", "adv", "int")},
                 uar_methods={("cifar10", "smallgap"): ("normal", "int"), ("cifar10", "wresnet"): ("normal",)},
                 retest="quick")


def paper_networks(dataset: str, prefix: str, arch: str, methods=None) -> list[tuple[str, Path]]:
    """(method, path) of the authors' networks of one table, in file-name order."""
    found = []
    for path in sorted(paths.paper_networks_dir().glob(f"{prefix}_{arch}_*.npz")):
        method = path.stem.split("_")[2]
        if methods is None or method in methods:
            found.append((method, path))
    return found


def _write_csv(path: Path, rows: list[dict]) -> None:
    write_atomic(path, rows_to_csv(rows))


def _markdown_table(rows: list[dict], row_key: str, col_key: str, col_fmt, value_fmt) -> str:
    """One line per ``row_key``, one column per ``col_key``; ``value_fmt(row)`` writes a cell."""
    cols = list(dict.fromkeys(r[col_key] for r in rows))
    keys = list(dict.fromkeys(r[row_key] for r in rows))
    cell = {(r[row_key], r[col_key]): r for r in rows}
    lines = [f"| {row_key} | " + " | ".join(col_fmt(c) for c in cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for k in keys:
        lines.append(f"| {k} | " + " | ".join(value_fmt(cell[(k, c)]) if (k, c) in cell else "" for c in cols) + " |")
    return "\n".join(lines)


def _save_figure(fig, out: Path, stem: str, warnings: list[str]) -> list[str]:
    """Writes stem.html and, where kaleido finds a Chrome, stem.png; returns the file names."""
    fig.write_html(out / f"{stem}.html", include_plotlyjs="cdn")
    try:
        fig.write_image(out / f"{stem}.png", width=1000, height=600)
    except Exception as err:  # kaleido needs a Chrome; PNG is optional
        message = f"PNG export skipped ({type(err).__name__}: {str(err).splitlines()[0][:120]})"
        if message not in warnings:
            warnings.append(message)
        return [f"{stem}.html"]
    return [f"{stem}.html", f"{stem}.png"]


def settings_dict(settings: Settings) -> dict:
    """``settings`` as JSON-able values (the method filters keyed "dataset_arch")."""
    return {**asdict(settings), **{key: None if getattr(settings, key) is None else
                                   {f"{d}_{a}": list(m) for (d, a), m in getattr(settings, key).items()}
                                   for key in ("methods", "uar_methods")}}


@dataclass(frozen=True)
class Unit:
    """One piece of a part that is measured on its own: one network of a PGD / AAI / UAR table, one
    normal network of the bound, one (normal network, budget) of the ISA trade-off. Its value is
    ``MEASURES[part](*args, settings, device)``, a JSON-able dict kept as one line of
    ``partial/<part>.jsonl`` under ``key``."""

    part: str
    key: str
    #: plain, picklable arguments (names, a network's Path), so a Ray worker can run it
    args: tuple


def table_networks(tables, methods: dict | None = None):
    """(dataset, arch, [(method, path)]) per table of ``tables`` with networks present;
    ``methods`` maps (dataset, arch) to the methods kept (None: every network, every table)."""
    for dataset, prefix, arch in tables:
        chosen = None if methods is None else methods.get((dataset, arch))
        if methods is not None and chosen is None:
            continue
        found = paper_networks(dataset, prefix, arch, chosen)
        if found:
            yield dataset, arch, found


def normal_network(dataset: str) -> Path | None:
    """The authors' normally trained smallgap network of ``dataset``, or None where it is absent."""
    path = paths.paper_networks_dir() / f"{NORMAL_SMALLGAP[dataset]}.npz"
    return path if path.is_file() else None


def units(part: str, s: Settings) -> list[Unit]:
    """The units of ``part`` under settings ``s``, in the order its tables list them."""
    if part in ("pgd", "aai", "uar"):
        tables, methods = (UAR_TABLES, s.uar_methods) if part == "uar" else (TABLES, s.methods)
        return [Unit(part, path.stem, (dataset, arch, method, path))
                for dataset, arch, found in table_networks(tables, methods) for method, path in found]
    normal = [(dataset, path) for dataset in NORMAL_SMALLGAP if (path := normal_network(dataset))]
    if part == "bound":
        return [Unit(part, path.stem, (dataset, path)) for dataset, path in normal]
    if part == "isa":
        return [Unit(part, f"{path.stem}_{budget}", (dataset, budget, path)) for dataset, path in normal
                for budget in s.budgets]
    raise ValueError(f"unknown part {part!r}; known: {PARTS}")


def _images(dataset: str, n: int, subset: str, device: str):
    """(x (n, C, H, W) in [0, 1], y (n,), description) of the authors' image set ``subset`` on ``device``."""
    images, what = evaluation_set(dataset, "test", n=n, subset=subset)
    return images.images.to(device), images.labels.to(device), what


def measure_pgd(dataset: str, arch: str, method: str, path: Path, s: Settings, device: str) -> dict:
    """One network's PGD rows, per eps of the dataset's grid: {"rows": [...], "warnings": [...]}."""
    x, y, what = _images(dataset, s.n, "paper", device)
    model, _ = load_model(path, device)
    result = robust_accuracy(model, x, y, list(DATASETS[dataset].paper_eps), "paper", steps=s.steps,
                             retest=s.retest, subset=what)
    return {"rows": [{"dataset": dataset, "arch": arch, "method": method, "network": path.stem,
                      "eps": r["eps"], "accuracy": r["accuracy"], "retested": r["retested"],
                      "retest": s.retest, "attack": "paper-pgd", "steps": s.steps, "step_size": 0.01,
                      "random_start": False, "restarts": 1, "n": len(y), "subset": what}
                     for r in result.results],
            "warnings": [f"{path.stem}: {w}" for w in result.warnings]}


def measure_aai(dataset: str, arch: str, method: str, path: Path, s: Settings, device: str) -> dict:
    """One network's AAI rows, per eps of the dataset's AAI grid: {"rows": [...]}."""
    x, y, what = _images(dataset, s.n, "paper", device)
    model, _ = load_model(path, device)
    result = aai_evaluation(model, x, y, list(DATASETS[dataset].aai_eps), steps=s.aai_steps, subset=what)
    return {"rows": [{"dataset": dataset, "arch": arch, "method": method, "network": path.stem,
                      "eps": r["eps"], "kendall_tau": r["kendall_tau"],
                      "topk_intersection": r["topk_intersection"], "kept": r["kept"], "attack": "aai", "k": 8,
                      "steps": s.aai_steps, "step_size": 0.01, "random_start": True, "restarts": 1,
                      "n": len(y), "subset": what} for r in result.results]}


def measure_bound(dataset: str, path: Path, s: Settings, device: str) -> dict:
    """One normal network's bound points toward the authors' targets: {"rows": [...]}."""
    x, y, what = _images(dataset, s.bound_n, "paper", device)
    model, _ = load_model(path, device)
    result = bound_evaluation(model, x, y, authors_set_targets("paper", y, 10), rounds=s.rounds, subset=what,
                              targets_label="the authors' stream of the paper set")
    return {"rows": [{"network": path.stem, **p, "violation": p["d2"] < p["half_margin"], "n": len(y),
                      "subset": what} for p in result.points]}


def measure_isa(dataset: str, budget: str, path: Path, s: Settings, device: str) -> dict:
    """One normal network's ISA trade-off with one budget of ``ISA_BUDGETS``: {"dataset",
    "network", "budget", "result": the ``isa_evaluation`` result's ``to_dict()``} (JSON, as every unit's
    value; ``isa_tradeoff_curves`` reads it back with ``ISAResult.from_dict``)."""
    x, y, what = _images(dataset, s.tradeoff_n, "tradeoff", device)
    model, _ = load_model(path, device)
    result = isa_evaluation(model, x, y, s.tradeoff_measures, multipliers=s.multipliers,
                            targets=authors_set_targets("tradeoff", y, 10), rounds=s.rounds, subset=what,
                            targets_label="the authors' stream of the trade-off set (numpy seed 52)",
                            **ISA_BUDGETS[budget])
    return {"dataset": dataset, "network": path.stem, "budget": budget, "result": result.to_dict()}


def measure_uar(dataset: str, arch: str, method: str, path: Path, s: Settings, device: str) -> dict:
    """One network's row of the UAR table (accuracy per unforeseen attack)."""
    x, y, what = _images(dataset, s.uar_n, "paper", device)
    model, _ = load_model(path, device)
    result = uar_evaluation(model, x, y, dataset=dataset, steps=s.uar_steps, subset=what)
    return {"dataset": dataset, "arch": arch, "method": method, "network": path.stem,
            "clean": result.clean_accuracy, **{r["attack"]: r["accuracy"] for r in result.results},
            "steps": s.uar_steps, "targets": result.protocol["targets"], "n": len(y), "subset": what}


#: part -> the function that measures one of its units.
MEASURES: dict[str, Callable[..., dict]] = {
    "pgd": measure_pgd, "aai": measure_aai, "bound": measure_bound, "isa": measure_isa, "uar": measure_uar}


class Run:
    """What every part shares: the output folder, settings, device, warnings, the workers its
    units run on (``interp_core.parallel.run_tasks``: ``workers`` and ``address``), and the progress
    callback."""

    def __init__(self, out: Path, settings: Settings, device: str | torch.device, progress: PartProgress | None,
                 resume: bool = False, workers: int = 1, address: str | None = None):
        self.out, self.settings, self.device, self.progress = out, settings, torch.device(device), progress
        self.workers, self.address = workers, address
        self.warnings: list[str] = []
        self.unit_seconds: dict[str, float] = {}
        self._start_units(resume)

    def _start_units(self, resume: bool) -> None:
        """``<out>/partial/`` holds each finished unit as a JSON line per part, with the settings it
        was measured with; a fresh run empties it, a resumed one checks that its settings are the
        same."""
        self.partial = self.out / "partial"
        stamp = json.dumps(settings_dict(self.settings), sort_keys=True)
        stamp_path = self.partial / "settings.json"
        if resume and stamp_path.is_file() and stamp_path.read_text() != stamp:
            raise ValueError(f"{paths.display(self.out)} holds a run with other settings (quick or full): "
                             f"resume it with those, or write into another folder")
        if not resume and self.partial.is_dir():
            for old in self.partial.glob("*.jsonl"):
                old.unlink()
        self.partial.mkdir(parents=True, exist_ok=True)
        write_atomic(stamp_path, stamp)

    def _stored(self) -> dict[tuple[str, str], dict]:
        """(part, key) -> {"key", "seconds", "value"} of every unit in ``partial/`` (a line cut
        short by a killed run is skipped)."""
        stored = {}
        for path in sorted(self.partial.glob("*.jsonl")):
            for line in path.read_text().splitlines():
                try:
                    entry = json.loads(line)
                except json.JSONDecodeError:
                    continue
                stored[path.stem, entry["key"]] = entry
        return stored

    def measure(self, todo: list[Unit]) -> list[dict]:
        """The value of each unit of ``todo``, in order, as read back from ``partial/``: units a
        previous call finished are read, the others measured on this run's workers and appended to
        ``partial/<part>.jsonl`` as each arrives, with its seconds. Reports each part's progress;
        sets ``unit_seconds[part]`` to the seconds of its units in ``todo``, measured now or before."""
        stored = self._stored()
        pending = [u for u in todo if (u.part, u.key) not in stored]
        total = Counter(u.part for u in todo)
        done = total - Counter(u.part for u in pending)
        for part, count in done.items():
            self.tick(part)(count, total[part])

        def arrived(index: int, value: dict, seconds: float) -> None:
            unit = pending[index]
            line = json.dumps({"key": unit.key, "seconds": seconds, "value": value})
            with open(self.partial / f"{unit.part}.jsonl", "a") as f:
                f.write(line + "\n")
            stored[unit.part, unit.key] = json.loads(line)
            done[unit.part] += 1
            self.tick(unit.part)(done[unit.part], total[unit.part])

        tasks = [(MEASURES[u.part], (*u.args, self.settings, str(self.device))) for u in pending]
        run_tasks(tasks, arrived, self.workers, self.address, self.device.type == "cuda")
        for part in total:
            self.unit_seconds[part] = round(sum(stored[u.part, u.key]["seconds"] for u in todo if u.part == part), 1)
        return [stored[u.part, u.key]["value"] for u in todo]

    def tick(self, part: str) -> Progress:
        return lambda done, total: self.progress(part, done, total) if self.progress else None

    def figure(self, fig, stem: str) -> list[str]:
        return _save_figure(fig, self.out, stem, self.warnings)

    def missing_normal_networks(self, part: str) -> None:
        """Warn for each dataset whose normal smallgap network (the bound's, the ISA's) is absent."""
        for dataset in NORMAL_SMALLGAP:
            if normal_network(dataset) is None:
                self.warnings.append(f"{part}: {paths.display(paths.paper_networks_dir() / NORMAL_SMALLGAP[dataset])}"
                                     ".npz not found")

    def finish(self, started: float, files: list[str], part: str) -> dict:
        """A part's result: its files, the wall-clock seconds of this call (measuring the units not
        yet measured, writing the files) and ``unit_seconds``: the seconds of all its units,
        measured now or by earlier calls."""
        result = {"seconds": round(time.perf_counter() - started, 1), "files": files}
        if part in self.unit_seconds:
            result["unit_seconds"] = self.unit_seconds[part]
        return result


def pgd_tables(run: Run) -> dict:
    """Robust accuracy of every paper network under the authors' PGD on the seed-99 subset, beside
    its re-test (``Settings.retest``)."""
    started = time.perf_counter()
    done = run.measure(units("pgd", run.settings))
    for value in done:
        run.warnings.extend(value["warnings"])
    rows = [row for value in done for row in value["rows"]]
    return run.finish(started, _tables_out(run, rows, "pgd_accuracy", "accuracy", "PGD robust accuracy"), "pgd")


def aai_tables(run: Run) -> dict:
    """AAI Kendall tau of the true-class CAM of every paper network on the seed-99 subset."""
    started = time.perf_counter()
    rows = [row for value in run.measure(units("aai", run.settings)) for row in value["rows"]]
    return run.finish(started, _tables_out(run, rows, "aai_kendall", "kendall_tau",
                                           "AAI mean Kendall tau (CAM of the true class)"), "aai")


def _tables_out(run: Run, rows: list[dict], stem: str, value: str, title: str) -> list[str]:
    """CSV, markdown (one table per dataset and architecture) and a figure of a per-network table."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    if not rows:
        run.warnings.append(f"{stem}: no paper networks found in {paths.paper_networks_dir()}")
        return []
    _write_csv(run.out / f"{stem}.csv", rows)
    groups = list(dict.fromkeys((r["dataset"], r["arch"]) for r in rows))
    fig = make_subplots(rows=1, cols=len(groups), subplot_titles=[f"{d} {a}" for d, a in groups])
    sections = []
    for g, (dataset, arch) in enumerate(groups, start=1):
        part = [r for r in rows if (r["dataset"], r["arch"]) == (dataset, arch)]
        sections.append(f"### {dataset} {arch}\n\nImages: {part[0]['subset']}.\n\n"
                        + _markdown_table(part, "method", "eps", partial(eps_text, dataset),
                                          lambda r: f"{r[value]:.3f}" + (f" / {r['retested']:.3f}"
                                                                         if "retested" in r else "")))
        for method in dict.fromkeys(r["method"] for r in part):
            pts = [r for r in part if r["method"] == method]
            fig.add_trace(go.Scatter(x=[r["eps"] for r in pts], y=[r.get("retested", r[value]) for r in pts],
                                     mode="lines+markers", name=f"{dataset} {arch} {method}", legendgroup=method),
                          row=1, col=g)
    first = rows[0]
    fig.update_layout(title=title + (" (re-tested)" if "retested" in first else ""))
    protocol = (f"{first['attack']}, {first['steps']} steps, step {first['step_size']}, random start "
                f"{first['random_start']}, {first['restarts']} restart(s)")
    if "retested" in first:
        protocol += (f". Each cell: reported / re-tested, the re-test ({first['retest']}) being what is left after "
                     "that attack and then random-start PGD on the cross-entropy and the margin and Square "
                     "(interp_core.evaluate.RETESTS), each on the images the earlier attacks left standing; the "
                     "figure draws the re-tested numbers")
    (run.out / f"{stem}.md").write_text(f"## {title}\n\nProtocol: {protocol}.\n\n" + "\n\n".join(sections) + "\n")
    return [f"{stem}.csv", f"{stem}.md", *run.figure(fig, stem)]


def bound_scatter(run: Run) -> dict:
    """The 2-class bound on the MNIST and CIFAR-10 smallgap normal networks: minimum-eps targeted
    attacks toward the authors' targets of the seed-99 subset."""
    import plotly.graph_objects as go

    started, s = time.perf_counter(), run.settings
    run.missing_normal_networks("bound")
    rows = [row for value in run.measure(units("bound", s)) for row in value["rows"]]
    if not rows:
        return run.finish(started, [], "bound")
    fig = go.Figure()
    for net in dict.fromkeys(r["network"] for r in rows):
        points = [r for r in rows if r["network"] == net]
        fig.add_trace(go.Scatter(x=[p["half_margin"] for p in points], y=[p["d2"] for p in points], mode="markers",
                                 name=net))
    top = max(max(p["d2"], p["half_margin"]) for p in rows)
    fig.add_trace(go.Scatter(x=[0, top], y=[0, top], mode="lines", name="d2 = half margin",
                             line={"dash": "dash", "color": "gray"}))
    fig.update_layout(title="2-class bound under minimum-eps targeted attacks",
                      xaxis_title="(Z_y(x) - Z_t(x)) / 2", yaxis_title="D2 of CAM / (h w)")
    _write_csv(run.out / "bound.csv", rows)
    lines = ["| network | points | violations | min d2 - half margin |", "|---|---|---|---|"]
    for net in dict.fromkeys(r["network"] for r in rows):
        part = [r for r in rows if r["network"] == net]
        lines.append(f"| {net} | {len(part)} | {sum(r['violation'] for r in part)} | "
                     f"{min(r['d2'] - r['half_margin'] for r in part):.4f} |")
    (run.out / "bound.md").write_text(
        "## The 2-class bound (docs/method.md#bound)\n\nMinimum-eps targeted margin attacks toward the authors' "
        f"targets (numpy seed 99, drawn after the subset's permutation), {s.rounds} bisection rounds of a 10-step "
        "attack; every point must have d2 >= half margin.\n\n" + "\n".join(lines) + "\n")
    return run.finish(started, ["bound.csv", "bound.md", *run.figure(fig, "bound")], "bound")


def isa_tradeoff_curves(run: Run) -> dict:
    """The ISA trade-off (CAM, l1) on the authors' trade-off images with their targets, for the
    MNIST and CIFAR-10 smallgap normal networks, with each budget of ``Settings.budgets``."""
    started, s = time.perf_counter(), run.settings
    run.missing_normal_networks("isa")
    results = [(v["dataset"], v["network"], v["budget"], ISAResult.from_dict(v["result"]))
               for v in run.measure(units("isa", s))]
    if not results:
        return run.finish(started, [], "isa")
    rows = [{"dataset": dataset, "network": network, "budget": budget, "steps": r.protocol["steps"],
             "step_scale": r.protocol["step_scale"], "attack_measure": curve["measure"], **point,
             "label": r.images[point["image"]]["label"], "target": r.images[point["image"]]["target"],
             "bound": curve["bound"][point["image"]], "subset": r.subset}
            for dataset, network, budget, r in results for curve in r.curves for point in curve["points"]]
    if not rows:
        run.warnings.append("isa: no successful ISA example")
        return run.finish(started, [], "isa")
    _write_csv(run.out / "isa_tradeoff.csv", rows)
    (run.out / "isa_tradeoff.md").write_text(_tradeoff_markdown(results, s))
    files = ["isa_tradeoff.csv", "isa_tradeoff.md"]
    panels = [(f"{network}, {budget} budget", r) for _, network, budget, r in results]
    for scale, stem in (("raw", "isa_tradeoff"), ("range", "isa_tradeoff_range")):
        fig = tradeoff_figure(panels, scale, columns=len(s.budgets))
        fig.update_layout(title=f"ISA trade-off (CAM, l1, the authors' trade-off images): {scale} discrepancy, "
                                "running minimum")
        files += run.figure(fig, stem)
    return run.finish(started, files, "isa")


def _tradeoff_markdown(results: list, s: Settings) -> str:
    first = results[0][3]
    lines = ["## ISA trade-off (docs/method.md#isa)", "",
             f"CAM maps, l1 distance; images: the authors' trade-off set (numpy seed 52, positions 37-"
             f"{37 + s.tradeoff_n - 1}; {first.n} images) with their targets. Per image: the minimum eps that "
             f"reaches the target (gamma = 0; the curve's start at p = 1), then at eps = p x eps_min for p in "
             f"{', '.join(f'{p:g}' for p in s.multipliers)} the largest gamma that still reaches it ({s.rounds} search "
             "rounds). Raw D: the attack's discrepancy on raw maps against the nominal eps (the authors' figure); "
             "range D: each class term divided by its clean map's range (their statistics); both as the authors' "
             "running minimum over this and the smaller multipliers. The bound 1/2 h w (Z_y - Z_t) is the floor of "
             "the raw 2-class discrepancy.", ""]
    for dataset, network, budget, r in results:
        p = r.protocol
        lines += [f"### {network}, {budget} budget ({p['steps']} soft-sign steps of {p['step_scale']:g} eps)", "",
                  "| attack measure | multiplier | images | mean linf of the example at p | mean raw D | mean range D "
                  "| mean bound |",
                  "|---|---|---|---|---|---|---|"]
        for curve in r.curves:
            for row in curve["summary"]:
                bound = "" if row["mean_bound"] is None or curve["measure"] != "2class" else f"{row['mean_bound']:.4g}"
                lines.append(f"| {curve['measure']} | {row['multiplier']:g} | {row['images']} | {row['mean_linf']:.4f} | "
                             f"{row['mean_raw']:.4g} | {row['mean_range']:.4f} | {bound} |")
        lines += ["", "Measured:", "", *(f"- {t}" for t in tradeoff_text(r, "raw").splitlines()),
                  *(f"- {t}" for t in tradeoff_text(r, "range").splitlines()), ""]
    return "\n".join(lines) + "\n"


def tradeoff_figure(panels: list[tuple[str, ISAResult]], scale: str = "raw", envelope: bool = True, columns: int = 2):
    """A plotly figure of ISA trade-off curves: one subplot per (title, ``isa_evaluation`` result),
    ``columns`` per row, one line per image and attack measure. ``scale="raw"``: raw D against the
    nominal eps, with each image's bound 1/2 h w (Z_y - Z_t) dashed under the 2-class curve (the
    authors' figure); ``"range"``: range-normalized D against the actual linf. ``envelope``: plot
    the authors' running minimum instead of each point's own value."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    if scale not in ("raw", "range"):
        raise ValueError(f"scale must be 'raw' or 'range', got {scale!r}")
    columns = max(1, min(columns, len(panels)))
    rows = -(-len(panels) // columns)
    fig = make_subplots(rows=rows, cols=columns, subplot_titles=[title for title, _ in panels])
    key = f"envelope_{scale}" if envelope else scale
    shown = set()
    for k, (_, result) in enumerate(panels):
        row, col = k // columns + 1, k % columns + 1
        for curve in result.curves:
            measure = curve["measure"]
            for image in dict.fromkeys(q["image"] for q in curve["points"]):
                pts = [q for q in curve["points"] if q["image"] == image]
                xs = [q["eps"] if scale == "raw" else q["linf"] for q in pts]
                fig.add_trace(go.Scatter(x=xs, y=[q[key] for q in pts], mode="lines+markers", name=measure,
                                         legendgroup=measure, showlegend=measure not in shown,
                                         line={"color": MEASURE_COLORS[measure]}, hovertext=f"image {image}"),
                              row=row, col=col)
                shown.add(measure)
                bound = curve["bound"][image]
                if scale == "raw" and measure == "2class" and bound is not None:
                    fig.add_trace(go.Scatter(x=[min(xs), max(xs)], y=[bound, bound], mode="lines",
                                             name="bound ½·h·w·(Z_y − Z_t)", legendgroup="bound",
                                             showlegend="bound" not in shown, hovertext=f"image {image}",
                                             line={"dash": "dash", "color": "gray"}), row=row, col=col)
                    shown.add("bound")
    fig.update_xaxes(title_text="nominal ε" if scale == "raw" else "actual ‖δ‖∞")
    fig.update_yaxes(title_text=("raw D" if scale == "raw" else "range-normalized D")
                     + (" (running minimum)" if envelope else ""))
    fig.update_layout(height=360 * rows, margin=dict(l=5, r=5, t=40, b=5), legend=dict(orientation="h", y=-0.15))
    return fig


def uar_table(run: Run) -> dict:
    """Accuracy of the CIFAR-10 smallgap and wresnet networks under the six unforeseen attacks
    (the authors' budgets and targets) on the seed-99 subset."""
    started, s = time.perf_counter(), run.settings
    rows = run.measure(units("uar", s))
    if not rows:
        run.warnings.append(f"uar: no CIFAR-10 paper networks found in {paths.paper_networks_dir()}")
        return run.finish(started, [], "uar")
    _write_csv(run.out / "uar_accuracy.csv", rows)
    attacks = [k for k in rows[0]
               if k not in ("dataset", "arch", "method", "network", "clean", "steps", "targets", "n", "subset")]
    lines = ["## Unforeseen attacks (docs/method.md#uar)", "",
             f"Accuracy under each attack with the authors' budgets, {s.uar_steps} steps of eps / sqrt(steps) from a "
             f"random start; targets: {rows[0]['targets']}; images: {rows[0]['subset']}.", "",
             "| network | clean | " + " | ".join(attacks) + " |", "|---" * (len(attacks) + 2) + "|"]
    lines += [f"| {r['network']} | {r['clean']:.3f} | " + " | ".join(f"{r[a]:.3f}" for a in attacks) + " |" for r in rows]
    (run.out / "uar_accuracy.md").write_text("\n".join(lines) + "\n")
    return run.finish(started, ["uar_accuracy.csv", "uar_accuracy.md"], "uar")


PART_FUNCTIONS: dict[str, Callable[[Run], dict]] = {
    "pgd": pgd_tables, "aai": aai_tables, "bound": bound_scatter, "isa": isa_tradeoff_curves, "uar": uar_table}


def reproduce(out: str | Path, quick: bool = False, parts: tuple[str, ...] = PARTS, device: str | torch.device = "cpu",
              progress: PartProgress | None = None, resume: bool = False, workers: int = 1,
              address: str | None = None) -> dict:
    """Run the parts ``parts`` (of ``PARTS``, in that order) into ``out``; returns {"settings",
    "workers", "address", "seconds" (wall-clock of the call), "parts": {name: {"seconds" (its
    files), "unit_seconds", "files"}}, "warnings"}. Needs the paper networks and the MNIST /
    CIFAR-10 test sets. Writes README.md (mode, settings, timing, every part's markdown) and
    summary.json.

    Every part is made of units (``units``: a network of a table, a network of the bound, a network
    and budget of the ISA trade-off). The units of all chosen parts are measured first, one after
    another here (``workers=1``) or at once on Ray (``workers`` local processes, or the cluster at
    ``address``; ``interp_core.parallel``), each kept in ``out/partial/`` as it arrives; then each
    part writes its files from the units read back, by the same code whichever ran them, so the
    tables are identical. With ``resume`` a stopped run (serial or not) continues where it stopped
    (same settings only), and ``unit_seconds`` adds up the work of every call, so a full run can be
    spread over several sessions and still report what it cost."""
    unknown = set(parts) - set(PARTS)
    if unknown:
        raise ValueError(f"unknown parts {sorted(unknown)}; known: {PARTS}")
    started = time.perf_counter()
    settings = QUICK if quick else FULL
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    run = Run(out, settings, device, progress, resume, workers, address)
    chosen = [name for name in PARTS if name in parts]
    run.measure([unit for name in chosen for unit in units(name, settings)])  # at once: no worker waits for a part
    summary = {"settings": {**settings_dict(settings), "quick": quick}, "workers": workers, "address": address,
               "parts": {name: PART_FUNCTIONS[name](run) for name in chosen}, "warnings": run.warnings}
    summary["seconds"] = round(time.perf_counter() - started, 1)
    _write_readme(out, quick, settings, summary)
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def workers_text(workers: int, address: str | None) -> str:
    """Where a run's units ran, in words."""
    if address:
        return f"on the Ray cluster at {address}"
    return "one after another in one process" if workers == 1 else f"on {workers} local Ray workers"


def _write_readme(out: Path, quick: bool, s: Settings, summary: dict) -> None:
    sections = [(out / f).read_text() for p in summary["parts"].values() for f in p["files"] if f.endswith(".md")]
    timing = "\n".join(f"- {name}: {p['unit_seconds']} s of work, {p['seconds']} s for its files"
                       for name, p in summary["parts"].items())
    sizes = (f"Sizes: PGD and AAI tables {s.n} images, {s.steps} PGD steps, {s.aai_steps} AAI steps; bound "
             f"{s.bound_n} images; ISA trade-off {s.tradeoff_n} of the authors' 5 trade-off images, multipliers "
             f"{', '.join(f'{p:g}' for p in s.multipliers)} (each curve starts at its minimum-eps example, p = 1), "
             f"{s.rounds} search rounds, measures "
             f"{', '.join(s.tradeoff_measures)}, budgets {', '.join(s.budgets)}; UAR {s.uar_n} images, "
             f"{s.uar_steps} steps." + (" A quick run uses fewer networks, images, steps, rounds and multipliers "
                                        "than the authors (full run: 200 images, 200 steps, every network)."
                                        if quick else ""))
    warnings = summary["warnings"]
    (out / "README.md").write_text(
        f"# Reproducing the paper\n\nProduced by `{reproduce_command(out, quick)}`; mode: {MODES[quick]}.\n\n"
        f"{sizes}\n\nWall-clock: {summary['seconds']} s, the units measured "
        f"{workers_text(summary['workers'], summary['address'])}. Per part, the seconds of its units' work (this call "
        f"and any it resumed) and of writing its files:\n{timing}\n\n" + "\n".join(sections)
        + ("\n## Warnings\n\n" + "\n".join(f"- {w}" for w in warnings) + "\n" if warnings else ""))


def reproduce_command(out: str | Path, quick: bool) -> str:
    """The command line that (re)writes a reproduction into ``out``."""
    return f"python -m interp_core reproduce --out {paths.display(out)}{' --quick' if quick else ''}"


def _cell(row: dict, value: str) -> str:
    """A wide table's cell: ``row[value]`` (and its re-test) to 3 decimals; "—" for NaN."""
    text = lambda v: "—" if math.isnan(v) else f"{v:.3f}"  # noqa: E731
    return text(row[value]) + (f" / {text(row['retested'])}" if "retested" in row else "")


def load_reproduce_tables(out: str | Path) -> dict:
    """Read back the PGD-accuracy and AAI Kendall-tau tables a ``reproduce`` run wrote into ``out``
    (docs/method.md#evaluation).

    Returns {"out": shown path, "quick": bool or None (no summary.json), "mode", "command",
    "settings": the run's settings or None, "tables": {"pgd" | "aai": {"file", "value", "rows",
    "wide"}}} where "rows" are the CSV rows with numbers parsed and "wide" maps "dataset arch" to
    rows {"method", <eps label>: text} (one column per eps, CIFAR-10 eps as k/255; each cell the
    value to 3 decimals, "reported / re-tested" where the run re-tested it, "—" for NaN). A table whose
    CSV is absent is left out. Raises FileNotFoundError when ``out`` holds neither CSV and
    ValueError for a CSV without the columns ``reproduce`` writes.
    """
    out = Path(out)
    summary_path = out / "summary.json"
    settings = json.loads(summary_path.read_text())["settings"] if summary_path.is_file() else None
    quick = None if settings is None else bool(settings["quick"])
    tables = {}
    for part, (name, value) in TABLE_FILES.items():
        path = out / name
        if not path.is_file():
            continue
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
        missing = {"dataset", "arch", "method", "eps", value} - set(rows[0] if rows else ())
        if missing:
            raise ValueError(f"{paths.display(path)}: not a reproduce table (missing columns {sorted(missing)})")
        for row in rows:
            row.update({k: float(row[k]) for k in _FLOAT_COLUMNS if k in row})
            row.update({k: int(row[k]) for k in _INT_COLUMNS if k in row})
            if "random_start" in row:
                row["random_start"] = row["random_start"] == "True"
        wide: dict[str, list[dict]] = {}
        for dataset, arch in dict.fromkeys((r["dataset"], r["arch"]) for r in rows):
            label = partial(eps_text, dataset)
            group = [r for r in rows if (r["dataset"], r["arch"]) == (dataset, arch)]
            wide[f"{dataset} {arch}"] = [{"method": method, **{label(r["eps"]): _cell(r, value) for r in group
                                                               if r["method"] == method}}
                                         for method in dict.fromkeys(r["method"] for r in group)]
        tables[part] = {"file": name, "value": value, "rows": rows, "wide": wide}
    if not tables:
        raise FileNotFoundError(f"{paths.display(out)}: no {' or '.join(f for f, _ in TABLE_FILES.values())} "
                                f"(write them with: {reproduce_command(out, True)})")
    return {"out": paths.display(out), "quick": quick, "mode": MODES[quick] if quick is not None else
            "unknown (no summary.json beside the tables)", "command": reproduce_command(out, bool(quick)),
            "settings": settings, "tables": tables}
