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
           [{"dataset": "cifar10", "arch": "smallgap", "method": m, "eps": e, "accuracy": a, "steps": 7, "n": 3,
             "random_start": False}
            for m, e, a in (("normal", 0.0, 0.75), ("normal", 8 / 255, 0.25), ("int", 0.0, 0.5))])
    (tmp_path / "summary.json").write_text(json.dumps({"settings": {"quick": False, "n": 3}}))
    result = load_reproduce_tables(tmp_path)
    assert set(result["tables"]) == {"pgd"}  # no aai_kendall.csv: that table is left out
    pgd = result["tables"]["pgd"]
    assert pgd["rows"][1]["eps"] == pytest.approx(8 / 255) and pgd["rows"][1]["steps"] == 7
    assert pgd["rows"][0]["random_start"] is False
    assert pgd["wide"]["cifar10 smallgap"] == [{"method": "normal", "0/255": 0.75, "8/255": 0.25},
                                                {"method": "int", "0/255": 0.5}]
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
