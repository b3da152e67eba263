"""Evaluation functions and the `evaluate` / `reproduce` CLI: protocol records, JSON shapes,
gradient-masking flags, the paper subset."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch
from torch import nn

from interp_core.attacks import PaperProtocol, pgd
from interp_core.cli import main
from interp_core.evaluate import (
    MASKING_SIGNS,
    AAIResult,
    BoundResult,
    ISAResult,
    aai_evaluation,
    bound_evaluation,
    evaluation_set,
    isa_evaluation,
    robust_accuracy,
    zero_gradient_share,
)
from interp_core.attacks import AAI
from interp_core.interpret import get_explainer
from interp_core.metrics import accuracy, correct, kendall_tau, topk_intersection


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


def test_paper_protocol_over_all_eps_at_once_matches_one_eps_at_a_time(mnist_normal, small):
    """The stacked pass (every eps in one batch of rows, batches crossing eps boundaries) gives,
    image by image, what the authors' PGD gives run on one eps at a time; a clean error (a wrong
    label) fails at every eps, eps 0 included."""
    x, y = small
    y = y.clone()
    y[3] = (y[3] + 1) % 10
    eps = [0.0, 0.03, 0.05, 0.1]
    result = robust_accuracy(mnist_normal, x, y, eps, steps=10, batch_size=7)
    with torch.no_grad():
        clean = correct(mnist_normal(x), y)
    assert not clean[3] and clean.sum() == 11
    for value, flags in zip(eps, result.per_image):
        x_adv = PaperProtocol(steps=10).attack(value)(mnist_normal, x, y)
        with torch.no_grad():
            expected = clean & correct(mnist_normal(x_adv), y)
        assert flags == expected.tolist()
    assert 0 < sum(result.per_image[2]) < 11  # the comparison is not between two trivial answers


def test_strong_protocol_stops_early_and_is_at_least_as_strong(mnist_normal, small):
    """Early stop (any iterate counts, later attacks only on what stands) is at least as strong as
    running every attack on every image to its final iterate, for less work."""
    x, y = small
    eps, steps, restarts = [0.05, 0.1], 10, 2
    rows = []  # image-steps: rows of the forward passes autograd records
    mnist_normal.register_forward_pre_hook(lambda m, inputs: rows.append(len(inputs[0]))
                                           if torch.is_grad_enabled() else None)
    strong = robust_accuracy(mnist_normal, x, y, [0.0, *eps], "strong", steps=steps, restarts=restarts,
                             autoattack=False)
    early_steps = sum(rows)  # the masking checks' passes included
    rows.clear()
    with torch.no_grad():
        clean = correct(mnist_normal(x), y)
    for value, row in zip(eps, strong.results[1:]):
        robust = clean.clone()
        for attack in (PaperProtocol(steps=steps).attack(value), pgd(value, steps, restarts=restarts, seed=0),
                       pgd(value, steps, restarts=restarts, seed=0, objective="margin")):
            with torch.no_grad():
                robust &= correct(mnist_normal(attack(mnist_normal, x, y)), y)
        assert row["accuracy"] <= float(robust.float().mean())
        assert list(row["attacks"]) == ["paper-pgd", "pgd-ce-restarts", "pgd-margin-restarts"]
        values = list(row["attacks"].values())
        assert values == sorted(values, reverse=True) and values[-1] == row["accuracy"]
    assert 0 < strong.results[1]["accuracy"]
    assert early_steps < sum(rows)  # the exhaustive runs' image-steps
    assert strong.protocol["name"] == "strong" and "early_stop" in strong.protocol


def test_a_retest_without_torchattacks_says_what_to_install(monkeypatch, tiny_cifar_model):
    """torchattacks is installed apart from the requirements; its absence is one clear sentence."""
    import sys

    from interp_core.evaluate.robust import _TorchAttack

    monkeypatch.setitem(sys.modules, "torchattacks", None)  # import fails as if not installed
    x, y = torch.rand(2, 3, 32, 32), torch.tensor([0, 1])
    with pytest.raises(ImportError, match=r"Square .*needs torchattacks: pip install --no-deps"):
        _TorchAttack("Square", 2 / 255, n_queries=5)(tiny_cifar_model, x, y)


def test_autoattack_runs_on_three_channel_inputs_and_keeps_the_random_state():
    from interp_core.data import load_dataset
    from interp_core.evaluate.robust import _TorchAttack
    from interp_core.models import load_model

    model, _ = load_model("cifar10-smallgap-normal-paper")
    data = load_dataset("cifar10", "demo", n=4)
    rng = torch.get_rng_state()
    x_adv = _TorchAttack("AutoAttack", 2 / 255, version="standard", seed=0)(model, data.images, data.labels)
    assert torch.equal(torch.get_rng_state(), rng)  # torchattacks reseeds torch; the caller's state is kept
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


class _Detour(nn.Module):
    """Misclassifies on the way out: the logits depend only on s = mean(x) - 0.5. Class 0 wins at
    s = 0 and for 0.15 < s < 0.3, class 1 for 0.05 < s < 0.15, and class 0's cross-entropy rises
    with s throughout, so signed PGD from a grey image raises s by its step size per step: through
    the misclassified band and out of it. Accuracy is 0 at eps 0.1 and 1 at eps 0.2."""

    def forward(self, x):
        s = x.flatten(1).mean(1) - 0.5
        others = (5 * (s - 0.3))[:, None].expand(-1, 18)
        return torch.cat([torch.zeros_like(s)[:, None], (0.5 - 10 * (s - 0.1).abs())[:, None], others], 1)


def test_masking_signs_fire_on_models_built_for_them(mnist_normal, small):
    x, y = small
    masked = _Rounded(mnist_normal)
    assert zero_gradient_share(masked, x, y) == 1.0
    result = robust_accuracy(masked, x, y, [0.0, 0.3], steps=10)
    assert {"vanishing-gradients", "unbounded-survives", "black-box-wins"} <= set(result.masking_signs)
    assert set(result.masking_signs) <= set(MASKING_SIGNS)
    for name in result.masking_signs:
        assert any(w.startswith(f"{name}: ") for w in result.warnings)

    grey, label = torch.full((4, 1, 28, 28), 0.5), torch.zeros(4, dtype=torch.long)
    detour = robust_accuracy(_Detour(), grey, label, [0.0, 0.1, 0.2], steps=40)
    assert [r["accuracy"] for r in detour.results] == [1.0, 0.0, 1.0]
    rises = [w for w in detour.warnings if w.startswith("accuracy-rises: ")]
    assert "accuracy-rises" in detour.masking_signs and len(rises) == 2  # with eps, and with steps (10 vs 40)
    assert not {"vanishing-gradients", "unbounded-survives"} & set(detour.masking_signs)


def test_a_normal_model_shows_no_masking_sign(mnist_normal, small):
    x, y = small
    for protocol in ("paper", "strong"):
        result = robust_accuracy(mnist_normal, x, y, [0.0, 0.05, 0.1], protocol, steps=20, restarts=1,
                                 autoattack=False)
        assert result.masking_signs == [] and result.warnings == []


def test_aai_evaluation(mnist_normal, small):
    x, y = small
    result = aai_evaluation(mnist_normal, x, y, [0.02, 0.1], steps=10, batch_size=5)
    assert result.protocol["attack"] == "aai" and result.protocol["k"] == 8
    cam = get_explainer("cam")
    for row in result.results:  # the same numbers, computed directly (the attack seeded per batch of 5)
        x_adv = torch.cat([AAI(row["eps"], steps=10)(mnist_normal, x[i:i + 5], y[i:i + 5]) for i in (0, 5, 10)])
        with torch.no_grad():
            kept = mnist_normal(x_adv).argmax(1) == mnist_normal(x).argmax(1)
        clean, adv = cam(mnist_normal, x, y), cam(mnist_normal, x_adv, y)
        assert row["kept"] == int(kept.sum()) > 0
        assert row["kendall_tau"] == pytest.approx(kendall_tau(clean, adv)[kept].mean().item(), abs=1e-6)
        assert row["topk_intersection"] == pytest.approx(topk_intersection(clean, adv, 8)[kept].mean().item(), abs=1e-6)
    weak, strong = result.results
    assert weak["kendall_tau"] > strong["kendall_tau"] and weak["topk_intersection"] > strong["topk_intersection"]


def test_bound_evaluation_has_no_violations(mnist_normal, small):
    x, y = small
    result = bound_evaluation(mnist_normal, x, y, rounds=6)
    assert result.violations == 0 and len(result.points) >= 8
    assert all(p["d2"] >= p["half_margin"] for p in result.points)


def test_isa_evaluation_summary(mnist_normal, small):
    x, y = small
    result = isa_evaluation(mnist_normal, x[:2], y[:2], ("1class",), multipliers=(1.0, 2.0), rounds=4)
    (curve,) = result.curves
    assert curve["measure"] == "1class" and len(curve["summary"]) == 2
    for p in curve["points"]:
        assert p["envelope_range"] <= p["range"] and p["linf"] <= p["eps"] + 1e-6


def test_aai_evaluation_returns_its_record(mnist_normal, small):
    """An ``AAIResult`` whose ``to_dict()`` has the keys (in order) the JSON writers always stored."""
    x, y = small
    result = aai_evaluation(mnist_normal, x[:3], y[:3], [0.1], steps=2, subset="demo")
    assert isinstance(result, AAIResult) and result.n == 3 and result.subset == "demo" and result.seconds > 0
    assert [set(r) for r in result.results] == [{"eps", "kendall_tau", "topk_intersection", "kept"}]
    assert list(result.to_dict()) == ["protocol", "n", "subset", "results", "seconds"]
    assert json.loads(json.dumps(result.to_dict())) == result.to_dict()


def test_bound_evaluation_returns_its_record(mnist_normal, small):
    x, y = small
    result = bound_evaluation(mnist_normal, x[:3], y[:3], rounds=2, steps=2, subset="demo")
    assert isinstance(result, BoundResult) and result.n == 3 and result.attempted <= 3
    assert all(set(p) == {"index", "target", "eps", "half_margin", "d2"} for p in result.points)
    assert list(result.to_dict()) == ["protocol", "n", "subset", "attempted", "violations", "points", "seconds"]


def test_isa_evaluation_returns_its_record_and_reads_it_back(mnist_normal, small):
    x, y = small
    result = isa_evaluation(mnist_normal, x[:1], y[:1], ("1class",), multipliers=(2.0,), rounds=3)
    assert isinstance(result, ISAResult) and result.n == 1
    assert set(result.images[0]) == {"image", "label", "target"}
    assert {"measure", "eps_min", "bound", "skipped", "points", "summary"} == set(result.curves[0])
    assert result.curves[0]["points"]
    assert list(result.to_dict()) == ["protocol", "n", "subset", "images", "curves", "seconds"]
    stored = json.dumps(result.to_dict())  # as reproduce keeps it; NaN != NaN, so the JSON is compared
    assert json.dumps(ISAResult.from_dict(json.loads(stored)).to_dict()) == stored


def _run_json(capsys, argv):
    assert main(argv + ["--json"]) == 0
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


COMMON = ["--model", "mnist-smallgap-normal-paper", "--dataset", "mnist", "--split", "demo"]


def test_cli_robust_json_shape(capsys, tmp_path):
    out = _run_json(capsys, ["evaluate", "robust", *COMMON, "--n", "6", "--steps", "3", "--eps", "0,0.1",
                             "--out", str(tmp_path)])
    assert out["n"] == 6 and out["protocol"]["name"] == "paper" and out["protocol"]["retest"]["name"] == "full"
    assert [set(r) for r in out["results"]] == [{"eps", "accuracy", "retested"},
                                                {"eps", "accuracy", "retested", "retest_attacks"}]
    assert isinstance(out["contradicted"], list)
    assert len(out["per_image"]) == 2 and all(len(flags) == 6 for flags in out["per_image"])
    assert isinstance(out["masking_signs"], list)
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


def _int2_project():
    from interp_core.models import load_model

    return load_model("mnist-smallgap-int2-project", "cpu")[0]


def test_the_retest_contradicts_the_large_eps_accuracy_of_the_int2_card(mnist_demo):
    """The project's Int2 network keeps its label at eps 0.4 under the authors' PGD (no random start)
    on most of these images; the re-test (random starts, Square) breaks them, and says so."""
    x, y = mnist_demo.images[:10], mnist_demo.labels[:10]
    result = robust_accuracy(_int2_project(), x, y, [0.0, 0.4], steps=50, retest="quick")
    clean, large = result.results
    assert clean["retested"] == clean["accuracy"]
    assert large["accuracy"] >= 0.5 and large["retested"] <= 0.1
    assert result.contradictions() == [large]
    left = list(large["retest_attacks"].values())
    assert list(large["retest_attacks"]) == ["pgd-ce-restarts", "pgd-margin-restarts", "square"]
    assert left == sorted(left, reverse=True) and left[-1] == large["retested"] <= large["accuracy"]
    assert result.protocol["retest"]["attacks"][-1] == "square 500 queries (torchattacks)"


def test_a_retest_that_finds_nothing_contradicts_nothing(mnist_normal, small):
    x, y = small
    result = robust_accuracy(mnist_normal, x, y, [0.0, 0.001], steps=5, retest="quick")
    assert result.contradictions() == [] and result.results[1]["retested"] == result.results[1]["accuracy"]


def test_a_retest_needs_the_paper_protocol_and_a_known_name(mnist_normal, small):
    x, y = small
    with pytest.raises(ValueError, match="retest"):
        robust_accuracy(mnist_normal, x, y, [0.1], "strong", retest="quick")
    with pytest.raises(ValueError, match="retest"):
        robust_accuracy(mnist_normal, x, y, [0.1], retest="thorough")


def test_cli_robust_prints_reported_and_retested_columns_and_the_contradiction(capsys):
    argv = ["evaluate", "robust", "--model", "mnist-smallgap-int2-project", "--dataset", "mnist", "--split", "demo",
            "--n", "10", "--steps", "50", "--eps", "0,0.4", "--retest", "quick"]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert re.search(r"eps\s+reported\s+re-tested", text)
    reported, retested = map(float, re.search(r"\n\s+0\.4\s+([0-9.]+)\s+([0-9.]+)", text).groups())
    assert reported >= 0.5 and retested <= 0.1
    assert "contradicted: at eps 0.4" in text
