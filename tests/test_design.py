"""The package's structure (docs/design.md): the library stays UI-free and quiet, its import graph
has no cycle, the core maths never imports the app's services or the CLI, and figures depend on
explore one way."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import interp_core

PACKAGE = Path(interp_core.__file__).parent
#: The core maths and its helpers: none of them may import the services or the CLI.
CORE = ("data", "models", "interpret", "metrics", "attacks", "training", "evaluate", "io", "paths", "runtime")


def _modules():
    return [p for p in PACKAGE.rglob("*.py") if "cli" not in p.relative_to(PACKAGE).parts and p.name != "__main__.py"]


def test_library_never_imports_streamlit_or_prints():
    for path in _modules():
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [a.name for a in node.names] + ([node.module] if isinstance(node, ast.ImportFrom) and node.module else [])
                assert not any(n.split(".")[0] == "streamlit" for n in names), path
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                assert node.func.id != "print", f"{path}:{node.lineno} prints"


def import_graph(package_dir: Path) -> dict[str, set[str]]:
    """module -> the package's modules it imports (at module level or inside functions), read with
    ``ast`` from every ``.py`` file below ``package_dir``. ``from pkg import name`` counts as an
    import of ``pkg.name`` where that is a module, else of ``pkg``; relative imports are resolved."""
    root = package_dir.parent
    files = {}
    for path in package_dir.rglob("*.py"):
        parts = list(path.relative_to(root).with_suffix("").parts)
        files[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path

    def known(name: str) -> str | None:
        while name and name not in files:
            name = name.rpartition(".")[0]
        return name or None

    graph = {}
    for module, path in files.items():
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        targets = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets |= {known(a.name) for a in node.names}
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
                    base = ".".join(anchor + ([node.module] if node.module else []))
                targets |= {known(f"{base}.{a.name}") if f"{base}.{a.name}" in files else known(base)
                            for a in node.names}
        graph[module] = {t for t in targets if t and t != module}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as [a, b, ..., a], or None."""
    state: dict[str, str] = {}
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = "open"
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                return path[path.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        path.pop()
        state[node] = "done"
        return None

    for start in sorted(graph):
        if start not in state:
            found = visit(start)
            if found:
                return found
    return None


def _layer_violations(graph: dict[str, set[str]]) -> list[str]:
    def inside(module: str, part: str) -> bool:
        return module == f"interp_core.{part}" or module.startswith(f"interp_core.{part}.")

    found = []
    for module, targets in graph.items():
        for target in targets:
            if any(inside(module, part) for part in CORE) and (inside(target, "services") or inside(target, "cli")):
                found.append(f"core module {module} imports {target}")
            if inside(module, "services") and inside(target, "cli"):
                found.append(f"service {module} imports the CLI ({target})")
            if module == "interp_core.services.explore" and target == "interp_core.services.figures":
                found.append("services.explore imports services.figures (figures depends on explore, not back)")
    return found


def test_the_package_has_no_import_cycle_and_keeps_its_layers():
    graph = import_graph(PACKAGE)
    assert {"interp_core.attacks.engine", "interp_core.services.figures", "interp_core.cli.train"} <= set(graph)
    assert "interp_core.services.explore" in graph["interp_core.services.figures"]  # the one allowed direction
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph))
    assert _layer_violations(graph) == []


