"""interp_core.services.explore: what the Explore page shows, checked against the metrics computed directly."""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import pytest
import torch
from PIL import Image

from interp_core import paths
from interp_core.attacks import ATTACKS, PGD
from interp_core.data import load_dataset
from interp_core.datasets import DATASETS
from interp_core.models import available_models, load_model
from interp_core.services.explore import (METRIC_DEFINITIONS, PERTURBATION_FLOOR, CleanMapCache, ExploreAttack,
                                          ExploreImages, MisclassifiedImage, attack_settings, bound_readout,
                                          eps_found_readout, explore, goal_readout, metrics_rows,
                                          perturbation_readout, settings_line, to_csv, to_json, to_npz)
from interp_core.services.figures import to_png
from interp_core.interpret import explain_classes, get_explainer
from interp_core.metrics import discrepancy, kendall_tau, two_class_bound

EXPLAINERS = ["cam", "gradcampp", "saliency"]


def pgd_fn(eps: float, steps: int = 10) -> PGD:
    """The engine's PGD, an ``interp_core.attacks.Attack`` as explore takes it."""
    return PGD(eps, 0.01, steps)


class Stepping:
    """A stand-in attack (the ``Attack`` protocol) that walks x along a fixed sign pattern and
    reports every iterate, to check how explore records a trajectory."""

    targeted = False

    def __init__(self, steps: int, size: float = 0.02):
        self.steps, self.size = steps, size

    def __call__(self, model, x, y, target=None, *, callback=None):
        direction = torch.sign(torch.randn(x.shape, generator=torch.Generator().manual_seed(0)))
        x_k = x
        callback(0, x_k)
        for k in range(1, self.steps + 1):
            x_k = (x + k * self.size * direction).clamp(0, 1)
            callback(k, x_k)
        return x_k


@pytest.fixture
def result(mnist_normal, mnist_demo):
    x, y = mnist_demo.images[:3], mnist_demo.labels[:3]
    return explore({"normal": mnist_normal}, ExploreImages(x, y, mnist_demo.class_names),
                   ExploreAttack(pgd_fn(0.2), {"name": "pgd"}), EXPLAINERS, trajectory_explainer=None)


def test_metrics_match_the_library(result, mnist_normal, mnist_demo):
    x, y = mnist_demo.images[:3], mnist_demo.labels[:3]
    m = result.models[0]
    x_adv = torch.from_numpy(m.x_adv)
    t = torch.from_numpy(m.target)
    # t is the class the untargeted attack pushed toward: the best wrong class at x'
    logits = mnist_normal(x_adv).detach()
    assert torch.equal(t, logits.scatter(1, y[:, None], float("-inf")).argmax(1))
    cam = get_explainer("cam")
    classes = torch.stack([y, t], 1)
    clean, adv = explain_classes(cam, mnist_normal, x, classes), explain_classes(cam, mnist_normal, x_adv, classes)
    zeros, ones = torch.zeros(3, dtype=torch.long), torch.ones(3, dtype=torch.long)
    got = m.maps["cam"].metrics
    np.testing.assert_allclose(got["D2 range"], discrepancy(clean, adv, zeros, ones, normalization="range"), rtol=1e-5)
    np.testing.assert_allclose(got["D1 raw"], discrepancy(clean, adv, zeros, measure="1class"), rtol=1e-5)
    np.testing.assert_allclose(got["Kendall tau"], kendall_tau(clean[:, :1], adv[:, :1]), rtol=1e-5)
    np.testing.assert_allclose(m.bound, two_class_bound(mnist_normal(x).detach(), y, t), rtol=1e-5)
    np.testing.assert_allclose(m.maps["cam"].clean, clean.numpy(), rtol=1e-5, atol=1e-6)
    assert set(got) == set(METRIC_DEFINITIONS)


def test_bound_holds_where_the_target_wins(result):
    """docs/method.md#bound: D2 of CAM/(h*w) >= (Z_y - Z_t)/2 whenever t beats y at x'."""
    m = result.models[0]
    assert m.bound_applies.any(), "eps 0.2 PGD should flip at least one of three MNIST digits"
    assert (m.d2_cam_hw[m.bound_applies] >= m.bound[m.bound_applies] - 1e-4).all()


