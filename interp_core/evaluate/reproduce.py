"""Reproduce the paper's tables and figures on the authors' networks (``../shared/paper-networks``):
PGD accuracy tables, AAI Kendall-tau tables, the bound scatter, and ISA trade-off curves
(PAPER.md sections 4-5). Written as CSV, markdown and plotly HTML (PNG when kaleido can export).

``reproduce(out, quick=False)``: the full run follows the authors' protocol (200 images, 200
steps, every network) and takes hours on a CPU; ``quick=True`` runs a few networks on a few images
with fewer steps, for a check in minutes. Every table row records its protocol and subset.
"""

from __future__ import annotations

import csv
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import torch

from interp_core import paths
from interp_core.attacks import PAPER_EPS
from interp_core.evaluate.data import evaluation_set
from interp_core.evaluate.interpretation import aai_evaluation, bound_evaluation, isa_evaluation
from interp_core.evaluate.robust import robust_accuracy
from interp_core.io import rows_to_csv, write_atomic
from interp_core.models import load_model

#: (dataset, paper-file prefix, architecture) of each PGD / AAI table.
TABLES = (("mnist", "mnist", "smallgap"), ("mnist", "mnist", "pool"), ("cifar10", "cifar", "smallgap"),
          ("cifar10", "cifar", "wresnet"))
AAI_EPS = {"mnist": (0.1, 0.2, 0.3), "cifar10": (2 / 255, 4 / 255, 8 / 255)}
PARTS = ("pgd", "aai", "bound", "isa")
#: part(name, done, total): progress of the running part.
PartProgress = Callable[[str, int, int], None]
#: How the README and ``load_reproduce_tables`` name a run's mode, by ``quick``.
MODES = {True: "--quick (few networks, few images, fewer steps: a smoke run, not the paper's numbers)",
         False: "full (the authors' protocol)"}
#: part -> (CSV file, value column) of the tables ``load_reproduce_tables`` reads back.
TABLE_FILES = {"pgd": ("pgd_accuracy.csv", "accuracy"), "aai": ("aai_kendall.csv", "kendall_tau")}
_FLOAT_COLUMNS = ("eps", "accuracy", "kendall_tau", "topk_intersection", "step_size")
_INT_COLUMNS = ("steps", "restarts", "n", "kept", "k")


@dataclass(frozen=True)
class Settings:
    """Sizes of a reproduction run; ``FULL`` is the authors' protocol, ``QUICK`` a smoke run."""

    n: int
    steps: int
    aai_steps: int
    bound_n: int
    isa_images: int
    multipliers: tuple[float, ...]
    rounds: int
    #: methods per (dataset, arch) table; None = every network found
    methods: dict | None


FULL = Settings(n=200, steps=200, aai_steps=200, bound_n=200, isa_images=10, multipliers=(1.0, 1.5, 2.0, 3.0, 4.0),
                rounds=10, methods=None)
QUICK = Settings(n=40, steps=50, aai_steps=50, bound_n=30, isa_images=4, multipliers=(1.0, 2.0, 4.0), rounds=10,
                 methods={("mnist", "smallgap"): ("normal", "adv", "int", "intone"),
                          ("cifar10", "smallgap"): ("normal", "adv", "int")})


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


