"""interp_core.parallel and ``reproduce --workers``: the serial path, the errors when Ray cannot
run, and (integration) a local Ray of two workers that writes the serial run's tables and resumes
after being stopped."""

from __future__ import annotations

import json
import operator
import subprocess
import sys
from dataclasses import replace

import pytest

from interp_core import paths
from interp_core.cli import main
from interp_core.parallel import RayUnavailable, run_tasks


def test_serial_tasks_run_in_order_in_this_process_without_ray():
    script = ("import operator, sys\n"
              "from interp_core.parallel import run_tasks\n"
              "from interp_core.evaluate import reproduce\n"
              "got = []\n"
              "run_tasks([(operator.add, (1, 2)), (operator.mul, (3, 4))], lambda *a: got.append(a))\n"
              "print(got)\n"
              "print('ray' in sys.modules)\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                          cwd=paths.PROJECT_ROOT, check=True)
    results, imported = done.stdout.splitlines()
    assert results == "[(0, 3, 0.0), (1, 12, 0.0)]" and imported == "False"


def test_workers_below_one_are_refused():
    with pytest.raises(ValueError, match="at least 1"):
        run_tasks([(operator.add, (1, 2))], print, workers=0)


def test_without_ray_installed_the_error_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    with pytest.raises(RayUnavailable, match="pip install ray"):
        run_tasks([(operator.add, (1, 2))], print, workers=2)


def test_an_unreachable_or_malformed_address_fails_at_once():
    pytest.importorskip("ray")
    with pytest.raises(RayUnavailable, match="cannot reach the Ray cluster at '127.0.0.1:1'"):
        run_tasks([(operator.add, (1, 2))], print, address="127.0.0.1:1")
    with pytest.raises(RayUnavailable, match="host:port"):
        run_tasks([(operator.add, (1, 2))], print, address="somewhere")


def test_cli_refuses_workers_with_an_address(tmp_path, capsys):
    assert main(["reproduce", "--out", str(tmp_path), "--workers", "2", "--address", "auto"]) == 2
    assert "--workers sizes a local Ray" in capsys.readouterr().err


class Stopped(Exception):
    """Stands for a kill of the driver while units are in flight."""


@pytest.mark.integration
@pytest.mark.shared
def test_two_ray_workers_write_the_serial_tables_and_resume_after_a_stop(paper_networks_dir, full_data, tmp_path,
                                                                          monkeypatch):
    """A tiny quick run: one after another, then on a local Ray of two workers stopped when its
    first unit arrives, then resumed on two workers. Every CSV and markdown file of the parts is
    byte-identical to the serial run's, and the unit that arrived before the stop is not measured
    again."""
    ray = pytest.importorskip("ray")
    from interp_core.evaluate import reproduce as rp

    monkeypatch.setattr(rp, "QUICK", replace(rp.QUICK, n=4, steps=2, aai_steps=2, bound_n=4, rounds=2, uar_n=2,
                                             uar_steps=2, methods={("mnist", "smallgap"): ("normal",)},
                                             uar_methods={("cifar10", "smallgap"): ("normal",)}))
    parts = ("pgd", "aai", "bound", "uar")
    serial = rp.reproduce(tmp_path / "serial", quick=True, parts=parts)

    def stop_at_first_arrival(part: str, done: int, total: int) -> None:
        if done:
            raise Stopped(part)

    with pytest.raises(Stopped):
        rp.reproduce(tmp_path / "ray", quick=True, parts=parts, progress=stop_at_first_arrival, workers=2)
    assert not ray.is_initialized()  # shut down on the way out
    first = [json.loads(line)["key"] for f in (tmp_path / "ray" / "partial").glob("*.jsonl")
             for line in f.read_text().splitlines()]
    assert len(first) == 1

    resumed = rp.reproduce(tmp_path / "ray", quick=True, parts=parts, resume=True, workers=2)
    keys = [(f.stem, json.loads(line)["key"]) for f in (tmp_path / "ray" / "partial").glob("*.jsonl")
            for line in f.read_text().splitlines()]
    assert len(keys) == len(set(keys)) == 5  # pgd, aai, uar: one network each; bound: two
    files = [f for p in serial["parts"].values() for f in p["files"] if f.endswith((".csv", ".md"))]
    assert len(files) == 8 and files == [f for p in resumed["parts"].values() for f in p["files"]
                                         if f.endswith((".csv", ".md"))]
    for name in files:
        assert (tmp_path / "ray" / name).read_bytes() == (tmp_path / "serial" / name).read_bytes(), name
    assert resumed["workers"] == 2 and "on 2 local Ray workers" in (tmp_path / "ray" / "README.md").read_text()
