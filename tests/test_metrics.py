import numpy as np
import pytest
import scipy.stats
import torch

from interp_core.metrics import (
    accuracy, class_discrepancy, discrepancy, kendall_tau, map_range, topk_intersection, two_class_bound,
)


def test_kendall_tau_equals_scipy_tau_b_with_ties():
    torch.manual_seed(0)
    a = torch.randn(5, 1, 8, 8)
    b = a + torch.randn(5, 1, 8, 8)
    a[1] = a[1].round()
    b[2] = (b[2] * 2).round()
    ours = kendall_tau(a, b, chunk=16)
    for i in range(5):
        expected = scipy.stats.kendalltau(a[i].flatten().numpy(), b[i].flatten().numpy()).statistic
        assert ours[i].item() == pytest.approx(expected, abs=1e-6)


def test_topk_intersection_counts_shared_top_cells():
    a = torch.arange(16.0).view(1, 1, 4, 4)
    b = a.clone()
    b.view(-1)[[15, 14]] = -1.0  # two of a's top 8 leave b's top 8
    assert topk_intersection(a, b, k=8).item() == pytest.approx(6 / 8)
    assert topk_intersection(a, a, k=8).item() == 1.0
    with pytest.raises(ValueError):
        topk_intersection(a, b, k=17)


def test_discrepancies_follow_their_definitions():
    torch.manual_seed(0)
    clean, adv = torch.randn(3, 4, 5, 5), torch.randn(3, 4, 5, 5)
    y, t = torch.tensor([0, 1, 2]), torch.tensor([3, 3, 0])
    l1 = (clean - adv).abs().sum(dim=(2, 3))  # (N, K)
    rows = torch.arange(3)
    assert torch.allclose(discrepancy(clean, adv, y, measure="1class"), l1[rows, y])
    assert torch.allclose(discrepancy(clean, adv, y, t, measure="2class"), 0.5 * (l1[rows, y] + l1[rows, t]))
    assert torch.allclose(discrepancy(clean, adv, y, measure="allclass"), l1.mean(1))
    sq = (clean - adv).pow(2).sum(dim=(2, 3))
    assert torch.allclose(discrepancy(clean, adv, y, t, distance="sq_l2"), 0.5 * (sq[rows, y] + sq[rows, t]))
    assert torch.allclose(discrepancy(clean, adv, y, t, distance="l2"), 0.5 * (sq[rows, y].sqrt() + sq[rows, t].sqrt()))
    ranges = clean.flatten(2).amax(2) - clean.flatten(2).amin(2)
    normalized = discrepancy(clean, adv, y, t, normalization="range")
    assert torch.allclose(normalized, 0.5 * (l1[rows, y] / ranges[rows, y] + l1[rows, t] / ranges[rows, t]))
    with pytest.raises(ValueError, match="target"):
        discrepancy(clean, adv, y, measure="2class")


def test_normalized_l2_is_the_authors_root_of_squares_over_range():
    """Hand-computed: the clean map [[0, 4], [1, 2]] has range 4; the change [[3, 0], [0, 4]] has
    l2 norm 5, so the range-normalized l2 discrepancy is 5 / 4 (and sq_l2 gives 25 / 4)."""
    clean = torch.tensor([[[[0.0, 4.0], [1.0, 2.0]]]])
    adv = clean + torch.tensor([[[[3.0, 0.0], [0.0, 4.0]]]])
    y = torch.tensor([0])
    assert discrepancy(clean, adv, y, measure="1class", distance="l2", normalization="range").item() == 1.25
    assert discrepancy(clean, adv, y, measure="1class", distance="sq_l2", normalization="range").item() == 6.25
    with pytest.raises(ValueError, match="distance must be one of"):
        discrepancy(clean, adv, y, measure="1class", distance="l3")


def test_one_class_measure_misses_a_change_of_the_target_map_only():
    clean = torch.zeros(1, 2, 3, 3)
    adv = clean.clone()
    adv[0, 1] += 5.0
    y, t = torch.tensor([0]), torch.tensor([1])
    assert discrepancy(clean, adv, y, measure="1class").item() == 0
    assert discrepancy(clean, adv, y, t, measure="2class").item() == pytest.approx(22.5)


def test_two_class_bound_holds_on_random_perturbations(mnist_normal, mnist_demo):
    """docs/method.md#bound: if t beats y on x', then D2(CAM/(hw)) >= (Z_y(x) - Z_t(x)) / 2."""
    torch.manual_seed(0)
    x, y = mnist_demo.images[:50], mnist_demo.labels[:50]
    checked = 0
    with torch.no_grad():
        clean_cam, logits = mnist_normal.cam(x) / 49, mnist_normal(x)
        for scale in (0.3, 0.6, 1.0):
            x_adv = (x + scale * torch.randn_like(x)).clamp(0, 1)
            adv_cam, adv_logits = mnist_normal.cam(x_adv) / 49, mnist_normal(x_adv)
            for t in range(10):
                target = torch.full_like(y, t)
                beats = (adv_logits[:, t] > adv_logits.gather(1, y[:, None]).squeeze(1)) & (target != y)
                d2 = discrepancy(clean_cam, adv_cam, y, target, measure="2class")
                bound = two_class_bound(logits, y, target)
                assert (d2[beats] >= bound[beats] - 1e-4).all()
                checked += int(beats.sum())
    assert checked > 20  # the property was exercised, not vacuous


def test_class_discrepancy_values_and_range_normalization():
    clean = torch.tensor([[[[0.0, 1.0], [2.0, 3.0]]]])  # range 3
    adv = clean + torch.tensor([[[[1.0, 0.0], [0.0, -1.0]]]])
    assert map_range(clean).item() == 3.0
    assert class_discrepancy(clean, adv, "l1").item() == pytest.approx(2.0)
    assert class_discrepancy(clean, adv, "l1", "range").item() == pytest.approx(2 / 3)
    assert class_discrepancy(clean, adv, "l2", "range").item() == pytest.approx(2 ** 0.5 / 3)
    assert class_discrepancy(clean, adv, "sq_l2", "range").item() == pytest.approx(2 / 3)
    # a constant clean map has range 0: the distance is divided by the floor 1e-12, not by 0
    flat = torch.ones(2, 1, 3, 3)
    assert torch.equal(map_range(flat), torch.zeros(2))
    assert torch.allclose(class_discrepancy(flat, flat + 1, normalization="range"), torch.full((2,), 9 / 1e-12))
    assert torch.equal(class_discrepancy(flat, flat, normalization="range"), torch.zeros(2))
    with pytest.raises(ValueError, match="normalization must be one of"):
        class_discrepancy(flat, flat, normalization="max")


def test_accuracy_restores_training_mode(mnist_normal, mnist_demo):
    mnist_normal.train()
    acc = accuracy(mnist_normal, mnist_demo.images, mnist_demo.labels, batch_size=64)
    assert mnist_normal.training and 0.95 < acc <= 1.0
    preds = mnist_normal.eval()(mnist_demo.images).argmax(1)
    assert acc == pytest.approx(np.mean((preds == mnist_demo.labels).numpy()))