def _markdown_table(rows: list[dict], row_key: str, col_key: str, value_key: str, col_fmt, value_fmt) -> str:
    cols = list(dict.fromkeys(r[col_key] for r in rows))
    keys = list(dict.fromkeys(r[row_key] for r in rows))
    cell = {(r[row_key], r[col_key]): r[value_key] for r in rows}
    lines = [f"| {row_key} | " + " | ".join(col_fmt(c) for c in cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for k in keys:
        lines.append(f"| {k} | " + " | ".join(value_fmt(cell[(k, c)]) if (k, c) in cell else "" for c in cols) + " |")
    return "\n".join(lines)


def _eps_label(dataset: str):
    return (lambda e: f"{e * 255:g}/255") if dataset == "cifar10" else (lambda e: f"{e:g}")


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


def reproduce(out: str | Path, quick: bool = False, parts: tuple[str, ...] = PARTS, device: str | torch.device = "cpu",
              progress: PartProgress | None = None) -> dict:
    """Run the reproduction into ``out``; returns {"settings", "parts": {name: {"seconds", "files"}},
    "warnings"}. Needs the paper networks and the MNIST / CIFAR-10 test sets."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    unknown = set(parts) - set(PARTS)
    if unknown:
        raise ValueError(f"unknown parts {sorted(unknown)}; known: {PARTS}")
    settings = QUICK if quick else FULL
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    summary = {"settings": {**asdict(settings), "quick": quick, "methods": None if settings.methods is None else
                            {f"{d}_{a}": list(m) for (d, a), m in settings.methods.items()}},
               "parts": {}, "warnings": []}
    warnings = summary["warnings"]
    data_cache: dict = {}

    def data(dataset: str, n: int):
        if (dataset, n) not in data_cache:
            subset, what = evaluation_set(dataset, "test", n=n)
            data_cache[dataset, n] = (subset.images.to(device), subset.labels.to(device), what)
        return data_cache[dataset, n]

    def tables():
        for dataset, prefix, arch in TABLES:
            methods = None if settings.methods is None else settings.methods.get((dataset, arch))
            if settings.methods is not None and methods is None:
                continue
            networks = paper_networks(dataset, prefix, arch, methods)
            if networks:
                yield dataset, arch, networks

    def run_part(name: str, body) -> None:
        if name not in parts:
            return
        started = time.perf_counter()
        files = body(lambda done, total: progress(name, done, total) if progress else None)
        summary["parts"][name] = {"seconds": round(time.perf_counter() - started, 1), "files": files}

    def pgd_part(tick) -> list[str]:
        rows, jobs = [], [(d, a, m, p) for d, a, nets in tables() for m, p in nets]
        for j, (dataset, arch, method, path) in enumerate(jobs):
            x, y, what = data(dataset, settings.n)
            model, _ = load_model(path, device)
            result = robust_accuracy(model, x, y, list(PAPER_EPS[dataset]), "paper", steps=settings.steps, subset=what)
            for r in result.results:
                rows.append({"dataset": dataset, "arch": arch, "method": method, "network": path.stem,
                             "eps": r["eps"], "accuracy": r["accuracy"], "attack": "paper-pgd",
                             "steps": settings.steps, "step_size": 0.01, "random_start": False, "restarts": 1,
                             "n": len(y), "subset": what})
            warnings.extend(f"{path.stem}: {w}" for w in result.warnings)
            tick(j + 1, len(jobs))
        return _tables_out(rows, "pgd_accuracy", "accuracy", "PGD robust accuracy")

    def aai_part(tick) -> list[str]:
        rows, jobs = [], [(d, a, m, p) for d, a, nets in tables() for m, p in nets]
        for j, (dataset, arch, method, path) in enumerate(jobs):
            x, y, what = data(dataset, settings.n)
            model, _ = load_model(path, device)
            result = aai_evaluation(model, x, y, list(AAI_EPS[dataset]), steps=settings.aai_steps, subset=what)
            for r in result["results"]:
                rows.append({"dataset": dataset, "arch": arch, "method": method, "network": path.stem,
                             "eps": r["eps"], "kendall_tau": r["kendall_tau"],
                             "topk_intersection": r["topk_intersection"], "kept": r["kept"], "attack": "aai",
                             "k": 8, "steps": settings.aai_steps, "step_size": 0.01, "random_start": True,
                             "restarts": 1, "n": len(y), "subset": what})
            tick(j + 1, len(jobs))
        return _tables_out(rows, "aai_kendall", "kendall_tau", "AAI mean Kendall tau (CAM of the true class)")

    def _tables_out(rows, stem, value, title) -> list[str]:
        if not rows:
            warnings.append(f"{stem}: no paper networks found in {paths.paper_networks_dir()}")
            return []
        _write_csv(out / f"{stem}.csv", rows)
        groups = list(dict.fromkeys((r["dataset"], r["arch"]) for r in rows))
        fig = make_subplots(rows=1, cols=len(groups), subplot_titles=[f"{d} {a}" for d, a in groups])
        sections = []
        for g, (dataset, arch) in enumerate(groups, start=1):
            part = [r for r in rows if (r["dataset"], r["arch"]) == (dataset, arch)]
            sections.append(f"### {dataset} {arch}\n\nImages: {part[0]['subset']}.\n\n"
                            + _markdown_table(part, "method", "eps", value, _eps_label(dataset), lambda v: f"{v:.3f}"))
            for method in dict.fromkeys(r["method"] for r in part):
                pts = [r for r in part if r["method"] == method]
                fig.add_trace(go.Scatter(x=[r["eps"] for r in pts], y=[r[value] for r in pts], mode="lines+markers",
                                         name=f"{dataset} {arch} {method}", legendgroup=method), row=1, col=g)
        fig.update_layout(title=title)
        first = rows[0]
        protocol = (f"{first['attack']}, {first['steps']} steps, step {first['step_size']}, random start "
                    f"{first['random_start']}, {first['restarts']} restart(s)")
        (out / f"{stem}.md").write_text(f"## {title}\n\nProtocol: {protocol}.\n\n" + "\n\n".join(sections) + "\n")
        return [f"{stem}.csv", f"{stem}.md", *_save_figure(fig, out, stem, warnings)]

    def bound_part(tick) -> list[str]:
        rows, jobs = [], [("mnist", "mnist"), ("cifar10", "cifar")]
        fig = go.Figure()
        top = 0.0
        for j, (dataset, prefix) in enumerate(jobs):
            path = paths.paper_networks_dir() / f"{prefix}_smallgap_normal_{100 if dataset == 'mnist' else 200}.npz"
            if not path.is_file():
                warnings.append(f"bound: {path} not found")
                continue
            x, y, what = data(dataset, settings.bound_n)
            model, _ = load_model(path, device)
            result = bound_evaluation(model, x, y, rounds=settings.rounds, subset=what)
            for p in result["points"]:
                rows.append({"network": path.stem, **p, "violation": p["d2"] < p["half_margin"], "n": len(y),
                             "subset": what})
            fig.add_trace(go.Scatter(x=[p["half_margin"] for p in result["points"]],
                                     y=[p["d2"] for p in result["points"]], mode="markers", name=path.stem))
            top = max([top] + [max(p["d2"], p["half_margin"]) for p in result["points"]])
            tick(j + 1, len(jobs))
        if not rows:
            return []
        fig.add_trace(go.Scatter(x=[0, top], y=[0, top], mode="lines", name="d2 = half margin",
                                 line={"dash": "dash", "color": "gray"}))
        fig.update_layout(title="2-class bound under minimum-eps targeted attacks",
                          xaxis_title="(Z_y(x) - Z_t(x)) / 2", yaxis_title="D2 of CAM / (h w)")
        _write_csv(out / "bound.csv", rows)
        lines = ["| network | points | violations | min d2 - half margin |", "|---|---|---|---|"]
        for net in dict.fromkeys(r["network"] for r in rows):
            part = [r for r in rows if r["network"] == net]
            lines.append(f"| {net} | {len(part)} | {sum(r['violation'] for r in part)} | "
                         f"{min(r['d2'] - r['half_margin'] for r in part):.4f} |")
        (out / "bound.md").write_text(
            "## The 2-class bound (PAPER.md section 4)\n\nMinimum-eps targeted margin attacks (random targets, "
            f"{settings.rounds} bisection rounds of a 10-step attack); every point must have d2 >= half margin.\n\n"
            + "\n".join(lines) + "\n")
        return ["bound.csv", "bound.md", *_save_figure(fig, out, "bound", warnings)]

    def isa_part(tick) -> list[str]:
        path = paths.paper_networks_dir() / "mnist_smallgap_normal_100.npz"
        if not path.is_file():
            warnings.append(f"isa: {path} not found")
            return []
        x, y, what = data("mnist", settings.isa_images)
        model, _ = load_model(path, device)
        result = isa_evaluation(model, x, y, ("1class", "2class"), multipliers=settings.multipliers,
                                rounds=settings.rounds, subset=what, progress=tick)
        rows, fig = [], go.Figure()
        colors = {"1class": "crimson", "2class": "royalblue"}
        for curve in result["curves"]:
            for p in curve["points"]:
                rows.append({"network": path.stem, "attack_measure": curve["measure"], **p, "subset": what})
            for image in dict.fromkeys(p["image"] for p in curve["points"]):
                pts = sorted((p for p in curve["points"] if p["image"] == image), key=lambda p: p["multiplier"])
                fig.add_trace(go.Scatter(x=[p["linf"] for p in pts], y=[p["best_so_far"] for p in pts],
                                         mode="lines+markers", name=f"{curve['measure']} image {image}",
                                         legendgroup=curve["measure"], line={"color": colors[curve["measure"]]}))
        fig.update_layout(title="ISA trade-off (CAM, l1): range-normalized discrepancy vs ||delta||_inf",
                          xaxis_title="actual ||x' - x||_inf", yaxis_title="discrepancy of the attacked measure")
        if not rows:
            warnings.append("isa: no successful ISA example")
            return []
        _write_csv(out / "isa_tradeoff.csv", rows)
        lines = ["| attack measure | multiplier | successes | mean linf | mean discrepancy |", "|---|---|---|---|---|"]
        for curve in result["curves"]:
            for s in curve["summary"]:
                lines.append(f"| {curve['measure']} | {s['multiplier']:g} | {s['successes']} | {s['mean_linf']:.4f} | "
                             f"{s['mean_discrepancy']:.3f} |")
        (out / "isa_tradeoff.md").write_text(
            f"## ISA trade-off curves ({path.stem}, CAM, l1)\n\nFor each image: minimum eps (gamma = 0), then at "
            "eps = multiplier x eps_min the largest gamma that still reaches a random target; discrepancy "
            "range-normalized, the minimum over this and smaller multipliers. Expected: the 1-class "
            "discrepancy falls toward 0 as eps grows, the 2-class one "
            f"levels off.\n\nImages: {what}.\n\n" + "\n".join(lines) + "\n")
        return ["isa_tradeoff.csv", "isa_tradeoff.md", *_save_figure(fig, out, "isa_tradeoff", warnings)]

    run_part("pgd", pgd_part)
    run_part("aai", aai_part)
    run_part("bound", bound_part)
    run_part("isa", isa_part)
    sections = [(out / f).read_text() for p in summary["parts"].values() for f in p["files"] if f.endswith(".md")]
    timing = "\n".join(f"- {name}: {p['seconds']} s" for name, p in summary["parts"].items())
    mode = MODES[quick]
    (out / "README.md").write_text(
        f"# Reproducing the paper\n\nProduced by `python -m interp_core reproduce --out {out}"
        f"{' --quick' if quick else ''}`; mode: {mode}.\n\nWall-clock per part:\n{timing}\n\n"
        + "\n".join(sections)
        + ("\n## Warnings\n\n" + "\n".join(f"- {w}" for w in warnings) + "\n" if warnings else ""))
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def reproduce_command(out: str | Path, quick: bool) -> str:
    """The command line that (re)writes a reproduction into ``out``."""
    return f"python -m interp_core reproduce --out {paths.display(out)}{' --quick' if quick else ''}"


def load_reproduce_tables(out: str | Path) -> dict:
    """Read back the PGD-accuracy and AAI Kendall-tau tables a ``reproduce`` run wrote into ``out``
    (PAPER.md section 5).

    Returns {"out": shown path, "quick": bool or None (no summary.json), "mode", "command",
    "settings": the run's settings or None, "tables": {"pgd" | "aai": {"file", "value", "rows",
    "wide"}}} where "rows" are the CSV rows with numbers parsed and "wide" maps "dataset arch" to
    rows {"method", <eps label>: value} (one column per eps, CIFAR-10 eps as k/255). A table whose
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
            label = _eps_label(dataset)
            group = [r for r in rows if (r["dataset"], r["arch"]) == (dataset, arch)]
            wide[f"{dataset} {arch}"] = [{"method": method, **{label(r["eps"]): r[value] for r in group
                                                               if r["method"] == method}}
                                         for method in dict.fromkeys(r["method"] for r in group)]
        tables[part] = {"file": name, "value": value, "rows": rows, "wide": wide}
    if not tables:
        raise FileNotFoundError(f"{paths.display(out)}: no {' or '.join(f for f, _ in TABLE_FILES.values())} "
                                f"(write them with: {reproduce_command(out, True)})")
    return {"out": paths.display(out), "quick": quick, "mode": MODES[quick] if quick is not None else
            "unknown (no summary.json beside the tables)", "command": reproduce_command(out, bool(quick)),
            "settings": settings, "tables": tables}