def test_shapes_and_perturbation(result):
    m = result.models[0]
    assert m.x_adv.shape == result.x.shape == (3, 1, 28, 28)
    assert m.maps["cam"].clean.shape == (3, 2, 7, 7) and m.maps["cam"].clean_up.shape == (3, 2, 28, 28)
    assert m.maps["saliency"].clean.shape == (3, 2, 28, 28)
    assert (m.linf <= 0.2 + 1e-6).all()
    assert m.perturbation.min() >= 0 and m.perturbation.max() <= 1


def test_trajectory_records_every_step(mnist_normal, mnist_demo):
    x, y = mnist_demo.images[:2], mnist_demo.labels[:2]
    res = explore({"normal": mnist_normal}, ExploreImages(x, y), ExploreAttack(Stepping(5)), ["cam", "saliency"],
                  trajectory_explainer="cam")
    traj, m = res.models[0].trajectory, res.models[0]
    assert traj.x.shape == (6, 2, 1, 28, 28) and traj.maps.shape == (6, 2, 2, 7, 7)
    np.testing.assert_allclose(traj.x[0], res.x, atol=1e-7)
    np.testing.assert_allclose(traj.x[-1], m.x_adv, atol=1e-7)
    np.testing.assert_allclose(traj.maps[0], m.maps["cam"].clean, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(traj.maps[-1], m.maps["cam"].adv, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(traj.d2[-1], m.maps["cam"].metrics["D2 raw"], rtol=1e-4)
    assert (traj.d1[0] == 0).all() and (np.diff(traj.d1, axis=0) != 0).any()
    np.testing.assert_array_equal(traj.pred[-1], m.adv_pred)


def test_no_trajectory_when_not_asked(result):
    assert result.models[0].trajectory is None  # trajectory_explainer=None records none


def test_zero_eps_changes_nothing(mnist_normal, mnist_demo):
    res = explore({"normal": mnist_normal}, ExploreImages(mnist_demo.images[:2], mnist_demo.labels[:2],
                                                          mnist_demo.class_names), ExploreAttack(pgd_fn(0.0)), ["cam"])
    metrics = res.models[0].maps["cam"].metrics
    assert np.all(metrics["D1 raw"] == 0) and np.all(metrics["D2 range"] == 0)
    np.testing.assert_allclose(metrics["Kendall tau"], 1.0)
    np.testing.assert_allclose(metrics["top-8 ∩"], 1.0)


def test_unlabelled_image_uses_the_clean_prediction(mnist_normal, mnist_demo):
    x = mnist_demo.images[:1]
    res = explore({"a": mnist_normal}, ExploreImages(x), ExploreAttack(pgd_fn(0.1, 3)), ["cam"])
    assert res.models[0].y[0] == mnist_normal(x).argmax(1).item()


def test_several_models_and_cifar(tiny_cifar_model):
    from interp_core.data import load_dataset

    data = load_dataset("cifar10", "demo", n=1)
    other = type(tiny_cifar_model)(3, 10).eval()
    res = explore({"a": tiny_cifar_model, "b": other}, ExploreImages(data.images, data.labels, data.class_names),
                  ExploreAttack(pgd_fn(8 / 255, 3)), ["cam", "ig"])
    assert [m.model for m in res.models] == ["a", "b"]
    assert res.models[0].maps["cam"].clean.shape == (1, 2, 8, 8)
    assert res.models[1].maps["ig"].clean.shape == (1, 2, 32, 32)


def test_clean_maps_are_kept_across_attacks_but_not_shared_across_models_or_images(mnist_normal, mnist_demo):
    """A second attack on the same image and model takes every clean map from the cache; another
    model or another image computes its own, and every clean map equals an uncached run's."""
    from interp_core.models import build_model

    torch.manual_seed(0)
    other = build_model("smallgap", 1, 10).eval()
    x, y = mnist_demo.images[:2], mnist_demo.labels[:2]
    target = (y + 1) % 10  # a fixed t, so the clean maps of (y, t) are the same for every attack
    cache = CleanMapCache()
    explainers = ["cam", "saliency", "ig"]

    def run(model, i, attack, clean_maps):
        return explore({"m": model}, ExploreImages(x[i:i + 1], y[i:i + 1]),
                       ExploreAttack(attack, target=target[i:i + 1]), explainers, trajectory_explainer=None,
                       clean_maps=clean_maps).models[0]

    def targeted(steps):
        return PGD(0.2, 0.02, steps, objective="margin", targeted=True)

    first = run(mnist_normal, 0, targeted(5), cache)
    hits, misses = cache.hits, cache.misses
    assert misses == len(explainers)
    second = run(mnist_normal, 0, targeted(2), cache)
    assert cache.misses == misses and cache.hits > hits  # the second attack explains only x'
    assert not np.array_equal(second.x_adv, first.x_adv)
    for model, i in ((mnist_normal, 0), (other, 0), (mnist_normal, 1)):
        misses = cache.misses
        cached = run(model, i, targeted(2), cache)
        if (model, i) != (mnist_normal, 0):
            assert cache.misses == misses + len(explainers)  # another model or image: computed again
        fresh = run(model, i, targeted(2), None)
        for e in explainers:
            np.testing.assert_array_equal(cached.maps[e].clean, fresh.maps[e].clean)
            np.testing.assert_array_equal(cached.maps[e].adv, fresh.maps[e].adv)
    assert not np.allclose(run(other, 0, targeted(2), cache).maps["cam"].clean, first.maps["cam"].clean)


def test_exports(result):
    rows = list(csv.DictReader(io.StringIO(to_csv(result))))
    assert len(rows) == len(metrics_rows(result)) == 3 * len(EXPLAINERS)
    expected = float(result.models[0].maps["cam"].metrics["D2 range"][0])
    assert float(rows[0]["D2 range"]) == pytest.approx(expected, rel=1e-6)
    data = json.loads(to_json(result))
    assert "D2 range" in data["definitions"] and len(data["rows"]) == len(rows)
    assert data["models"] == ["normal"] and data["images"] == [0, 1, 2]  # batch positions: no ids given
    with np.load(io.BytesIO(to_npz(result))) as f:
        np.testing.assert_array_equal(f["normal/x_adv"], result.models[0].x_adv)
        assert f["normal/cam/clean"].shape == (3, 2, 7, 7)
    image = Image.open(io.BytesIO(to_png(result)))
    assert image.format == "PNG" and image.size[0] > 100


def test_rejects_bad_input(mnist_normal, mnist_demo):
    with pytest.raises(ValueError, match="N, C, H, W"):
        ExploreImages(mnist_demo.images[0])
    with pytest.raises(ValueError, match="one label per image"):
        ExploreImages(mnist_demo.images[:2], mnist_demo.labels[:1])
    with pytest.raises(ValueError, match="explainer"):
        explore({"a": mnist_normal}, ExploreImages(mnist_demo.images[:1]), ExploreAttack(pgd_fn(0.1)), [])


def test_engine_trajectory_ends_at_the_adversarial_example(mnist_normal, mnist_demo):
    x, y = mnist_demo.images[:3], mnist_demo.labels[:3]
    attack = PGD(0.2, 0.01, 10)
    res = explore({"normal": mnist_normal}, ExploreImages(x, y), ExploreAttack(attack), ["cam"])
    traj, m = res.models[0].trajectory, res.models[0]
    assert traj.x.shape[0] == 11  # the start point and 10 steps
    flipped = m.adv_pred != m.y
    assert flipped.any()
    np.testing.assert_allclose(traj.x[-1][flipped], m.x_adv[flipped], atol=1e-7)


def test_exports_carry_dataset_gallery_numbers_settings_and_goal(mnist_normal, mnist_demo):
    idx = [17, 42]
    res = explore({"normal": mnist_normal}, ExploreImages(mnist_demo.images[idx], mnist_demo.labels[idx],
                                                          mnist_demo.class_names, "MNIST", idx),
                  ExploreAttack.registered("pgd", {"eps": 0.2, "steps": 5, "step_size": None}), ["cam"])
    rows = list(csv.DictReader(io.StringIO(to_csv(res))))
    assert [r["image"] for r in rows] == ["17", "42"] and {r["dataset"] for r in rows} == {"MNIST"}
    assert rows[0]["step_size"] == str(0.1) and rows[0]["steps"] == "5"  # derived 2.5 * 0.2 / 5, not None
    m = res.models[0]
    assert [r["goal reached"] for r in rows] == [str(bool(v)) for v in m.adv_pred != m.y]
    data = json.loads(to_json(res))
    assert data["dataset"] == "MNIST" and data["images"] == idx and data["attack"]["step_size"] == 0.1
    line = settings_line(res, ascii_only=True)
    assert line.startswith("MNIST #17, #42 | pgd: eps=0.2") and "step_size=0.1" in line and "None" not in line
    with pytest.raises(ValueError, match="image_ids"):
        ExploreImages(mnist_demo.images[:2], image_ids=[1])


def test_attack_settings_fill_in_derived_values_and_reject_bad_ones():
    assert attack_settings("pgd", {"eps": 0.3, "steps": 40, "step_size": None})["step_size"] == pytest.approx(0.01875)
    assert attack_settings("isa", {"eps": 0.1, "search_gamma": False, "gamma": 0.001})["gamma"] == 0.001
    assert attack_settings("isa", {"eps": 0.1})["search_gamma"] is True  # the app's default: γ searched
    with pytest.raises(ValueError):
        attack_settings("pgd", {"eps": -1.0})
    assert [ATTACKS[a].goal for a in ("pgd", "isa", "aai", "min-eps")] == ["flip", "reach", "keep", "reach"]
    assert [a for a in ATTACKS if ATTACKS[a].needs_correct] == ["isa"]
    with pytest.raises(ValueError, match="unknown attack"):
        attack_settings("nope", {})


def test_a_failed_attack_is_marked_and_not_magnified(mnist_normal, mnist_demo):
    """eps = 0 leaves every image as it was: the goal is missed, the perturbation is none (not
    amplified by ~1/0), and the bound line says < and that the bound does not apply."""
    res = explore({"normal": mnist_normal}, ExploreImages(mnist_demo.images[:2], mnist_demo.labels[:2],
                                                          mnist_demo.class_names), ExploreAttack(pgd_fn(0.0)), ["cam"])
    m = res.models[0]
    assert not m.goal_reached.any() and np.isnan(m.magnification).all()
    assert np.all(m.perturbation == 0.5)
    assert goal_readout(res, 0, 0) == f"attack failed: the label is still {mnist_demo.class_names[int(m.y[0])]}"
    assert perturbation_readout(m, 0) == f"no perturbation (‖δ‖∞ < {PERTURBATION_FLOOR:g})"
    assert m.bound[0] > 0 and m.d2_cam_hw[0] == 0
    line = bound_readout(m, 0)
    assert f"= 0.0000 < bound ½(Z_y − Z_t) = {m.bound[0]:.4f}" in line and "does not apply" in line
    assert ">=" not in bound_readout(m, 0, ascii_only=True) and "0.0000 <" in bound_readout(m, 0, ascii_only=True)


def test_goals_and_the_bound_line_of_successes(result, mnist_normal, mnist_demo):
    m = result.models[0]
    np.testing.assert_array_equal(m.goal_reached, m.adv_pred != m.y)
    i = int(np.flatnonzero(m.goal_reached)[0])
    assert goal_readout(result, 0, i).startswith("goal reached: label flipped")
    assert m.bound_applies[i] and " ≥ bound" in bound_readout(m, i) and "applies and holds" in bound_readout(m, i)
    assert perturbation_readout(m, i) == f"perturbation ×{0.5 / float(m.linf[i]):.3g}"
    # the same attack judged as AAI judges it: keeping the label is the goal, so a flip misses it
    keep = explore({"normal": mnist_normal}, ExploreImages(mnist_demo.images[i:i + 1], mnist_demo.labels[i:i + 1],
                                                           mnist_demo.class_names),
                   ExploreAttack(pgd_fn(0.2), goal="keep"), ["cam"])
    assert not keep.models[0].goal_reached[0] and "goal missed: the label changed" in goal_readout(keep, 0)
    with pytest.raises(ValueError, match="goal"):
        ExploreAttack(pgd_fn(0.1), goal="win")


def test_targeted_goal_is_the_target(mnist_normal, mnist_demo):
    x, y = mnist_demo.images[:1], mnist_demo.labels[:1]
    attack = PGD(0.3, 0.02, 30, objective="margin", targeted=True)
    res = explore({"n": mnist_normal}, ExploreImages(x, y, mnist_demo.class_names),
                  ExploreAttack(attack, target=torch.tensor([(int(y) + 1) % 10])), ["cam"])
    m = res.models[0]
    assert res.goal == "reach" and m.goal_reached[0] == (m.adv_pred[0] == m.target[0])
    assert goal_readout(res, 0).startswith("goal reached: target" if m.goal_reached[0] else "attack failed: target")


def test_misclassified_images_are_refused_with_the_prediction(mnist_normal, mnist_demo):
    x = mnist_demo.images[:1]
    pred = int(mnist_normal(x).argmax(1))
    wrong = torch.tensor([(pred + 1) % 10])
    with pytest.raises(MisclassifiedImage, match=f"as {mnist_demo.class_names[pred]} ") as err:
        explore({"normal": mnist_normal}, ExploreImages(x, wrong, mnist_demo.class_names),
                ExploreAttack(pgd_fn(0.1), require_correct=True), ["cam"])
    assert err.value.pred == mnist_demo.class_names[pred] and err.value.true == mnist_demo.class_names[(pred + 1) % 10]
    ok = explore({"normal": mnist_normal}, ExploreImages(x, torch.tensor([pred])),
                 ExploreAttack(pgd_fn(0.1), require_correct=True), ["cam"])
    assert len(ok.models) == 1


def test_exports_carry_the_gamma_isa_searched(mnist_normal, mnist_demo):
    """With ISA's gamma search, each row names the gamma its example was found with; other attacks
    have no such column."""
    from interp_core.attacks import ISA

    x, y = mnist_demo.images[:2], mnist_demo.labels[:2]
    res = explore({"normal": mnist_normal}, ExploreImages(x, y, mnist_demo.class_names),
                  ExploreAttack(ISA(0.2, search_gamma=True, rounds=3), {"name": "isa", "eps": 0.2, "search_gamma": True}),
                  ["cam"], trajectory_explainer=None)
    found = res.models[0].found_gamma
    rows = metrics_rows(res)
    assert found is not None and len(rows) == 2
    assert [r["gamma found"] for r in rows] == pytest.approx(found.tolist(), nan_ok=True)
    assert "gamma found" not in metrics_rows(explore({"normal": mnist_normal}, ExploreImages(x, y),
                                                     ExploreAttack(pgd_fn(0.1, 2), {"name": "pgd"}), ["cam"],
                                                     trajectory_explainer=None))[0]


def _explore_registered(model, data, index: int, name: str, dataset: str, **params):
    """``explore`` of one demo image with the registered attack ``name``, as the Explore page runs it."""
    return explore({"m": model}, ExploreImages(data.images[index:index + 1], data.labels[index:index + 1],
                                               data.class_names, dataset, [index]),
                   ExploreAttack.registered(name, params), ["cam"], trajectory_explainer=None)


def test_an_image_already_misclassified_is_judged_against_the_clean_prediction():
    """CIFAR-10 demo #0 is a cat the shipped normal network calls a dog: an attack that leaves the
    dog a dog failed (it did not flip a label), one that moves it says from what to what, and the
    minimum-eps search needs no eps at all."""
    data = load_dataset("cifar10", "demo")
    model = load_model("cifar10-smallgap-normal-paper")[0]
    failed = _explore_registered(model, data, 0, "fgsm", "CIFAR-10", eps=1 / 255)
    m = failed.models[0]
    assert m.misclassified[0] and not m.label_changed[0] and not m.goal_reached[0]
    assert goal_readout(failed, 0) == ("already misclassified (clean prediction dog); attack failed: the prediction "
                                       "is still dog")
    moved = _explore_registered(model, data, 0, "aai", "CIFAR-10", eps=8 / 255, steps=10)  # AAI keeps the label
    pred = data.class_names[int(moved.models[0].adv_pred[0])]
    assert moved.models[0].label_changed[0] and pred != "dog" and not moved.models[0].goal_reached[0]
    assert goal_readout(moved, 0) == ("already misclassified (clean prediction dog); goal missed: the prediction "
                                      f"changed dog → {pred}")
    search = _explore_registered(model, data, 0, "min-eps", "CIFAR-10", rounds=2)
    assert eps_found_readout(search, 0) == "none needed: already misclassified"
    assert search.models[0].linf[0] == 0  # the clean image itself, not a perturbation at a tiny eps
    row = metrics_rows(search)[0]
    assert row["misclassified before"] and row["eps found"] == "none needed: already misclassified"


def test_label_changed_and_target_reached_are_told_apart_and_exported(mnist_demo):
    """Gabor noise at CIFAR's budget turns the Int network's 4 (MNIST demo #0) into an 8, not into
    its target 0: the label changed, the target was not reached, and the exports say both."""
    model = load_model("mnist-smallgap-int-paper")[0]
    res = _explore_registered(model, mnist_demo, 0, "gabor", "MNIST", distortion=400.0, steps=20)
    m = res.models[0]
    assert (int(m.y[0]), int(m.adv_pred[0]), int(m.target[0])) == (4, 8, 0)
    assert m.label_changed[0] and not m.target_reached[0] and not m.goal_reached[0] and not m.misclassified[0]
    assert goal_readout(res, 0) == "label changed 4 → 8; target 0 not reached"
    (row,) = csv.DictReader(io.StringIO(to_csv(res)))
    assert (row["label changed"], row["target reached"], row["goal reached"]) == ("True", "False", "False")
    assert row["misclassified before"] == "False" and row["readout"] == "label changed 4 → 8; target 0 not reached"
    (json_row,) = json.loads(to_json(res))["rows"]
    assert json_row["label changed"] is True and json_row["target reached"] is False
    untargeted = _explore_registered(model, mnist_demo, 0, "fgsm", "MNIST", eps=0.05)
    (row,) = csv.DictReader(io.StringIO(to_csv(untargeted)))
    assert row["target reached"] == "" and row["readout"] == "attack failed: the label is still 4"  # no target


@pytest.mark.parametrize("dataset", sorted(DATASETS))
def test_the_default_image_is_classified_correctly_by_every_shipped_model(dataset):
    data = load_dataset(dataset, "demo")
    i = DATASETS[dataset].default_image
    shipped = [e.name for e in available_models(dataset) if e.path.parent == paths.checkpoints_dir()]
    assert len(shipped) >= 6
    with torch.no_grad():
        wrong = [name for name in shipped if int(load_model(name)[0](data.images[i:i + 1]).argmax(1)) != data.labels[i]]
    assert not wrong, f"{dataset} demo #{i} is misclassified by {wrong}"


def test_minimum_eps_from_random_starts_finds_what_the_authors_start_misses(mnist_demo):
    """On MNIST demo #0 the PGD-trained network resists ten soft-sign steps from x at every eps up
    to 1, yet random starts reach the target (measured eps 0.3563): "none" was the attack's
    weakness, so the readout gives an upper bound and never a proof."""
    model = load_model("mnist-smallgap-pgd-at-paper")[0]
    authors = _explore_registered(model, mnist_demo, 0, "min-eps", "MNIST", random_start=False, restarts=1)
    assert not authors.models[0].goal_reached[0]
    assert eps_found_readout(authors, 0) == "none found up to 1 (not a proof of robustness)"
    found = _explore_registered(model, mnist_demo, 0, "min-eps", "MNIST")
    m = found.models[0]
    assert m.goal_reached[0] and m.adv_pred[0] == m.target[0] and 0 < m.linf[0] < 0.5
    assert eps_found_readout(found, 0) == f"{m.linf[0]:.4f}"
