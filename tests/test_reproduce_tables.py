"""Reading back the tables of ``python -m interp_core reproduce`` (the Robustness page shows them)."""

from __future__ import annotations

import json
import math

import pytest

from interp_core import paths
from interp_core.evaluate.reproduce import load_reproduce_tables
from interp_core.io import rows_to_csv


def _write(path, rows):
    path.write_text(rows_to_csv(rows))


def test_reads_a_run_into_long_and_wide_tables(tmp_path):
    _write(tmp_path / "pgd_accuracy.csv",
           [{"dataset": "cifar10", "arch": "smallgap", "method": m, "eps": e, "accuracy": a, "retested": r, "steps": 7,
             "n": 3, "random_start": False}
            for m, e, a, r in (("normal", 0.0, 0.75, 0.75), ("normal", 8 / 255, 0.25, 0.0), ("int", 0.0, 0.5, 0.5))])
    (tmp_path / "summary.json").write_text(json.dumps({"settings": {"quick": False, "n": 3}}))
    result = load_reproduce_tables(tmp_path)
    assert set(result["tables"]) == {"pgd"}  # no aai_kendall.csv: that table is left out
    pgd = result["tables"]["pgd"]
    assert pgd["rows"][1]["eps"] == pytest.approx(8 / 255) and pgd["rows"][1]["steps"] == 7
    assert pgd["rows"][0]["random_start"] is False
    assert pgd["rows"][1]["retested"] == 0.0
    assert pgd["wide"]["cifar10 smallgap"] == [{"method": "normal", "0/255": "0.750 / 0.750", "8/255": "0.250 / 0.000"},
                                                {"method": "int", "0/255": "0.500 / 0.500"}]
    assert result["quick"] is False and "authors' protocol" in result["mode"]
    assert result["command"].startswith("python -m interp_core reproduce --out ")
    assert not result["command"].endswith("--quick")


def test_the_committed_quick_run_is_read_as_quick():
    out = paths.PROJECT_ROOT / "results" / "reproduce-quick"
    result = load_reproduce_tables(out)
    assert result["quick"] is True and result["command"].endswith(" --quick")
    assert set(result["tables"]) == {"pgd", "aai"}
    for table in result["tables"].values():
        assert table["rows"]
        for r in table["rows"]:  # tau is nan where AAI kept no prediction
            assert -1 <= r[table["value"]] <= 1 or (math.isnan(r[table["value"]]) and r.get("kept") == 0)
        assert sum(len(rows) for rows in table["wide"].values()) == len({(r["dataset"], r["arch"], r["method"])
                                                                        for r in table["rows"]})


def test_missing_or_foreign_tables_are_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="pgd_accuracy.csv"):
        load_reproduce_tables(tmp_path)
    _write(tmp_path / "aai_kendall.csv", [{"dataset": "mnist", "value": 1}])
    with pytest.raises(ValueError, match="missing columns"):
        load_reproduce_tables(tmp_path)


def test_a_stopped_run_resumes_network_by_network(tmp_path, paper_networks_dir, full_data, monkeypatch):
    """The PGD part keeps each finished network in partial/; a resumed run reads them back
    instead of attacking again (same rows, the earlier seconds counted), tolerates a line cut short
    by a kill, and refuses a folder written with other settings; a fresh run starts over."""
    from dataclasses import replace

    from interp_core.evaluate import reproduce as rp

    settings = replace(rp.QUICK, n=4, steps=2, methods={("mnist", "smallgap"): ("normal", "adv")})
    first = rp.pgd_tables(rp.Run(tmp_path, settings, "cpu", None))
    stored = (tmp_path / "partial" / "pgd.jsonl").read_text()
    assert len(stored.splitlines()) == 2 and first["unit_seconds"] >= 0
    rows = (tmp_path / "pgd_accuracy.csv").read_text()
    with open(tmp_path / "partial" / "pgd.jsonl", "a") as f:
        f.write('{"key": "mnist_smallgap_int_100", "seco')  # killed while writing
    monkeypatch.setattr(rp, "robust_accuracy", lambda *a, **k: pytest.fail("a finished network was attacked again"))
    again = rp.pgd_tables(rp.Run(tmp_path, settings, "cpu", None, resume=True))
    assert (tmp_path / "pgd_accuracy.csv").read_text() == rows
    assert again["unit_seconds"] == first["unit_seconds"]
    with pytest.raises(ValueError, match="other settings"):
        rp.Run(tmp_path, replace(settings, steps=3), "cpu", None, resume=True)
    rp.Run(tmp_path, settings, "cpu", None)  # not resumed: the finished networks are dropped
    assert not (tmp_path / "partial" / "pgd.jsonl").exists()
