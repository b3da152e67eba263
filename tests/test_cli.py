import json
import subprocess
import sys

import pytest

from interp_core.cli import main
from interp_core.data import load_dataset
from interp_core.metrics import accuracy
from interp_core.models import load_model


def _json_line(capsys):
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_accuracy_json_matches_the_library(capsys):
    assert main(["accuracy", "--model", "mnist-smallgap-pgd-at-paper", "--dataset", "mnist", "--split", "demo",
                 "--n", "120", "--json", "--device", "cpu"]) == 0
    result = _json_line(capsys)
    demo = load_dataset("mnist", "demo", n=120)
    model, _ = load_model("mnist-smallgap-pgd-at-paper")
    assert result["n"] == 120 and result["accuracy"] == pytest.approx(accuracy(model, demo.images, demo.labels))


def test_models_lists_shipped_checkpoints(capsys):
    assert main(["models", "--json", "--dataset", "cifar10"]) == 0
    rows = {r["name"]: r for r in _json_line(capsys)["models"]}
    assert rows["cifar10-smallgap-int-paper"]["source"] == "paper"
    assert all(r["dataset"] == "cifar10" for r in rows.values())


def test_errors_are_one_clear_line(capsys, tmp_path):
    assert main(["accuracy", "--model", "nope", "--dataset", "mnist", "--split", "demo"]) == 2
    assert "no model named 'nope'" in capsys.readouterr().err
    assert main(["accuracy", "--model", "cifar10-smallgap-normal-paper", "--dataset", "mnist", "--split", "demo"]) == 2
    assert "trained on cifar10" in capsys.readouterr().err
    bad = tmp_path / "x.safetensors"
    bad.write_bytes(b"junk")
    assert main(["accuracy", "--model", str(bad), "--dataset", "mnist", "--split", "demo"]) == 2
    assert "not a safetensors file" in capsys.readouterr().err


def test_module_entry_point_runs():
    out = subprocess.run([sys.executable, "-m", "interp_core", "models"], capture_output=True, text=True, check=True)
    assert "mnist-smallgap-normal-paper" in out.stdout


def _keys(value) -> set[str]:
    """Every dict key anywhere in a JSON value."""
    if isinstance(value, dict):
        return set(value) | {k for v in value.values() for k in _keys(v)}
    if isinstance(value, list):
        return {k for v in value for k in _keys(v)}
    return set()


def test_isa_help_names_only_keys_its_json_has(capsys):
    """`evaluate isa --help` documents the JSON it prints: every quoted key is in a real result."""
    import re

    with pytest.raises(SystemExit):
        main(["evaluate", "isa", "--help"])
    documented = set(re.findall(r'"(\w+)"', capsys.readouterr().out))
    assert main(["evaluate", "isa", "--model", "mnist-smallgap-normal-paper", "--dataset", "mnist", "--split", "demo",
                 "--subset", "first", "--n", "1", "--targets", "runner-up", "--multipliers", "1,2", "--rounds", "2",
                 "--measures", "1class",
                 "--json", "--device", "cpu"]) == 0
    returned = _keys(_json_line(capsys))
    assert documented and documented <= returned, documented - returned
