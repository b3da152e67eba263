"""Evaluation functions and the `evaluate` / `reproduce` CLI: protocol records, JSON shapes,
gradient-masking flags, the paper subset."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from interp_core.cli import main
from interp_core.evaluate import (
    aai_evaluation,
    bound_evaluation,
    evaluation_set,
    isa_evaluation,
    robust_accuracy,
    zero_gradient_share,
)
from interp_core.metrics import accuracy


@pytest.fixture(autouse=True)
def one_thread(monkeypatch):
    """The CLI takes every core when alone; under the test suite it must stay on one."""
    monkeypatch.setenv("INTERP_CORE_THREADS", "1")


@pytest.fixture
def small(mnist_demo):
    return mnist_demo.images[:12], mnist_demo.labels[:12]


def test_paper_protocol_records_itself_and_accuracy_falls(mnist_normal, small):
    x, y = small
    result = robust_accuracy(mnist_normal, x, y, [0.0, 0.05, 0.2], steps=10, subset="demo")
    assert result.protocol["name"] == "paper"
    assert {"attack", "steps", "step_size", "random_start", "restarts"} <= set(result.protocol)
    assert (result.protocol["steps"], result.protocol["random_start"], result.protocol["restarts"]) == (10, False, 1)
    accs = [r["accuracy"] for r in result.results]
    assert accs[0] == pytest.approx(accuracy(mnist_normal, x, y))
    assert accs == sorted(accs, reverse=True) and accs[-1] < accs[0]
    assert result.n == 12 and result.subset == "demo"


def test_strong_protocol_is_at_least_as_strong(mnist_normal, small):
    x, y = small
    paper = robust_accuracy(mnist_normal, x, y, [0.05], steps=10)
    strong = robust_accuracy(mnist_normal, x, y, [0.05], "strong", steps=10, restarts=2, autoattack=False)
    row = strong.results[0]
    assert row["accuracy"] <= paper.results[0]["accuracy"]
    assert row["accuracy"] <= min(row["attacks"].values())
    assert set(row["attacks"]) == {"paper-pgd", "pgd-ce-restarts", "pgd-margin-restarts"}


def test_autoattack_runs_on_three_channel_inputs():
    from interp_core.data import load_dataset
    from interp_core.evaluate.robust import _AutoAttack
    from interp_core.models import load_model

    model, _ = load_model("cifar10-smallgap-normal-paper")
    data = load_dataset("cifar10", "demo", n=4)
    x_adv = _AutoAttack(2 / 255)(model, data.images, data.labels)
    assert x_adv.shape == data.images.shape
    assert (x_adv - data.images).abs().max() <= 2 / 255 + 1e-5
    assert accuracy(model, x_adv, data.labels) <= accuracy(model, data.images, data.labels)


class _Rounded(nn.Module):
    """Gradient masking by construction: rounding the input has a zero gradient everywhere."""

    def __init__(self, base):
        super().__init__()
        self.base = base

    def forward(self, x):
        return self.base(torch.round(x * 4) / 4)


def test_vanishing_gradients_are_flagged(mnist_normal, small):
    x, y = small
    masked = _Rounded(mnist_normal)
    assert zero_gradient_share(masked, x, y) == 1.0
    result = robust_accuracy(masked, x, y, [0.0, 0.1], steps=3)
    assert any("vanishing gradients" in w for w in result.warnings)
    assert not robust_accuracy(mnist_normal, x, y, [0.0, 0.1], steps=3).warnings


def test_aai_evaluation(mnist_normal, small):
    x, y = small
    result = aai_evaluation(mnist_normal, x, y, [0.02, 0.1], steps=10)
    assert result["protocol"]["attack"] == "aai" and result["protocol"]["k"] == 8
    for row in result["results"]:
        assert 0 <= row["kept"] <= len(y)
        if row["kept"]:
            assert -1 <= row["kendall_tau"] <= 1 and 0 <= row["topk_intersection"] <= 1
    weak, strong = result["results"]
    assert strong["kept"] == 0 or weak["kendall_tau"] > strong["kendall_tau"]


def test_bound_evaluation_has_no_violations(mnist_normal, small):
    x, y = small
    result = bound_evaluation(mnist_normal, x, y, rounds=6)
    assert result["violations"] == 0 and len(result["points"]) >= 8
    assert all(p["d2"] >= p["half_margin"] for p in result["points"])


def test_isa_evaluation_summary(mnist_normal, small):
    x, y = small
    result = isa_evaluation(mnist_normal, x[:2], y[:2], ("1class",), multipliers=(1.0, 2.0), rounds=4)
    (curve,) = result["curves"]
    assert curve["measure"] == "1class" and len(curve["summary"]) == 2
    for p in curve["points"]:
        assert p["envelope_range"] <= p["range"] and p["linf"] <= p["eps"] + 1e-6


def _run_json(capsys, argv):
    assert main(argv + ["--json"]) == 0
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


COMMON = ["--model", "mnist-smallgap-normal-paper", "--dataset", "mnist", "--split", "demo"]


def test_cli_robust_json_shape(capsys, tmp_path):
    out = _run_json(capsys, ["evaluate", "robust", *COMMON, "--n", "6", "--steps", "3", "--eps", "0,0.1",
                             "--out", str(tmp_path)])
    assert out["n"] == 6 and out["protocol"]["name"] == "paper"
    assert [set(r) for r in out["results"]] == [{"eps", "accuracy"}] * 2
    assert out["results"][1]["eps"] == 0.1
    assert json.loads((tmp_path / "robust_mnist-smallgap-normal-paper.json").read_text())["n"] == 6


def test_cli_bound_json_shape(capsys):
    out = _run_json(capsys, ["evaluate", "bound", *COMMON, "--n", "5", "--rounds", "5"])
    assert out["n"] == 5 and out["violations"] == 0 and out["points"]
    assert all({"half_margin", "d2"} <= set(p) and p["d2"] >= p["half_margin"] for p in out["points"])


def test_cli_aai_and_isa_json_shapes(capsys):
    aai = _run_json(capsys, ["evaluate", "aai", *COMMON, "--n", "4", "--steps", "3", "--eps", "0.1"])
    assert aai["n"] == 4 and set(aai["results"][0]) == {"eps", "kendall_tau", "topk_intersection", "kept"}
    isa = _run_json(capsys, ["evaluate", "isa", *COMMON, "--n", "2", "--multipliers", "1,2", "--rounds", "3",
                             "--measures", "2class"])
    assert isa["n"] == 2 and [c["measure"] for c in isa["curves"]] == ["2class"]


def test_cli_eps_fractions_and_errors(capsys):
    out = _run_json(capsys, ["evaluate", "robust", *COMMON, "--n", "2", "--steps", "1", "--eps", "2/255"])
    assert out["results"][0]["eps"] == pytest.approx(2 / 255)
    assert main(["evaluate", "robust", *COMMON, "--n", "2", "--eps", "3"]) == 2
    assert "0-255" in capsys.readouterr().err


@pytest.mark.shared
def test_paper_subset_is_the_seed_99_permutation_and_the_demo_copy(full_data):
    from interp_core.data import load_dataset, paper_subset

    data, what = evaluation_set("mnist", "test", n=200)
    full = load_dataset("mnist", "test")
    index = np.random.RandomState(99).permutation(10000)[:200]
    assert np.array_equal(paper_subset(200, 10000), index)
    assert torch.equal(data.images, full.images[index]) and "seed-99" in what
    demo, _ = evaluation_set("mnist", "demo", n=200)
    assert torch.equal(demo.images, data.images) and torch.equal(demo.labels, data.labels)


@pytest.mark.shared
def test_reproduce_bound_part_writes_its_files(paper_networks_dir, full_data, tmp_path, capsys):
    out = _run_json(capsys, ["reproduce", "--out", str(tmp_path), "--quick", "--parts", "bound"])
    assert set(out["parts"]) == {"bound"} and out["parts"]["bound"]["seconds"] > 0
    for name in ("bound.csv", "bound.md", "bound.html", "README.md", "summary.json"):
        assert (tmp_path / name).is_file()
    assert "| 0 |" in (tmp_path / "bound.md").read_text()  # zero violations per network