def _fake_package(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / "pkg" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root / "pkg"


def test_the_checker_finds_an_added_cycle_and_a_layer_break(tmp_path):
    files = {"__init__.py": "", "a.py": "from pkg import b\n", "b.py": "def f():\n    from pkg.c import g\n",
             "c.py": "import os\n\ndef g():\n    pass\n", "sub/__init__.py": "", "sub/d.py": "from ..a import x\n"}
    clean = import_graph(_fake_package(tmp_path / "clean", files))
    assert clean["pkg.a"] == {"pkg.b"} and clean["pkg.b"] == {"pkg.c"} and clean["pkg.sub.d"] == {"pkg.a"}
    assert find_cycle(clean) is None
    cycle_back = {"c.py": "from . import sub\nfrom .sub.d import y\n"}  # c -> sub.d -> a -> b -> c
    cyclic = import_graph(_fake_package(tmp_path / "cyclic", {**files, **cycle_back}))
    assert find_cycle(cyclic) == ["pkg.a", "pkg.b", "pkg.c", "pkg.sub.d", "pkg.a"]

    broken = import_graph(PACKAGE)
    broken["interp_core.metrics"] = broken["interp_core.metrics"] | {"interp_core.services.jobs"}
    broken["interp_core.services.explore"] = broken["interp_core.services.explore"] | {"interp_core.services.figures"}
    assert find_cycle(broken) is not None  # figures imports explore: a new cycle
    assert len(_layer_violations(broken)) == 2


def test_the_public_api_is_importable_and_import_stays_light():
    code = ("import sys, interp_core; light = 'torch' not in sys.modules; "
            "missing = [n for n in interp_core.__all__ if getattr(interp_core, n, None) is None]; "
            "print(light, missing)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                          cwd=PACKAGE.parent)
    assert done.stdout.split() == ["True", "[]"], done.stdout + done.stderr
    for name in ("load_model", "load_dataset", "get_explainer", "discrepancy", "kendall_tau", "PGD", "ATTACKS",
                 "build_attack", "train", "make_config", "robust_accuracy", "aai_evaluation", "Attack"):
        assert name in interp_core.__all__
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        interp_core.nope  # noqa: B018


def test_pyproject_declares_the_requirements():
    """``pip install .`` installs what requirements.txt lists (runtime), the test extra the rest."""
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    project = tomllib.loads((PACKAGE.parent / "pyproject.toml").read_text())["project"]
    lines = [line.split("#")[0].strip() for line in (PACKAGE.parent / "requirements.txt").read_text().splitlines()]
    listed = [line for line in lines if line]
    declared = project["dependencies"] + project["optional-dependencies"]["test"]
    assert sorted(listed) == sorted(declared)
    assert not any(d.split(">")[0] in ("pytest", "playwright") for d in project["dependencies"])


def test_every_make_target_with_its_own_markers_keeps_the_default_exclusions():
    """A `-m` on the command line replaces pyproject's addopts filter; a Makefile target that sets
    its own markers must still leave out what the default run leaves out (gpu tests on a CPU
    machine), unless it selects one marker on purpose (test-slow)."""
    import re
    import tomllib

    addopts = tomllib.loads((PACKAGE.parent / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]["addopts"]
    default_out = set(re.findall(r"not (\w+)", addopts))
    assert "gpu" in default_out
    for target, expression in re.findall(r"^([\w-]+):.*\n\t.*pytest -m \"([^\"]+)\"", (PACKAGE.parent / "Makefile").read_text(),
                                         re.M):
        if " " in expression:  # a filter, not one marker selected on purpose
            assert default_out <= set(re.findall(r"not (\w+)", expression)), target


def test_per_dataset_knowledge_lives_in_the_dataset_records():
    """No module but the registry keeps a table keyed by dataset name (eps grids, AAI eps, budgets,
    default images, ...: ``interp_core.datasets.DatasetInfo``). Allowed: the training presets (a
    schedule per preset and dataset) and reproduce's names of the authors' files."""
    import re

    ROOT = PACKAGE.parent
    allowed = {ROOT / "interp_core" / "datasets.py", ROOT / "interp_core" / "training" / "schedules.py"}
    table = re.compile(r'\{\s*"(mnist|cifar10)"\s*:')
    found = []
    for folder in ("interp_core", "app_support", "pages"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            if path in allowed:
                continue
            for number, line in enumerate(path.read_text().splitlines(), 1):
                if table.search(line) and "NORMAL_SMALLGAP" not in line:
                    found.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not found, "per-dataset tables outside interp_core/datasets.py:\n" + "\n".join(found)


def test_the_explore_services_take_images_and_attack_as_records():
    """explore and start_comparison take the images (with labels, names, ids) as one
    ``ExploreImages`` and explore the attack with its goal as one ``ExploreAttack``: no loose
    parameter for any of their fields (explore took 13 parameters before)."""
    import dataclasses
    import inspect

    from interp_core.services.explore import ExploreAttack, ExploreImages, explore
    from interp_core.services.random_start import start_comparison

    loose = {f.name for f in dataclasses.fields(ExploreImages)} | {f.name for f in dataclasses.fields(ExploreAttack)}
    loose |= {"attack_info", "require_correct", "goal"}
    for function in (explore, start_comparison):
        params = set(inspect.signature(function).parameters)
        assert not params & (loose - {"attack"}), f"{function.__name__} takes {sorted(params & loose)} loose"
        assert len(params) <= 8, f"{function.__name__} takes {len(params)} parameters"
